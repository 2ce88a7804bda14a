"""The sandbox Salesforce's routes, mounted at /services/ by the root urlconf when
SANDBOX_ENABLED: Salesforce clients (simple-salesforce) take an instance host and always build
https://{host}/services/data/vNN.N/..., so these paths cannot sit below /sandbox/."""

from django.urls import path, re_path

from sandbox.salesforce import views

DATA = r"^data/v(?P<version>\d{1,3}\.\d)"
NAME = r"[A-Za-z][A-Za-z0-9_]*"

urlpatterns = [
    path("oauth2/token", views.token, name="sandbox-salesforce-token"),
    path("oauth2/userinfo", views.userinfo, name="sandbox-salesforce-userinfo"),
    re_path(rf"{DATA}/composite/sobjects/?$", views.collection_update, name="sandbox-salesforce-collection-update"),
    re_path(rf"{DATA}/composite/sobjects/(?P<sobject>{NAME})/(?P<field>{NAME})$", views.collection_upsert,
            name="sandbox-salesforce-collection-upsert"),
    re_path(rf"{DATA}/sobjects/(?P<sobject>{NAME})/?$", views.record_create, name="sandbox-salesforce-record-create"),
    re_path(rf"{DATA}/sobjects/(?P<sobject>{NAME})/describe/?$", views.describe, name="sandbox-salesforce-describe"),
    re_path(rf"{DATA}/sobjects/(?P<sobject>{NAME})/updated/?$", views.updated, name="sandbox-salesforce-updated"),
    re_path(rf"{DATA}/sobjects/(?P<sobject>{NAME})/deleted/?$", views.deleted, name="sandbox-salesforce-deleted"),
    # A record by its 15- or 18-character ID: read, update, delete.
    re_path(rf"{DATA}/sobjects/(?P<sobject>{NAME})/(?P<record_id>[A-Za-z0-9]{{15}}(?:[A-Za-z0-9]{{3}})?)/?$",
            views.record, name="sandbox-salesforce-record"),
    # The value is the rest of the path: an external ID may contain an encoded slash.
    re_path(rf"{DATA}/sobjects/(?P<sobject>{NAME})/(?P<field>{NAME})/(?P<value>.+)$", views.record_upsert,
            name="sandbox-salesforce-record-upsert"),
    re_path(rf"{DATA}/query/?$", views.query, name="sandbox-salesforce-query"),
    re_path(rf"{DATA}/query/(?P<locator>[0-9A-Za-z]+)-(?P<offset>\d{{1,9}})$", views.query_more,
            name="sandbox-salesforce-query-more"),
    re_path(rf"{DATA}/queryAll/?$", views.query_all, name="sandbox-salesforce-query-all"),
    re_path(rf"{DATA}/queryAll/(?P<locator>[0-9A-Za-z]+)-(?P<offset>\d{{1,9}})$", views.query_more,
            name="sandbox-salesforce-query-all-more"),
    re_path(rf"{DATA}/limits/?$", views.limits, name="sandbox-salesforce-limits"),
    re_path(rf"{DATA}/(?P<rest>.*)$", views.unknown),
]
