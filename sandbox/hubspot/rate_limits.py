"""HubSpot's rate limits in the sandbox: its windows, X-HubSpot-RateLimit-* headers and 429s.

A data call counts against the ten-secondly and daily windows (and the per-second one of search)
on the shared counters of sandbox/limits.py, so every gunicorn process draws on one budget.
"""

from dataclasses import dataclass
import time

from django.db import transaction

from sandbox.hubspot.errors import HubSpotError, rate_limit_error
from sandbox.limits import DAY_MS, Window, window_hit, window_start
from sandbox.models import SandboxSettings

SECOND_MS = 1_000


@dataclass(frozen=True)
class Usage:
    limits: SandboxSettings
    used: int
    daily_used: int
    search_used: int | None = None

    def headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self.limits.rate_limit_max),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.limits.rate_limit_max - self.used)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.limits.rate_limit_interval_ms),
            "X-HubSpot-RateLimit-Daily": str(self.limits.daily_limit),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.limits.daily_limit - self.daily_used)),
        }

    def refusal(self) -> HubSpotError | None:
        # DAILY first: a client that sees it must stop until the reset, not merely back off.
        if self.daily_used > self.limits.daily_limit:
            return rate_limit_error("DAILY")
        if self.used > self.limits.rate_limit_max:
            return rate_limit_error("TEN_SECONDLY_ROLLING")
        if self.search_used is not None and self.search_used > self.limits.search_limit_per_second:
            return rate_limit_error("SECONDLY")
        return None


def request_count(limits: SandboxSettings, *, search: bool = False) -> Usage:
    """Count one request against every window that applies to it; refused ones count too."""
    now_ms = int(time.time() * 1000)
    with transaction.atomic():
        used = window_hit(limits.crm, Window.TEN_SECONDLY, window_start(now_ms, limits.rate_limit_interval_ms))
        daily = window_hit(limits.crm, Window.DAILY, window_start(now_ms, DAY_MS))
        searched = (window_hit(limits.crm, Window.SEARCH_SECONDLY, window_start(now_ms, SECOND_MS))
                    if search else None)
    return Usage(limits, used, daily, searched)
