"""The sandbox CRM's routes, mounted under /sandbox/ by the root urlconf when SANDBOX_ENABLED.

Paths are HubSpot's own below the base URL, so a destination switches to the real HubSpot by
changing only its base URL (`.../sandbox/hubspot` -> `https://api.hubapi.com`).
"""

from django.urls import path, re_path

from crmsync.sandbox import views

HUBSPOT_CONTACTS = "hubspot/crm/v3/objects/contacts"

urlpatterns = [
    path(HUBSPOT_CONTACTS, views.contacts, name="sandbox-hubspot-contacts"),
    path(f"{HUBSPOT_CONTACTS}/batch/read", views.contacts_batch_read, name="sandbox-hubspot-contacts-batch-read"),
    path(f"{HUBSPOT_CONTACTS}/batch/upsert", views.contacts_batch_upsert, name="sandbox-hubspot-contacts-batch-upsert"),
    # Before <contact_id>, which would otherwise take "search" for an ID.
    path(f"{HUBSPOT_CONTACTS}/search", views.contacts_search_view, name="sandbox-hubspot-contacts-search"),
    path(f"{HUBSPOT_CONTACTS}/<str:contact_id>", views.contact, name="sandbox-hubspot-contact"),
    path("hubspot/crm/v3/properties/contacts", views.contact_properties, name="sandbox-hubspot-properties"),
    path("hubspot/crm/v3/properties/contacts/<str:name>", views.contact_property, name="sandbox-hubspot-property"),
    # Anything else HubSpot has (companies, deals, associations...) answers in HubSpot's error JSON.
    re_path(r"^hubspot/(?P<rest>.*)$", views.unknown),
]
