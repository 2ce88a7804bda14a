"""Sample history for the dashboard: the hourly counts a stretch of traffic would have left,
written in one bulk insert (the tests, the browser test and `make bench-dashboard` use it)."""

from collections import Counter
from datetime import datetime, timedelta

from audit import buckets
from audit.models import HourlyCount


def history_seed(*, source_ids: list[int], destination_ids: list[int], now: datetime, per_hour: int = 40,
              days: int = 7) -> int:
    """Returns how many bucket rows it wrote."""
    counts: Counter = Counter()
    peaks: dict = {}
    for hours_ago in range(days * 24):
        hour = buckets.hour_of(now - timedelta(hours=hours_ago))
        busy = per_hour + (hours_ago % 24) * 2  # a daily rhythm, so the lines are not flat
        for position, source_id in enumerate(source_ids, start=1):
            for outcome, n in {"accepted": busy * position, "rejected": busy // 10, "spam": 2, "refused_auth": 1,
                               "throttled": hours_ago % 3}.items():
                counts[(buckets.INTAKE, hour, source_id, outcome)] += n
        for destination_id in destination_ids:
            for outcome, n in {"create": busy, "update": busy // 2, "noop": 3, "transient": busy // 20,
                               "rate_limited": 1, "dead": 1 if hours_ago % 12 == 0 else 0}.items():
                counts[(buckets.PUSH, hour, destination_id, outcome)] += n
            for seconds in [2, 3, 4, 8, 12, 15, 25, 40, 90][: 5 + hours_ago % 5]:
                counts[(buckets.LATENCY, hour, destination_id, buckets.latency_label(seconds))] += 1
            peaks[(buckets.BACKLOG, hour, destination_id, "value")] = hours_ago % 17
            peaks[(buckets.BUDGET_USED, hour, destination_id, "value")] = busy * (24 - hour.hour)
        peaks[(buckets.BACKLOG, hour, 0, "value")] = hours_ago % 5
        peaks[(buckets.OPEN_CONFLICTS, hour, 0, "value")] = 3 + hours_ago % 4
    rows = [HourlyCount(metric=metric, hour=hour, subject_id=subject, outcome=outcome, count=n)
            for (metric, hour, subject, outcome), n in {**counts, **peaks}.items() if n]
    HourlyCount.objects.bulk_create(rows, batch_size=2000)
    return len(rows)
