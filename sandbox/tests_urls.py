"""A urlconf for tests: the sandbox's routes under /sandbox/ (and Salesforce's under /services/)
whatever SANDBOX_ENABLED was when the root urlconf was imported (it is read once, at import)."""

from django.urls import include, path

urlpatterns = [
    path("sandbox/", include("sandbox.urls")),
    path("services/", include("sandbox.salesforce.urls")),
]
