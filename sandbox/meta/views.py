"""Meta's Graph API over the sandbox's leads: the one read the product makes after a leadgen
webhook. Each view parses, calls one function of `graph` and shapes the answer, errors included
(Graph's `{"error": {...}}`, never Django's HTML pages)."""

import json

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
def test_lead(request: HttpRequest) -> JsonResponse:
    """POST /sandbox/graph/test-leads: make a lead as Meta's Lead Ads Testing Tool does, and, given
    `webhook_url` and `app_secret`, send its signed leadgen notification there.

    Body: {"field_data": [{"name": "email", "values": ["ada@example.com"]}, ...],
           "access_token": "<the page token the product will read it with>",
           "page_id": "...", "form_id": "...", "webhook_url": "...", "app_secret": "..."}"""
    if request.method != "POST":
        return JsonResponse({"error": {"message": "POST a test lead.", "type": "OAuthException", "code": 100}},
                            status=405, headers={"Allow": "POST"})
    try:
        data = json.loads(request.body or b"{}")
        if not isinstance(data, dict) or not str(data.get("access_token") or ""):
            raise ValueError("Send a JSON object with field_data and access_token.")
        lead = graph.meta_test_lead_create(field_data=data.get("field_data"), access_token=str(data["access_token"]),
                                           page_id=str(data.get("page_id") or ""), form_id=str(data.get("form_id") or ""))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        return JsonResponse({"error": {"message": str(exc), "type": "OAuthException", "code": 100}}, status=400)
    answer = {"id": lead.leadgen_id, "notification": graph.meta_webhook_body(leads=[lead])}
    if data.get("webhook_url") and data.get("app_secret"):
        answer["webhook"] = graph.meta_webhook_send(leads=[lead], url=str(data["webhook_url"]),
                                                    app_secret=str(data["app_secret"]))
    return JsonResponse(answer, status=201)


@csrf_exempt
def unknown(request: HttpRequest, rest: str) -> JsonResponse:
    return _error_response(graph.unknown_path(rest))


def _error_response(error: GraphError) -> JsonResponse:
    response = JsonResponse(error.body(), status=error.status)
    if error.status == 405:
        response["Allow"] = "GET"
    return response
