"""Hourly counts kept as work happens: the dashboard and alerts read these rows, never
COUNT(*) over submissions, leads or push jobs, so a page costs the same at ten thousand leads
as at a million (bench/dashboard.py). Stages call these functions with plain values at the
point where the work is decided; the audit stage knows nothing of them.

Each increment is one UPDATE ... SET count = count + n on the row of its hour, metric,
subject and outcome (an INSERT the first time in that hour). It runs once the caller's
transaction commits: rolled-back work counts nothing, and no bucket row stays locked while a
stage's transaction runs (on PostgreSQL that would queue every worker behind the first).
The intake's accepted requests are counted by the worker that claims them, not by the
request, which keeps its one INSERT (docs/architecture.md, "Decisions").
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
import functools

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from audit.models import HourlyCount

# Metrics and their outcomes (subject: the source's or destination's ID, 0 for none).
INTAKE = "intake"  # source: accepted, spam, processed, rejected, and each refusal/duplicate outcome of SourceCounter
CONSENT = "consent"  # source: given / missing (did the mapped submission carry marketing consent)
NEW_LEAD = "new_lead"  # 0: owned / unowned (a new lead after routing)
PUSH = "push"  # destination: each connector outcome (create, update, noop, transient, permanent, auth,
#                rate_limited), dead (a job became a dead letter) and rate_wait (jobs handed back for the budget)
LATENCY = "latency"  # destination: receipt to CRM acknowledgement, as a histogram (outcome le_<seconds>)
# Gauges: the highest sample in the hour (monitoring samples them each time it evaluates alerts).
BACKLOG = "backlog"  # 0: received submissions waiting; destination: its pending push jobs
BUDGET_USED = "budget_used"  # destination: requests counted against its daily budget today
OPEN_CONFLICTS = "open_conflicts"  # 0: two-way sync conflicts open

# Upper bounds (seconds) of the latency histogram's buckets; past the last: le_inf.
LATENCY_BOUNDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600)


def hour_of(moment: datetime | None = None) -> datetime:
    moment = (moment or timezone.now()).astimezone(dt_timezone.utc)
    return moment.replace(minute=0, second=0, microsecond=0)


def count_add(*, metric: str, outcome: str, subject_id: int = 0, n: int = 1, at: datetime | None = None) -> None:
    """Add n events to the hour of `at` (now), once the caller's transaction commits."""
    if n > 0:
        transaction.on_commit(functools.partial(_add, metric, subject_id, str(outcome)[:40], n, hour_of(at)), robust=True)


def counts_add(*, metric: str, counts: Mapping[str, int], subject_id: int = 0, at: datetime | None = None) -> None:
    """Several outcomes of one metric and subject at once (a batch's results): one UPDATE each."""
    for outcome, n in counts.items():
        count_add(metric=metric, outcome=outcome, subject_id=subject_id, n=n, at=at)


def gauge_record(*, metric: str, value: int, subject_id: int = 0, outcome: str = "value", at: datetime | None = None) -> None:
    """Keep the highest sample of a gauge (a backlog, a budget) in the hour."""
    hour = hour_of(at)
    rows = HourlyCount.objects.filter(metric=metric, hour=hour, subject_id=subject_id, outcome=outcome)
    if rows.update(count=Greatest(F("count"), value)):
        return
    try:
        with transaction.atomic():
            HourlyCount.objects.create(metric=metric, hour=hour, subject_id=subject_id, outcome=outcome, count=value)
    except IntegrityError:  # created concurrently
        rows.update(count=Greatest(F("count"), value))


def latency_observe(*, metric: str = LATENCY, seconds: Iterable[float], subject_id: int = 0,
                    at: datetime | None = None) -> None:
    counts_add(metric=metric, subject_id=subject_id, at=at, counts=Counter(latency_label(s) for s in seconds))


def latency_label(seconds: float) -> str:
    return next((f"le_{bound}" for bound in LATENCY_BOUNDS if seconds <= bound), "le_inf")


def latency_quantile(counts: Mapping[str, int], q: float) -> float | None:
    """The q-quantile (0..1) of a latency histogram, interpolated linearly inside its bucket
    as Prometheus' histogram_quantile does; None without observations. Past the last bound
    the answer is that bound (the histogram cannot say more)."""
    total = sum(counts.values())
    if not total:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for bound in LATENCY_BOUNDS:
        here = counts.get(f"le_{bound}", 0)
        if here and seen + here >= rank:
            return lower + (bound - lower) * (rank - seen) / here
        seen += here
        lower = float(bound)
    return float(LATENCY_BOUNDS[-1]) if counts.get("le_inf") else lower


def _add(metric: str, subject_id: int, outcome: str, n: int, hour: datetime) -> None:
    rows = HourlyCount.objects.filter(metric=metric, hour=hour, subject_id=subject_id, outcome=outcome)
    if rows.update(count=F("count") + n):
        return
    try:
        with transaction.atomic():
            HourlyCount.objects.create(metric=metric, hour=hour, subject_id=subject_id, outcome=outcome, count=n)
    except IntegrityError:  # created concurrently: add to the winner's row
        rows.update(count=F("count") + n)

