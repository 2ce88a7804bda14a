from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers requests. Nothing else is checked, so a database or broker
    outage does not get healthy processes restarted; /readyz (crmsync.health) checks those."""
    return JsonResponse({"status": "ok"})
