"""Ringing the doorbell. Tasks carry IDs only, and are never visible to a worker before the
transaction that made the work commits. If the broker is down the send is logged and the
sweeper finds the work later."""

import logging

from django.conf import settings
from django.db import transaction
from django_q.brokers import Broker, get_broker
from django_q.conf import Conf
from django_q.tasks import async_task

log = logging.getLogger(__name__)
_broker: Broker | None = None


def enqueue(task: str, *args: object) -> None:
    if _broker_shares_our_transaction():
        # The ORM broker's queue is a table in our database: inserting the message in the
        # same transaction as the work is a transactional outbox, one commit instead of two.
        async_task(task, *args, broker=_process_broker())
    else:
        transaction.on_commit(lambda: _send(task, *args), robust=True)


def _broker_shares_our_transaction() -> bool:
    return settings.Q_CLUSTER.get("orm") == "default" and not Conf.SYNC and not transaction.get_autocommit()


def _process_broker() -> Broker:
    """One broker per process: django-q2 otherwise builds one (and a Redis connection pool)
    for every task."""
    global _broker
    if _broker is None:
        _broker = get_broker()
    return _broker


def _send(task: str, *args: object) -> None:
    try:
        async_task(task, *args, broker=_process_broker())
    except Exception:  # noqa: BLE001 -- the broker's failure must never fail an acknowledged request
        # ("args" is a reserved LogRecord attribute, hence task_args)
        log.exception("could not enqueue task; the sweeper will retry", extra={"task": task, "task_args": args})
