"""The one seam for outbound HTTP. Every call has a timeout; failures to get an answer at all
become one exception type. HTTP error statuses are returned, because only the caller knows
what a 400 or a 409 means for its CRM or provider. Retries everywhere wait `backoff_seconds`.

Calls to a destination go through its `delivery.session.DestinationSession`, a
`requests.Session` built on this module's timeouts.
"""

from collections.abc import Mapping
from dataclasses import dataclass
import logging
import random
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

log = logging.getLogger(__name__)
_local = threading.local()
USER_AGENT = "crmsync/0.1"


class OutboundError(Exception):
    """No usable answer: connection refused, DNS, TLS, timeout. Always worth retrying."""


@dataclass(frozen=True)
class Response:
    status: int
    # Case-insensitive, as HTTP header names are: a proxy or an HTTP/2 hop may send
    # "retry-after" where the CRM wrote "Retry-After", and readers look names up as documented.
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or the text when the body is not JSON
    duration_ms: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def timeouts() -> tuple[float, float]:
    return settings.CRMSYNC["HTTP_CONNECT_TIMEOUT"], settings.CRMSYNC["HTTP_READ_TIMEOUT"]


def session() -> requests.Session:
    """One pooled session per thread (requests.Session is not thread-safe), for calls that
    belong to no destination (Meta's Graph API)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
        _local.session.headers["User-Agent"] = USER_AGENT
    return _local.session


def request(method: str, url: str, *, headers: dict[str, str] | None = None, json: Any = None,
            data: Any = None, via: requests.Session | None = None) -> Response:
    started = time.monotonic()
    try:
        raw = (via or session()).request(method, url, headers=headers, json=json, data=data, timeout=timeouts())
    except requests.RequestException as exc:
        raise OutboundError(f"{type(exc).__name__}: {exc}") from exc
    duration_ms = int((time.monotonic() - started) * 1000)
    return Response(raw.status_code, CaseInsensitiveDict(raw.headers), body_of(raw), duration_ms)


def body_of(raw: requests.Response) -> Any:
    try:
        return raw.json()
    except (ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the parser's stack (a broken or hostile
        # answer); keep it as text rather than crash the worker.
        return raw.text


class _PlainHTTPAdapter(HTTPAdapter):
    """Sends https://host/... as http://host/... . Mounted only for a host the destination is
    configured to reach over plain HTTP (the built-in sandbox), because simple-salesforce
    always builds https:// URLs from the instance host."""

    def send(self, request, *args, **kwargs):  # noqa: ANN001
        request.url = "http://" + request.url[len("https://"):]
        return super().send(request, *args, **kwargs)


def allow_plain_http(session: requests.Session, url: str) -> None:
    parts = urlsplit(url or "")
    if parts.scheme == "http" and parts.netloc:
        session.mount(f"https://{parts.netloc}/", _PlainHTTPAdapter())


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), at least one second."""
    base = settings.CRMSYNC["PUSH_BACKOFF_BASE_SECONDS"]
    cap = settings.CRMSYNC["PUSH_BACKOFF_CAP_SECONDS"]
    return max(1.0, random.uniform(0, min(cap, base * 2 ** (attempt - 1))))
