"""The REST CRM's routes, mounted at /sandbox/rest/ by sandbox/urls.py (a trailing slash is optional)."""

from django.urls import re_path

from sandbox.rest import views

urlpatterns = [
    re_path(r"^leads/?$", views.leads, name="sandbox-rest-leads"),
    # Before <record_id>, which would otherwise take "batch" for an ID.
    re_path(r"^leads/batch/?$", views.leads_batch, name="sandbox-rest-leads-batch"),
    re_path(r"^leads/(?P<record_id>[^/]+)/?$", views.lead, name="sandbox-rest-lead"),
    re_path(r"^oauth/token/?$", views.oauth_token, name="sandbox-rest-oauth-token"),
    re_path(r"^_settings/?$", views.settings_view, name="sandbox-rest-settings"),
    re_path(r"^(?P<rest>.*)$", views.unknown),
]
