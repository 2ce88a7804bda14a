"""The sandbox CRM's routes, mounted under /sandbox/ by the root urlconf when SANDBOX_ENABLED.

Paths are HubSpot's own below the base URL, so a destination switches to the real HubSpot by
changing only its base URL (`.../sandbox/hubspot` -> `https://api.hubapi.com`). Likewise Graph
API's below `.../sandbox/graph` (-> `https://graph.facebook.com`). Salesforce's routes are at
the server's root (salesforce_urls), because its clients take a host, not a base URL.
"""

from django.urls import path, re_path

from crmsync.sandbox import graph_views, views

OBJECTS = r"^hubspot/crm/v3/objects/(?P<object_type>contacts|companies)"
PROPERTIES = r"^hubspot/crm/v3/properties/(?P<object_type>contacts|companies)"
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
    re_path(f"{OBJECTS}/(?P<record_id>[^/]+)$", views.record, name="sandbox-hubspot-object"),
    re_path(f"{PROPERTIES}$", views.object_properties, name="sandbox-hubspot-properties"),
    re_path(f"{PROPERTIES}/(?P<name>[^/]+)$", views.object_property, name="sandbox-hubspot-property"),
    re_path(rf"^hubspot/crm/v4/objects/(?P<from_type>{V4_TYPE})/(?P<from_id>[^/]+)/associations/default/"
            rf"(?P<to_type>{V4_TYPE})/(?P<to_id>[^/]+)$", views.association_default, name="sandbox-hubspot-association-default"),
    re_path(rf"^hubspot/crm/v4/associations/(?P<from_type>{V4_TYPE})/(?P<to_type>{V4_TYPE})/batch/create$",
            views.associations_batch_create, name="sandbox-hubspot-associations-batch-create"),
    re_path(rf"^hubspot/crm/v4/objects/(?P<from_type>{V4_TYPE})/(?P<from_id>[^/]+)/associations/(?P<to_type>{V4_TYPE})$",
            views.associations_list, name="sandbox-hubspot-associations"),
    path("hubspot/oauth/v3/token", views.oauth_token, name="sandbox-hubspot-oauth-token"),
    # Anything else HubSpot has (deals, tickets...) answers in HubSpot's error JSON.
    re_path(r"^hubspot/(?P<rest>.*)$", views.unknown),
    # Any vN.N: the Lead node's fields served here read the same in every Graph version.
    re_path(r"^graph/(?P<version>v\d+\.\d+)/(?P<leadgen_id>[^/]+)$", graph_views.lead, name="sandbox-graph-lead"),
    re_path(r"^graph/(?P<rest>.*)$", graph_views.unknown),
]
