"""The sandbox CRM's routes, mounted under /sandbox/ by the root urlconf when SANDBOX_ENABLED.

Paths are HubSpot's own below the base URL, so a destination switches to the real HubSpot by
changing only its base URL (`.../sandbox/hubspot` -> `https://api.hubapi.com`). Likewise Graph
API's below `.../sandbox/graph` (-> `https://graph.facebook.com`).
"""

from django.urls import path, re_path

from crmsync.sandbox import graph_views, views

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
    # Any vN.N: the Lead node's fields served here read the same in every Graph version.
    re_path(r"^graph/(?P<version>v\d+\.\d+)/(?P<leadgen_id>[^/]+)$", graph_views.lead, name="sandbox-graph-lead"),
    re_path(r"^graph/(?P<rest>.*)$", graph_views.unknown),
]
