"""Structured JSON log lines, one object per line, with the correlation fields we attach.

Two identifiers follow the work through the logs (README, "Monitoring"):

- the **request ID**, one per HTTP request (``X-Request-ID`` in the answer; a sane one sent by
  the caller is kept), set by ``RequestIdMiddleware``;
- the **correlation ID**, one per submission, minted at intake and stored on the submission,
  its push jobs, sync log rows and lead decisions. The pipeline and the dispatcher bind the
  IDs of the work they are doing with ``log_context`` so every line they log carries them.

Both live in context variables: each thread (gunicorn's gthread workers, qcluster's processes)
and each ``log_context`` block sees its own values, and leaving the block restores the outer
ones.
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
import json
import logging
import re
import secrets
import time
import uuid

from django.http import HttpRequest, HttpResponse

# Attributes every LogRecord has; anything else was passed through `extra=` and is ours.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

_correlation_ids: ContextVar[tuple[str, ...]] = ContextVar("crmsync_correlation_ids", default=())
_request_id: ContextVar[str] = ContextVar("crmsync_request_id", default="")

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"
# What we echo from a caller: short, and only characters that cannot break a header or a log
# search (a UUID, a ULID, a trace ID, "req-123").
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        line.update(context_fields())
        line.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def context_fields() -> dict[str, object]:
    """The IDs bound where the line is logged: `correlation_id` when the work is one
    submission's, `correlation_ids` when it is several at once (a batch call to a CRM)."""
    fields: dict[str, object] = {}
    if request_id := _request_id.get():
        fields["request_id"] = request_id
    ids = _correlation_ids.get()
    if len(ids) == 1:
        fields["correlation_id"] = ids[0]
    elif ids:
        fields["correlation_ids"] = list(ids)
    return fields


# --- Correlation IDs -----------------------------------------------------------------------


def correlation_id_new() -> str:
    """A new correlation ID: a UUID in the version 7 layout (RFC 9562: 48 bits of Unix
    milliseconds, then random bits), so IDs sort by time and index inserts stay at the
    B-tree's right edge instead of landing on random pages."""
    value = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76 | secrets.randbits(12) << 64 | 0b10 << 62 | secrets.randbits(62)
    return str(uuid.UUID(int=value))


def correlation_id_current() -> str:
    """The correlation ID of the one submission whose work is running, or ''."""
    ids = _correlation_ids.get()
    return ids[0] if len(ids) == 1 else ""


@contextmanager
def log_context(*, correlation_ids: Iterable[str]) -> Iterator[None]:
    """Bind the correlation IDs of the work done inside the block (empty ones are dropped,
    duplicates kept once); the outer binding is restored on leaving it."""
    token = _correlation_ids.set(tuple(dict.fromkeys(cid for cid in correlation_ids if cid)))
    try:
        yield
    finally:
        _correlation_ids.reset(token)


def correlation_ids_bind(correlation_ids: Iterable[str]) -> None:
    """Bind correlation IDs for the rest of the current request (the intake learns them as it
    stores rows); RequestIdMiddleware restores the outer binding when the request ends. Outside
    a request it does nothing, so nothing outlives the work it describes."""
    if _request_id.get():
        _correlation_ids.set(tuple(dict.fromkeys(cid for cid in correlation_ids if cid)))


def request_id_current() -> str:
    return _request_id.get()


# --- Request IDs ---------------------------------------------------------------------------


class RequestIdMiddleware:
    """One request ID per HTTP request: the caller's X-Request-ID (or X-Correlation-ID) when it
    is sane, else a new one; bound for the request's log lines and sent back in X-Request-ID.
    When the request stored one submission (the intake), its correlation ID is sent back in
    X-Correlation-ID as well, so a sender can quote it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = _sane(request.headers.get(REQUEST_ID_HEADER)) or _sane(
            request.headers.get(CORRELATION_ID_HEADER)) or uuid.uuid4().hex
        request.request_id = request_id
        request_token = _request_id.set(request_id)
        correlation_token = _correlation_ids.set(())
        try:
            response = self.get_response(request)
            correlation = correlation_id_current()
        finally:
            _correlation_ids.reset(correlation_token)
            _request_id.reset(request_token)
        response[REQUEST_ID_HEADER] = request_id
        if correlation:
            response[CORRELATION_ID_HEADER] = correlation
        return response


def _sane(value: str | None) -> str:
    return value if value and _SANE_ID.fullmatch(value) else ""
