"""The sandbox Graph API's routes, mounted at /sandbox/graph/ by sandbox/urls.py.

Paths are Graph's own below its base URL, so the product switches to the real Graph API by
changing only the base URL (`.../sandbox/graph` -> `https://graph.facebook.com`).
"""

from django.urls import re_path

from sandbox.meta import views

urlpatterns = [
    # Meta's Lead Ads Testing Tool, over HTTP: makes a lead and can send its signed webhook.
    re_path(r"^test-leads$", views.test_lead, name="sandbox-graph-test-lead"),
    # Any vN.N: the Lead node's fields served here read the same in every Graph version.
    re_path(r"^(?P<version>v\d+\.\d+)/(?P<leadgen_id>[^/]+)$", views.lead, name="sandbox-graph-lead"),
    re_path(r"^(?P<rest>.*)$", views.unknown),
]
