"""A destination's HTTP session: a `requests.Session` (so simple-salesforce can be given it too)
that takes a slot of the destination's shared rate budget before each request and reads the
CRM's rate-limit signals (429/Retry-After, HubSpot's and Salesforce's usage headers) from each
answer."""

import re
import time
from urllib.parse import urlsplit

from django.conf import settings
import requests

from core import metrics
from core.outbound import USER_AGENT, allow_plain_http, timeouts
from delivery import ratelimit
from delivery.models import Destination


class RateLimitWait(Exception):
    """The destination's budget has no slot soon enough; try the work again after `seconds`."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(f"{reason}; next slot in {seconds:.1f} s")
        self.seconds = seconds
        self.reason = reason


class DestinationSession(requests.Session):
    """Paced by the destination's shared budget; reads its CRM's rate-limit signals."""

    def __init__(self, destination: Destination, *, max_wait: float | None = None) -> None:
        super().__init__()
        self.destination = destination
        self.max_wait = settings.CRMSYNC["RATE_MAX_WAIT_SECONDS"] if max_wait is None else max_wait
        self.headers["User-Agent"] = USER_AGENT
        self.calls = 0
        if urlsplit(destination.base_url).scheme == "http":
            # Only a destination configured over plain HTTP (the built-in sandbox) may reach
            # its instance over plain HTTP; an https destination is never downgraded.
            for url in (destination.base_url, destination.instance_url):
                allow_plain_http(self, url)

    def request(self, method, url, *args, **kwargs):  # noqa: ANN001 - requests' own signature
        ticket = self.wait_for_slot()
        kwargs.setdefault("timeout", timeouts())
        self.calls += 1
        started, status = time.monotonic(), None
        try:
            response = super().request(method, url, *args, **kwargs)
            status = response.status_code
        finally:
            ratelimit.release(self.destination, ticket)
            metrics.crm_request(destination=self.destination.name, status=status, seconds=time.monotonic() - started)
        self.observe(response)
        return response

    def wait_for_slot(self) -> str:
        waited = 0.0
        while True:
            grant = ratelimit.acquire(self.destination)
            if grant.granted:
                return grant.ticket
            if waited + grant.wait_seconds > self.max_wait:
                metrics.rate_wait(destination=self.destination.name, reason=grant.kind)
                raise RateLimitWait(grant.wait_seconds, grant.reason)
            metrics.rate_wait(destination=self.destination.name, reason=grant.kind, seconds=grant.wait_seconds)
            time.sleep(grant.wait_seconds)
            waited += grant.wait_seconds

    def observe(self, response: requests.Response) -> None:
        """Block the budget before the CRM refuses, or as long as it asked when it did."""
        headers = response.headers
        if response.status_code == 429:
            seconds = _float(headers.get("Retry-After")) or 10.0
            ratelimit.block(self.destination, seconds=seconds, reason=f"CRM answered 429 (retry after {seconds:g} s)")
            return
        remaining = _float(headers.get("X-HubSpot-RateLimit-Remaining"))
        if remaining is not None and remaining < 1:
            interval = (_float(headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")) or 10_000) / 1000
            ratelimit.block(self.destination, seconds=interval, reason="HubSpot window used up")
        daily_remaining = _float(headers.get("X-HubSpot-RateLimit-Daily-Remaining"))
        if daily_remaining is not None and daily_remaining < 1:
            ratelimit.block(self.destination, seconds=ratelimit.seconds_to_midnight(), reason="HubSpot daily limit used up")
        usage = _SFORCE_USAGE.search(headers.get("Sforce-Limit-Info", ""))
        if usage:
            used, allocation = int(usage[1]), int(usage[2])
            # The allocation is a rolling 24 hours and Salesforce sends no Retry-After: stop
            # short of it and look again in a while.
            if allocation and used >= allocation * settings.CRMSYNC["SALESFORCE_USAGE_CEILING"]:
                ratelimit.block(self.destination, seconds=900, reason=f"Salesforce API usage {used}/{allocation}")


_SFORCE_USAGE = re.compile(r"api-usage=(\d+)/(\d+)")


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


