"""The dashboard's data, read from the hourly counts of audit.buckets only: a fixed number of
statements over at most (hours x subjects x outcomes) rows, whatever the number of leads
(`make bench-dashboard` shows it at 10k and 1M leads)."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Max, Sum
from django.utils import timezone

from audit import buckets
from audit.models import HourlyCount
from delivery.models import Destination
from ingestion.models import Source, SourceCounter
from monitoring.conditions import conflict_model


@dataclass(frozen=True)
class Range:
    key: str
    label: str
    span: timedelta
    step: timedelta


RANGES = {
    "24h": Range("24h", "Last 24 hours", timedelta(hours=24), timedelta(hours=1)),
    "7d": Range("7d", "Last 7 days", timedelta(days=7), timedelta(hours=6)),
    "30d": Range("30d", "Last 30 days", timedelta(days=30), timedelta(days=1)),
}
DEFAULT_RANGE = "24h"

REFUSED = {SourceCounter.Outcome.REFUSED_AUTH, SourceCounter.Outcome.THROTTLED, SourceCounter.Outcome.OVERSIZE,
           SourceCounter.Outcome.BAD_REQUEST, SourceCounter.Outcome.BAD_ORIGIN}
SUBMISSION_OUTCOMES = ("accepted", "refused", "rejected", "spam")
# What the connector said about each record, in the order the chart stacks them.
PUSH_OUTCOMES = {
    "create": "created", "update": "updated", "noop": "no change", "transient": "retried (transient)",
    "rate_limited": "rate-limited", "auth": "credentials refused", "permanent": "needs review", "dead": "dead letter",
}


def dashboard_data(*, range_key: str, now: datetime | None = None) -> dict[str, Any]:
    chosen = RANGES.get(range_key, RANGES[DEFAULT_RANGE])
    now = now or timezone.now()
    start = buckets.hour_of(now - chosen.span) + timedelta(hours=1)
    bins = _bins(start, buckets.hour_of(now), chosen.step)
    rows = HourlyCount.objects.filter(hour__gte=start).order_by()
    # The charts read from the first bin's start (6 h / a day floored), so their first bar is a
    # whole period, not the part of it inside the range; the totals keep to the range.
    charted = HourlyCount.objects.filter(hour__gte=bins[0] if bins else start).order_by()
    sources = dict(Source.objects.order_by().values_list("pk", "name"))
    destinations = {pk: (name, budget) for pk, name, budget in
                    Destination.objects.order_by().values_list("pk", "name", "daily_budget")}
    return {
        "range": chosen.key, "range_label": chosen.label, "bins": [b.isoformat() for b in bins],
        "submissions": _submissions(rows, sources),
        "pushes": _pushes(rows, destinations),
        "latency": _latency(charted, bins, chosen.step),
        "backlog": _backlog(charted, bins, chosen.step, destinations),
        "budget": _budget(charted, bins, chosen.step, destinations),
        "dead_letters": _series(charted.filter(metric=buckets.PUSH, outcome="dead").values_list("hour")
                                .annotate(n=Sum("count")), bins, chosen.step, sum),
        "conflicts": (_series(charted.filter(metric=buckets.OPEN_CONFLICTS).values_list("hour").annotate(n=Max("count")),
                              bins, chosen.step, max) if conflict_model() is not None else None),
    }


def _bins(start: datetime, last_hour: datetime, step: timedelta) -> list[datetime]:
    first = start if step <= timedelta(hours=1) else _floor(start, step)
    bins, at = [], first
    while at <= last_hour:
        bins.append(at)
        at += step
    return bins


def _floor(moment: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return epoch + (moment - epoch) // step * step


def _series(pairs, bins: list[datetime], step: timedelta, combine) -> list[int]:
    """Hourly (hour, value) pairs folded into the chart's bins (sum for counts, max for gauges)."""
    index = {b: i for i, b in enumerate(bins)}
    values: dict[int, list[int]] = defaultdict(list)
    for hour, value in pairs:
        position = index.get(_floor(hour, step))
        if position is not None:
            values[position].append(value)
    return [combine(values[i]) if values.get(i) else 0 for i in range(len(bins))]


def _submissions(rows, sources: dict[int, str]) -> dict[str, Any]:
    totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SUBMISSION_OUTCOMES, 0))
    for source_id, outcome, n in rows.filter(metric=buckets.INTAKE).values_list("subject_id", "outcome").annotate(n=Sum("count")):
        group = "refused" if outcome in REFUSED else outcome
        if group in SUBMISSION_OUTCOMES:
            totals[source_id][group] += n
    ids = sorted(totals, key=lambda pk: sources.get(pk, ""))
    return {"names": [sources.get(pk, f"source {pk} (deleted)") for pk in ids],
            "series": {outcome: [totals[pk][outcome] for pk in ids] for outcome in SUBMISSION_OUTCOMES}}


def _pushes(rows, destinations: dict[int, tuple[str, int]]) -> dict[str, Any]:
    totals: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(PUSH_OUTCOMES, 0))
    for destination_id, outcome, n in rows.filter(metric=buckets.PUSH).values_list("subject_id", "outcome").annotate(n=Sum("count")):
        if outcome in PUSH_OUTCOMES:
            totals[destination_id][outcome] += n
    ids = sorted(totals, key=lambda pk: destinations.get(pk, ("",))[0])
    return {"names": [destinations.get(pk, (f"destination {pk} (deleted)",))[0] for pk in ids],
            "series": {label: [totals[pk][outcome] for pk in ids] for outcome, label in PUSH_OUTCOMES.items()}}


def _latency(rows, bins: list[datetime], step: timedelta) -> dict[str, list]:
    index = {b: i for i, b in enumerate(bins)}
    histograms: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for hour, outcome, n in rows.filter(metric=buckets.LATENCY).values_list("hour", "outcome").annotate(n=Sum("count")):
        position = index.get(_floor(hour, step))
        if position is not None:
            histograms[position][outcome] += n
    quantile = buckets.latency_quantile
    return {"p50": [_round(quantile(histograms[i], 0.5)) if i in histograms else None for i in range(len(bins))],
            "p95": [_round(quantile(histograms[i], 0.95)) if i in histograms else None for i in range(len(bins))]}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _by_subject(rows, metric: str) -> dict[int, list[tuple[datetime, int]]]:
    pairs: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for subject_id, hour, n in rows.filter(metric=metric).values_list("subject_id", "hour").annotate(n=Max("count")):
        pairs[subject_id].append((hour, n))
    return pairs


def _backlog(rows, bins, step, destinations) -> dict[str, list[int]]:
    series = {}
    for subject_id, pairs in sorted(_by_subject(rows, buckets.BACKLOG).items()):
        name = "received submissions" if subject_id == 0 else f"pending: {destinations.get(subject_id, (subject_id,))[0]}"
        series[name] = _series(pairs, bins, step, max)
    return series


def _budget(rows, bins, step, destinations) -> dict[str, list[float]]:
    series = {}
    for subject_id, pairs in sorted(_by_subject(rows, buckets.BUDGET_USED).items()):
        name, budget = destinations.get(subject_id, (f"destination {subject_id}", 0))
        if budget:
            series[name] = [round(100.0 * used / budget, 2) for used in _series(pairs, bins, step, max)]
    return series
