"""Meta's Graph API over the sandbox's leads: the one read the product makes after a leadgen
webhook. Each view parses, calls one function of `graph` and shapes the answer, errors included
(Graph's `{"error": {...}}`, never Django's HTML pages)."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sandbox.meta import graph
from sandbox.meta.graph import GraphError


@csrf_exempt  # so a POST meets Graph's error, not Django's CSRF page
def lead(request: HttpRequest, version: str, leadgen_id: str) -> JsonResponse:
    try:
        if request.method != "GET":
            raise graph.object_missing(leadgen_id, method=request.method or "", status=405)
        fields = [name.strip() for name in request.GET.get("fields", "").split(",") if name.strip()]
        body = graph.meta_lead_read(leadgen_id=leadgen_id, access_token=request.GET.get("access_token"),
                                    fields=fields)
        return JsonResponse(body)
    except GraphError as exc:
        return _error_response(exc)


@csrf_exempt
def unknown(request: HttpRequest, rest: str) -> JsonResponse:
    return _error_response(graph.unknown_path(rest))


def _error_response(error: GraphError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    if error.status == 405:
        response["Allow"] = "GET"
    return response
