"""The one seam for outbound HTTP. Every call has a timeout; failures to get an answer at all
become one exception type. HTTP error statuses are returned, because only the connector knows
what a 400 or a 409 means for its CRM."""

from dataclasses import dataclass
import threading
import time
from typing import Any

from django.conf import settings
import requests

_local = threading.local()


class OutboundError(Exception):
    """No usable answer: connection refused, DNS, TLS, timeout. Always worth retrying."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text when the body is not JSON
    duration_ms: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def session() -> requests.Session:
    """One pooled session per thread (requests.Session is not thread-safe)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.headers["User-Agent"] = "crmsync/0.1"
    return _local.session


def request(method: str, url: str, *, headers: dict[str, str] | None = None, json: Any = None) -> Response:
    timeout = (settings.CRMSYNC["HTTP_CONNECT_TIMEOUT"], settings.CRMSYNC["HTTP_READ_TIMEOUT"])
    started = time.monotonic()
    try:
        raw = session().request(method, url, headers=headers, json=json, timeout=timeout)
    except requests.RequestException as exc:
        raise OutboundError(f"{type(exc).__name__}: {exc}") from exc
    duration_ms = int((time.monotonic() - started) * 1000)
    return Response(raw.status_code, dict(raw.headers), _body(raw), duration_ms)


def _body(raw: requests.Response) -> Any:
    try:
        return raw.json()
    except ValueError:
        return raw.text
