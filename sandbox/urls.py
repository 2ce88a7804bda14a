"""The sandbox CRM's routes, mounted under /sandbox/ by the root urlconf when SANDBOX_ENABLED.

Each vendor's paths are its own below a base URL, so a destination switches to the real CRM by
changing only its base URL: HubSpot's below `.../sandbox/hubspot` (-> `https://api.hubapi.com`),
Graph API's below `.../sandbox/graph` (-> `https://graph.facebook.com`). Salesforce's routes
(salesforce/urls.py) are at the server's root instead, because its clients take a host, not a
base URL. What no CRM API offers (clock offsets, faults, bulk records, merges of Salesforce
records, signed HubSpot webhooks) is the control API under `_control/` (control.py).
"""

from django.urls import include, path

urlpatterns = [
    path("hubspot/", include("sandbox.hubspot.urls")),
    path("graph/", include("sandbox.meta.urls")),
    path("rest/", include("sandbox.rest.urls")),
    path("_control/", include("sandbox.control_urls")),
]
