"""django-q2 entry points: thin adapters over services. They take IDs, never model instances."""

from django.conf import settings

from crmsync import services
from crmsync.queue import enqueue

DISPATCH_LIMIT = 500


def push_dispatch() -> int:
    claimed = services.push_dispatch_due(limit=DISPATCH_LIMIT)
    if claimed == DISPATCH_LIMIT:
        enqueue("crmsync.tasks.push_dispatch")  # more may be waiting
    return claimed


def pipeline_sweep() -> str:
    report = services.pipeline_sweep(stale_seconds=settings.CRMSYNC["SWEEP_STALE_SECONDS"])
    return f"requeued {report.submissions_requeued} submissions; dispatch rung: {report.dispatch_rung}"
