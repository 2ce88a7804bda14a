"""django-q2 entry points of the delivery stage: thin adapters over its services."""

from core.queue import enqueue
from delivery import services, sync

DISPATCH_LIMIT = 500


def push_dispatch() -> int:
    claimed = services.push_dispatch_due(limit=DISPATCH_LIMIT)
    if claimed == DISPATCH_LIMIT:
        enqueue("delivery.tasks.push_dispatch")  # more may be waiting
    return claimed


def sync_poll(destination_id: int) -> str:
    """One reconciliation poll of a destination (two-way sync)."""
    report = sync.destination_poll(destination_id=destination_id)
    return (report.skipped or report.error
            or f"read {report.records_read}, applied {report.changes_applied}, conflicts {report.conflicts_opened}")
