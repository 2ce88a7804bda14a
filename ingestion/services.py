"""Receiving: parse the body, store the submission verbatim, ring the mapping stage."""

from dataclasses import dataclass
import json
from typing import Any
from urllib.parse import parse_qs

from django.db import IntegrityError, transaction

from crmsync.queue import enqueue_on_commit
from ingestion.models import Source, Submission

# Header names (lower-case) or fragments of them that carry secrets; never stored.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
_SECRET_FRAGMENTS = ("signature", "secret", "token", "api-key", "apikey", "password")


class IntakeError(Exception):
    """A request we refuse, with the HTTP status and the stable code clients can branch on."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@dataclass(frozen=True)
class Inbound:
    body: bytes
    content_type: str
    headers: dict[str, str]
    remote_addr: str | None
    user_agent: str
    idempotency_key: str | None


def source_for_intake(*, slug: str) -> Source:
    source = Source.objects.filter(slug=slug, is_active=True).first()
    if source is None:
        raise IntakeError(404, "unknown_source", f"No active source has the slug '{slug}'.")
    return source


def submission_receive(*, source: Source, inbound: Inbound) -> tuple[Submission, bool]:
    """Store the submission and queue its processing once committed. Returns the submission
    and whether it is new (False: the idempotency key was seen before, nothing was created)."""
    payload = parse_body(inbound.body, inbound.content_type)
    try:
        with transaction.atomic():
            submission = Submission.objects.create(
                source=source,
                raw_body=inbound.body,
                content_type=inbound.content_type[:200],
                payload=payload,
                headers=headers_filter(inbound.headers),
                remote_addr=inbound.remote_addr,
                user_agent=inbound.user_agent[:500],
                idempotency_key=inbound.idempotency_key,
            )
            enqueue_on_commit("mapping.tasks.submission_process", submission.pk)
    except IntegrityError:
        # The unique (source, idempotency_key) constraint decided: the sender is retrying.
        return Submission.objects.get(source=source, idempotency_key=inbound.idempotency_key), False
    return submission, True


def parse_body(body: bytes, content_type: str) -> dict[str, Any]:
    media_type = content_type.split(";")[0].strip().lower()
    if not body:
        raise IntakeError(400, "empty_body", "The request body is empty.")
    if media_type == "application/json" or media_type.endswith("+json"):
        return _parse_json(body)
    if media_type == "application/x-www-form-urlencoded":
        return _parse_form(body)
    raise IntakeError(
        415, "unsupported_media_type",
        f"Content-Type '{media_type or '(none)'}' is not accepted; send application/json "
        "or application/x-www-form-urlencoded.",
    )


def _parse_json(body: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "bad_encoding", f"The body is not valid UTF-8: {exc.reason}.") from exc
    except json.JSONDecodeError as exc:
        raise IntakeError(400, "malformed_json", f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(payload, dict):
        raise IntakeError(400, "invalid_payload", "The JSON body must be an object.")
    return payload


def _parse_form(body: bytes) -> dict[str, Any]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "bad_encoding", f"The body is not valid UTF-8: {exc.reason}.") from exc
    # One value stays a string; a repeated field (checkboxes) stays a list.
    return {key: values[0] if len(values) == 1 else values for key, values in fields.items()}


def headers_filter(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if not _is_secret(name)}


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(fragment in lowered for fragment in _SECRET_FRAGMENTS)
