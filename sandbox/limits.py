"""The sandbox CRMs' settings rows and request counters, kept in the database.

Counters live in SandboxRateWindow rows so that every gunicorn process draws on one budget, as
every app of a CRM account does. Windows are fixed (aligned to the interval) rather than
rolling: close enough for a client to meet its 429s, and one row per window kind. HubSpot's
rate limits on top of these counters are in hubspot/rate_limits.py.
"""

import time

from django.db import IntegrityError, transaction
from django.db.models import Case, F, QuerySet, Value, When

from sandbox.models import SandboxRateWindow, SandboxSettings

DAY_MS = 86_400_000
Window = SandboxRateWindow.Window


# Where a CRM's defaults differ from the model's (HubSpot's are the model's).
CRM_DEFAULTS = {
    "hubspot": {"token_lifetime_seconds": 1800},  # HubSpot's OAuth access tokens last 30 minutes
    # Developer Edition's daily API allocation; Salesforce's default session timeout (2 h).
    "salesforce": {"daily_limit": 15_000, "token_lifetime_seconds": 7200},
}


def settings_get(*, crm: str) -> SandboxSettings:
    """The CRM's knobs; created with defaults on first use, so a flushed database still works."""
    return SandboxSettings.objects.get_or_create(crm=crm, defaults=CRM_DEFAULTS.get(crm, {}))[0]


def sequence_next(*, crm: str) -> int:
    """The next number of the CRM's data requests (1, 2, ...), shared by every process."""
    with transaction.atomic():
        return window_hit(crm, Window.SEQUENCE, 0)


def window_start(now_ms: int, interval_ms: int) -> int:
    """The start (epoch milliseconds) of the fixed window of `interval_ms` that holds `now_ms`."""
    return now_ms - now_ms % max(1, interval_ms)


def daily_used(*, crm: str) -> int:
    """Requests counted in the CRM's current daily window, without counting one more."""
    now_ms = int(time.time() * 1000)
    start = window_start(now_ms, DAY_MS)
    row = SandboxRateWindow.objects.filter(crm=crm, window=Window.DAILY, window_start=start).first()
    return row.count if row else 0


def daily_count(*, crm: str) -> int:
    """Count one request in the CRM's daily window and return the window's count."""
    with transaction.atomic():
        return window_hit(crm, Window.DAILY, window_start(int(time.time() * 1000), DAY_MS))


def window_hit(crm: str, window: str, start: int) -> int:
    """Add one to the window's count (restarting it in a new window) and return the count.
    Call it inside a transaction."""
    rows = SandboxRateWindow.objects.filter(crm=crm, window=window)
    if not _bump(rows, start):
        try:
            with transaction.atomic():
                SandboxRateWindow.objects.create(crm=crm, window=window, window_start=start, count=1)
            return 1
        except IntegrityError:  # another process created the row first; count on it
            _bump(rows, start)
    # Our UPDATE holds the row lock until commit (PostgreSQL) or the database lock (SQLite
    # IMMEDIATE), so this reads our own increment, not another process's.
    return rows.values_list("count", flat=True).get()


def _bump(rows: QuerySet, start: int) -> int:
    # One atomic UPDATE: SET expressions see the row as it was, so CASE compares the old start.
    return rows.update(count=Case(When(window_start=start, then=F("count") + 1), default=Value(1)),
                       window_start=start)
