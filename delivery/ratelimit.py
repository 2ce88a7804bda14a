"""Each destination's request budget, shared by every worker on every machine.

The budget lives in the destination's RateBudget row and is changed under a row lock
(PostgreSQL `SELECT ... FOR UPDATE`; SQLite's IMMEDIATE transactions serialize writers), so
two workers never both take the last slot. The window slides (see acquire()), so no window of
that length ever holds more than the limit, wherever it starts: a fixed window would allow
twice the limit across a boundary. The CRM's own signals (429, Retry-After, rate-limit headers
running low) block the budget until the time they name, for every worker at once.

Every function takes the time from `clock` (seconds since the epoch, `time.time` unless a
caller such as a test passes another), so the window can be checked without waiting it out.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
import time
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction

from delivery.models import Destination, RateBudget

Clock = Callable[[], float]

# Requests leave us a little before the CRM sees them, and not always in the order granted;
# spacing windows this much wider keeps the CRM's own count under the limit.
SAFETY_MS = 100


@dataclass(frozen=True)
class Grant:
    granted: bool
    wait_seconds: float = 0.0
    reason: str = ""
    ticket: str = ""  # hand back to release() when the call has its answer
    kind: str = ""  # why not granted, for metrics: window, blocked (the CRM's signal) or daily


def now_ms(clock: Clock = time.time) -> int:
    return int(clock() * 1000)


def acquire(destination: Destination, *, clock: Clock = time.time) -> Grant:
    """Take one request slot now, or say how long until one frees up.

    A request may reach the CRM some time after its slot was granted (a busy machine, a slow
    connection), so counting grant times alone could let the CRM see more than the limit in
    one window. Each slot is therefore held from its grant until `window` after its answer
    came back (release()): the CRM cannot have seen it earlier than the grant or later than
    the answer, so no window of that length can hold more than `limit` of them."""
    window_ms = destination.rate_limit_window_seconds * 1000 + SAFETY_MS
    limit = max(1, destination.rate_limit_requests)
    with transaction.atomic():
        budget = _locked(destination)
        now = now_ms(clock)
        if budget.blocked_until_ms > now:
            return Grant(False, (budget.blocked_until_ms - now) / 1000, budget.blocked_reason or "blocked", kind="blocked")
        day = datetime.fromtimestamp(now / 1000, dt_timezone.utc).date().isoformat()
        if budget.day != day:
            budget.day, budget.day_count = day, 0
        if budget.day_count >= destination.daily_budget:
            return Grant(False, seconds_to_midnight(clock), "daily budget used up", kind="daily")
        holding = [slot for slot in _slots(budget) if _frees_at(slot, window_ms) > now]
        if len(holding) >= limit:
            frees = sorted(_frees_at(slot, window_ms) for slot in holding)
            wait = frees[len(holding) - limit] - now
            # Slots still waiting for their answer free up when it comes: look again soon.
            return Grant(False, max(0.01, min(wait, 250) / 1000 if wait > window_ms else wait / 1000),
                         "rate limit window full", kind="window")
        ticket = uuid.uuid4().hex[:12]
        budget.recent_ms = [*holding, [now, 0, ticket]]
        budget.day_count += 1
        budget.save(update_fields=["recent_ms", "day", "day_count"])
    return Grant(True, ticket=ticket)


def release(destination: Destination, ticket: str, *, clock: Clock = time.time) -> None:
    """The call holding this slot has its answer (or gave up): its window starts now."""
    if not ticket:
        return
    with transaction.atomic():
        budget = _locked(destination)
        now = now_ms(clock)
        budget.recent_ms = [[slot[0], now, slot[2]] if slot[2] == ticket and not slot[1] else slot for slot in _slots(budget)]
        budget.save(update_fields=["recent_ms"])


def _slots(budget: RateBudget) -> list[list]:
    return [slot for slot in budget.recent_ms if isinstance(slot, list) and len(slot) == 3]


def _frees_at(slot: list, window_ms: int) -> int:
    granted, answered, _ = slot
    if answered:
        return answered + window_ms
    # Never answered (its worker died): it is over once no answer can come any more.
    return granted + _longest_call_ms() + window_ms


def _longest_call_ms() -> int:
    return int((settings.CRMSYNC["HTTP_CONNECT_TIMEOUT"] + settings.CRMSYNC["HTTP_READ_TIMEOUT"]) * 1000)


def block(destination: Destination, *, seconds: float, reason: str, clock: Clock = time.time) -> None:
    """Stop every worker from calling this destination for `seconds` (never shortens a block)."""
    until = now_ms(clock) + int(seconds * 1000)
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


def seconds_to_midnight(clock: Clock = time.time) -> float:
    now = datetime.fromtimestamp(clock(), dt_timezone.utc)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()
