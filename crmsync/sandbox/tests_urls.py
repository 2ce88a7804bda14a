"""A urlconf for tests: the sandbox's routes under /sandbox/ (and Salesforce's under /services/)
whatever SANDBOX_ENABLED was when the root urlconf was imported (it is read once, at import)."""

from django.urls import include, path

urlpatterns = [
    path("sandbox/", include("crmsync.sandbox.urls")),
    path("services/", include("crmsync.sandbox.salesforce_urls")),
]
