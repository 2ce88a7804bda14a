"""The intake endpoint. Every refusal has one JSON shape: {"error": <code>, "detail": <text>}."""

import logging
import time

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from core import metrics
from ingestion import services, webforms
from ingestion.parsing import IntakeError, read_body
from ingestion.presets import META_KIND

log = logging.getLogger(__name__)

ErrorSerializer = inline_serializer("Error", {
    "error": serializers.CharField(), "detail": serializers.CharField(),
    "fields": serializers.DictField(child=serializers.CharField(), required=False,
                                   help_text="Messages about particular form fields, by field name."),
})
AcceptedSerializer = inline_serializer("Accepted", {
    "id": serializers.IntegerField(help_text="The stored submission (Meta Lead Ads: the first of `ids`)."),
    "status": serializers.ChoiceField(choices=["accepted"]),
    "ids": serializers.ListField(child=serializers.IntegerField(), required=False,
                                 help_text="Meta Lead Ads: one submission per leadgen_id in the notification."),
    "redirect": serializers.URLField(required=False, help_text="Web forms with a thank-you URL: where to send the visitor."),
})
_ERRORS = {
    code: OpenApiResponse(ErrorSerializer, description=text)
    for code, text in {
        400: "Malformed body (malformed_json, invalid_payload, bad_encoding, empty_body, malformed_multipart), "
             "a body over the nesting or size limits (invalid_payload), or a Host this server does not answer for "
             "(bad_host).",
        401: "Authentication failed (missing or wrong API key, URL token or signature).",
        403: "Origin not allowed, or Meta verification failed.",
        404: "No active source has this slug.",
        405: "Method not allowed for this source.",
        413: "Body over the source's size limit.",
        415: "Content type not accepted by this source.",
        429: "Throttled; see Retry-After.",
        500: "An unexpected error (server_error); nothing was acknowledged, so retry.",
        503: "The submission could not be stored this time (busy); see Retry-After.",
    }.items()
}


class JSONOnly(BaseContentNegotiation):
    """The intake answers JSON whatever the Accept header says (senders rarely send one), so
    skip DRF's negotiation on the hottest path."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def error_response(error: IntakeError) -> Response:
    return Response(error.as_json(), status=error.status, headers=error.headers)


class SubmissionCreateView(APIView):
    """POST /api/v1/sources/<slug>/submissions: store first, answer 202, process later."""

    parser_classes: list = []  # we read the raw bytes ourselves; nothing parses before we store
    content_negotiation_class = JSONOnly

    @extend_schema(
        operation_id="submission_create",
        summary="Send a lead",
        description="Stores the submission verbatim and answers 202 once it is committed. "
        "An Idempotency-Key header (or a web form's hidden key field, or the provider's own event ID, or for "
        "senders that send none a hash of the content) makes retries safe: a repeated key gets the first "
        "answer again and creates nothing. A browser's plain form post (form-encoded or multipart, asking for "
        "text/html) to a web form with a thank-you URL is answered 303 See Other instead.",
        request={"application/json": OpenApiTypes.OBJECT, "application/x-www-form-urlencoded": OpenApiTypes.OBJECT},
        parameters=[
            OpenApiParameter("Idempotency-Key", str, OpenApiParameter.HEADER, required=False),
            OpenApiParameter("X-API-Key", str, OpenApiParameter.HEADER, required=False,
                             description="For sources authenticated by API key."),
            OpenApiParameter("token", str, OpenApiParameter.QUERY, required=False,
                             description="For sources authenticated by URL token."),
        ],
        responses={202: AcceptedSerializer, 303: OpenApiResponse(description="A browser's plain form post: to the "
                   "source's thank-you URL, or its error URL with ?error=<code>."), **_ERRORS},
        examples=[OpenApiExample("Web form", value={"email": "ada@example.com", "first_name": "Ada"}, request_only=True)],
    )
    def post(self, request: Request, slug: str) -> HttpResponse:
        # Documents the operation; requests are served by submission_post (see `submissions`).
        return submission_post(request._request, slug)

    @extend_schema(
        operation_id="meta_verification",
        summary="Meta's webhook verification handshake (Meta Lead Ads sources only)",
        description="Answered only by sources of kind `meta_lead_ads` (listed in `x-source-kinds`): it echoes "
        "`hub.challenge` when `hub.verify_token` is the source's verify token. Every other kind of source "
        "answers 405 `method_not_allowed`.",
        extensions={"x-source-kinds": [META_KIND]},
        parameters=[OpenApiParameter(name, str, OpenApiParameter.QUERY, required=False)
                    for name in ("hub.mode", "hub.verify_token", "hub.challenge")],
        responses={(200, "text/plain"): OpenApiTypes.STR, 403: _ERRORS[403], 404: _ERRORS[404], 405: _ERRORS[405]},
    )
    def get(self, request: Request, slug: str) -> HttpResponse:
        try:
            source = services.source_for_intake(slug=slug)
            challenge = services.meta_handshake(source=source, query=request.query_params.dict())
        except IntakeError as exc:
            return error_response(exc)
        return HttpResponse(challenge, content_type="text/plain")

    @extend_schema(exclude=True)
    def options(self, request: Request, slug: str) -> Response:
        try:
            source = services.source_for_intake(slug=slug)
            answer = services.cors_preflight(source=source, origin=request.headers.get("Origin", ""))
        except IntakeError as exc:
            return error_response(exc)
        return Response(status=answer.status, headers=answer.headers)


def submission_post(request: HttpRequest, slug: str) -> HttpResponse:
    """The intake itself, as a plain Django view: the hottest path skips DRF's request
    wrapping, negotiation and rendering, which it does not need (it reads raw bytes and
    answers JSON, or a redirect to a browser's plain form post: ingestion.webforms)."""
    started = time.perf_counter()
    try:
        source = services.source_for_intake(slug=slug)
    except IntakeError as exc:
        metrics.intake_record(source="", outcome="refused", reason=exc.code)  # a slug anyone can make up: no label
        return _json(exc.as_json(), exc.status, exc.headers)
    try:
        body = _read(request, source.max_body_bytes)
    except IntakeError as exc:
        services.source_count(source=source, outcome=exc.outcome, reason=exc.code)
        cors = services.cors_headers(source=source, origin=request.headers.get("Origin", ""))
        answer = services.Answer(exc.status, exc.as_json(), {**cors, **exc.headers})
    else:
        answer = services.submission_intake(source=source, inbound=_inbound(request, body))
    log.info("intake", extra={"source": slug, "status": answer.status, "submission": answer.body.get("id")})
    _measure(slug, answer, started)
    if webforms.is_browser_form_post(request, source):
        target = webforms.redirect_target(source, answer.status, answer.body.get("error", ""))
        if target:
            return HttpResponseRedirect(target, status=303)
    return _json(answer.body, answer.status, answer.headers)


# Refusals by status; accepted, duplicate and spam are counted by services.submission_receive.
_REFUSED = {413: "oversize", 429: "throttled", 500: "error", 503: "error"}


def _measure(slug: str, answer: services.Answer, started: float) -> None:
    if answer.status >= 400:
        metrics.intake_record(source=slug, outcome=_REFUSED.get(answer.status, "refused"), reason=answer.body.get("error", ""))
    metrics.intake_duration(source=slug, seconds=time.perf_counter() - started)


def _json(body: dict, status: int, headers: dict[str, str]) -> JsonResponse:
    return JsonResponse(body, status=status, headers=headers or None)


_drf_view = SubmissionCreateView.as_view()


@csrf_exempt
def submissions(request: HttpRequest, slug: str) -> HttpResponse:
    """The URL's view: POST goes straight to submission_post; GET (Meta's handshake), OPTIONS
    (CORS preflight) and anything else go through DRF."""
    if request.method == "POST":
        return submission_post(request, slug)
    return _drf_view(request, slug=slug)


# drf-spectacular (like DRF's schema generators) documents a URL by its view's `cls`: the schema
# shows SubmissionCreateView's operations, which submission_post serves for POST.
submissions.cls = SubmissionCreateView
submissions.initkwargs = {}


def _read(request: HttpRequest, limit: int) -> bytes:
    length = request.META.get("CONTENT_LENGTH")
    if length:
        return read_body(request, length, limit)
    if "chunked" not in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        return b""
    # Chunked: Django's request stream reads nothing without a Content-Length, but the WSGI
    # server's input holds the decoded body; read it, up to the limit.
    return read_body(request.META["wsgi.input"], None, limit)


def _inbound(request: HttpRequest, body: bytes) -> services.Inbound:
    headers = dict(request.headers)
    return services.Inbound(
        body=body,
        content_type=request.META.get("CONTENT_TYPE", ""),
        headers=headers,
        remote_addr=request.META.get("REMOTE_ADDR") or None,
        user_agent=headers.get("User-Agent", ""),
        query=request.GET.dict(),
    )


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's errors (405, 406...) in our one error shape."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        code = getattr(exc, "default_code", "error")
        response.data = {"error": str(code), "detail": str(detail)}
    return response
