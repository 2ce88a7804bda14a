from django.conf import settings
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ingestion.urls")),
    path("healthz", include("audit.urls")),
]
if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
    # Salesforce clients build https://{host}/services/data/vNN.N/...: the sandbox org sits at the root.
    urlpatterns.append(path("services/", include("sandbox.salesforce.urls")))
