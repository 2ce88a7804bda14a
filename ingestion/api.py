"""The intake endpoint. Every refusal has one JSON shape: {"error": <code>, "detail": <text>}."""

import logging

from django.core.exceptions import RequestDataTooBig
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler as drf_exception_handler

from ingestion import services

log = logging.getLogger(__name__)


def error_response(code: int, error: str, detail: str) -> Response:
    return Response({"error": error, "detail": detail}, status=code)


class SubmissionCreateView(APIView):
    """POST /api/v1/sources/<slug>/submissions: store first, answer 202, process later."""

    parser_classes: list = []  # we read the raw bytes ourselves; nothing parses before we store

    def post(self, request: Request, slug: str) -> Response:
        try:
            source = services.source_for_intake(slug=slug)
            submission, created = services.submission_receive(source=source, inbound=_inbound(request))
        except services.IntakeError as exc:
            return error_response(exc.status, exc.code, exc.detail)
        except RequestDataTooBig:
            return error_response(413, "payload_too_large", "The body exceeds this source's size limit.")
        log.info("submission received", extra={"submission": submission.pk, "source": slug, "new": created})
        return Response({"id": submission.pk, "status": "accepted"}, status=status.HTTP_202_ACCEPTED)


def _inbound(request: Request) -> services.Inbound:
    return services.Inbound(
        body=request.body,
        content_type=request.content_type or "",
        headers=dict(request.headers),
        remote_addr=request.META.get("REMOTE_ADDR") or None,
        user_agent=request.headers.get("User-Agent", ""),
        idempotency_key=request.headers.get("Idempotency-Key") or None,
    )


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's errors (405, 406...) in our one error shape."""
    response = drf_exception_handler(exc, context)
    if response is not None:
        detail = response.data.get("detail", str(exc)) if isinstance(response.data, dict) else str(exc)
        code = getattr(exc, "default_code", "error")
        response.data = {"error": str(code), "detail": str(detail)}
    return response
