"""Schedules, declared in code and synced idempotently by `manage.py sync_schedules` (which
`manage.py worker` runs at start), so no one has to click them into the admin."""

from dataclasses import dataclass

from django.db import transaction
from django_q.models import Schedule


@dataclass(frozen=True)
class Declared:
    name: str
    func: str
    minutes: int


SCHEDULES = (
    # Re-rings the queue for submissions and push jobs that a lost message or a dead worker
    # left behind, and for retries whose backoff has run out.
    Declared("crmsync: pipeline sweep", "crmsync.tasks.pipeline_sweep", minutes=1),
    # Forgets idempotency keys past CRMSYNC_IDEMPOTENCY_RETENTION_DAYS.
    Declared("crmsync: prune idempotency keys", "ingestion.tasks.idempotency_keys_prune", minutes=60),
    # Checks the alert rules, samples the dashboard's gauges and sends due notifications.
    Declared("crmsync: evaluate alerts", "monitoring.tasks.alerts_evaluate", minutes=1),
)
PREFIX = "crmsync: "


def schedules_sync() -> list[str]:
    """Create or update every declared schedule; delete ours that are no longer declared."""
    with transaction.atomic():
        for declared in SCHEDULES:
            Schedule.objects.update_or_create(
                name=declared.name,
                defaults={"func": declared.func, "schedule_type": Schedule.MINUTES,
                          "minutes": declared.minutes, "repeats": -1},
            )
        names = [d.name for d in SCHEDULES]
        Schedule.objects.filter(name__startswith=PREFIX).exclude(name__in=names).delete()
    return names
