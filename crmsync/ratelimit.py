"""Each destination's request budget, shared by every worker on every machine.

The budget lives in the destination's RateBudget row and is changed under a row lock
(PostgreSQL `SELECT ... FOR UPDATE`; SQLite's IMMEDIATE transactions serialize writers), so
two workers never both take the last slot. The window slides: a request is granted only if
fewer than `rate_limit_requests` requests were granted in the last `rate_limit_window_seconds`,
so no window of that length ever holds more, wherever it starts. A fixed window would allow
twice the limit across a boundary. The CRM's own signals (429, Retry-After, rate-limit headers
running low) block the budget until the time they name, for every worker at once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
import time

from django.db import IntegrityError, transaction

from crmsync.models import Destination, RateBudget

# Requests leave us a little before the CRM sees them, and not always in the order granted;
# spacing windows this much wider keeps the CRM's own count under the limit.
SAFETY_MS = 100


@dataclass(frozen=True)
class Grant:
    granted: bool
    wait_seconds: float = 0.0
    reason: str = ""


def now_ms() -> int:
    return int(time.time() * 1000)


def acquire(destination: Destination) -> Grant:
    """Take one request slot now, or say how long until one frees up."""
    window_ms = destination.rate_limit_window_seconds * 1000 + SAFETY_MS
    limit = max(1, destination.rate_limit_requests)
    with transaction.atomic():
        budget = _locked(destination)
        now = now_ms()
        if budget.blocked_until_ms > now:
            return Grant(False, (budget.blocked_until_ms - now) / 1000, budget.blocked_reason or "blocked")
        day = datetime.now(dt_timezone.utc).date().isoformat()
        if budget.day != day:
            budget.day, budget.day_count = day, 0
        if budget.day_count >= destination.daily_budget:
            return Grant(False, _seconds_to_midnight(), "daily budget used up")
        recent = [stamp for stamp in budget.recent_ms if stamp > now - window_ms]
        if len(recent) >= limit:
            oldest_that_counts = recent[-limit]
            return Grant(False, max(0.01, (oldest_that_counts + window_ms - now) / 1000), "rate limit window full")
        recent.append(now)
        budget.recent_ms = recent[-limit:]
        budget.day_count += 1
        budget.save(update_fields=["recent_ms", "day", "day_count"])
    return Grant(True)


def block(destination: Destination, *, seconds: float, reason: str) -> None:
    """Stop every worker from calling this destination for `seconds` (never shortens a block)."""
    until = now_ms() + int(seconds * 1000)
    with transaction.atomic():
        budget = _locked(destination)
        if until > budget.blocked_until_ms:
            budget.blocked_until_ms, budget.blocked_reason = until, reason[:200]
            budget.save(update_fields=["blocked_until_ms", "blocked_reason"])


def _locked(destination: Destination) -> RateBudget:
    budget = RateBudget.objects.select_for_update().filter(destination_id=destination.pk).first()
    if budget is not None:
        return budget
    try:
        with transaction.atomic():
            RateBudget.objects.create(destination_id=destination.pk)
    except IntegrityError:  # created concurrently
        pass
    return RateBudget.objects.select_for_update().get(destination_id=destination.pk)


def _seconds_to_midnight() -> float:
    now = datetime.now(dt_timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()
