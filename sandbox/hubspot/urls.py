"""The sandbox HubSpot's routes, mounted at /sandbox/hubspot/ by sandbox/urls.py.

Paths are HubSpot's own below its base URL, so a destination switches to the real HubSpot by
changing only the base URL (`.../sandbox/hubspot` -> `https://api.hubapi.com`).
"""

from django.urls import path, re_path

from sandbox.hubspot import views

OBJECTS = r"^crm/v3/objects/(?P<object_type>contacts|companies)"
PROPERTIES = r"^crm/v3/properties/(?P<object_type>contacts|companies)"
# v4 names object types in the singular, the plural or by ID ("contact", "contacts", "0-1").
V4_TYPE = r"[a-z0-9-]+"

urlpatterns = [
    re_path(f"{OBJECTS}$", views.records, name="sandbox-hubspot-objects"),
    re_path(f"{OBJECTS}/batch/read$", views.records_batch_read, name="sandbox-hubspot-batch-read"),
    re_path(f"{OBJECTS}/batch/create$", views.records_batch_create, name="sandbox-hubspot-batch-create"),
    re_path(f"{OBJECTS}/batch/update$", views.records_batch_update, name="sandbox-hubspot-batch-update"),
    re_path(f"{OBJECTS}/batch/upsert$", views.records_batch_upsert, name="sandbox-hubspot-batch-upsert"),
    # Before <record_id>, which would otherwise take "search" for an ID.
    re_path(f"{OBJECTS}/search$", views.records_search_view, name="sandbox-hubspot-search"),
    re_path(f"{OBJECTS}/merge$", views.records_merge, name="sandbox-hubspot-merge"),
    re_path(f"{OBJECTS}/(?P<record_id>[^/]+)$", views.record, name="sandbox-hubspot-object"),
    re_path(f"{PROPERTIES}$", views.object_properties, name="sandbox-hubspot-properties"),
    re_path(f"{PROPERTIES}/(?P<name>[^/]+)$", views.object_property, name="sandbox-hubspot-property"),
    re_path(rf"^crm/v4/objects/(?P<from_type>{V4_TYPE})/(?P<from_id>[^/]+)/associations/default/"
            rf"(?P<to_type>{V4_TYPE})/(?P<to_id>[^/]+)$", views.association_default,
            name="sandbox-hubspot-association-default"),
    re_path(rf"^crm/v4/associations/(?P<from_type>{V4_TYPE})/(?P<to_type>{V4_TYPE})/batch/create$",
            views.associations_batch_create, name="sandbox-hubspot-associations-batch-create"),
    re_path(rf"^crm/v4/objects/(?P<from_type>{V4_TYPE})/(?P<from_id>[^/]+)/associations/(?P<to_type>{V4_TYPE})$",
            views.associations_list, name="sandbox-hubspot-associations"),
    path("oauth/v3/token", views.oauth_token, name="sandbox-hubspot-oauth-token"),
    # Anything else HubSpot has (deals, tickets...) answers in HubSpot's error JSON.
    re_path(r"^(?P<rest>.*)$", views.unknown),
]
