from django.conf import settings
from django.contrib import admin
from django.http import Http404, HttpResponsePermanentRedirect
from django.urls import include, path

from crmsync.health import readyz
from crmsync.metrics import metrics
from delivery.webhooks import hubspot_webhook

# Admin pages of models that moved out of the crmsync app (same tables): old links still work.
MOVED_ADMIN = {"lead": "leads", "destination": "delivery", "pushjob": "delivery"}


def moved_admin_page(request, model: str, rest: str = "") -> HttpResponsePermanentRedirect:
    if model not in MOVED_ADMIN:
        raise Http404("No such admin page.")
    query = f"?{request.META['QUERY_STRING']}" if request.META.get("QUERY_STRING") else ""
    return HttpResponsePermanentRedirect(f"/admin/{MOVED_ADMIN[model]}/{model}/{rest}{query}")


urlpatterns = [
    path("admin/crmsync/<str:model>/", moved_admin_page),
    path("admin/crmsync/<str:model>/<path:rest>", moved_admin_page),
    path("admin/dashboard/", include("monitoring.urls")),  # charts for RevOps (monitoring/), inside the admin
    path("admin/", admin.site.urls),
    path("api/v1/", include("ingestion.urls")),
    path("api/crm-webhooks/hubspot/<int:destination_id>", hubspot_webhook, name="crm-webhook-hubspot"),
    path("healthz", include("audit.urls")),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics, name="metrics"),  # Prometheus; who may read it: crmsync/metrics.py
]
if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
    # Salesforce clients build https://{host}/services/data/vNN.N/...: the sandbox org sits at the root.
    urlpatterns.append(path("services/", include("sandbox.salesforce.urls")))
