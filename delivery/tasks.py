"""django-q2 entry points of the delivery stage: thin adapters over its services."""

from core.queue import enqueue
from delivery import services

DISPATCH_LIMIT = 500


def push_dispatch() -> int:
    claimed = services.push_dispatch_due(limit=DISPATCH_LIMIT)
    if claimed == DISPATCH_LIMIT:
        enqueue("delivery.tasks.push_dispatch")  # more may be waiting
    return claimed
