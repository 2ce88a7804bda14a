"""Ringing the doorbell. Tasks carry IDs only and are sent after the transaction that made the
work commits; if the broker is down the send is logged and the sweeper finds the work later."""

import logging

from django.db import transaction
from django_q.tasks import async_task

log = logging.getLogger(__name__)


def enqueue_on_commit(task: str, *args: object) -> None:
    transaction.on_commit(lambda: _send(task, *args), robust=True)


def _send(task: str, *args: object) -> None:
    try:
        async_task(task, *args)
    except Exception:  # noqa: BLE001 -- the broker's failure must never fail an acknowledged request
        log.exception("could not enqueue task; the sweeper will retry", extra={"task": task, "args": args})
