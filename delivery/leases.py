"""The leases of claimed push jobs.

A claim holds its jobs for a short lease (`CRMSYNC_PUSH_LEASE_SECONDS`, 15 s) that a heartbeat
thread renews every third of it for as long as the dispatch runs. A killed worker's jobs are
therefore due again within one lease, yet a slow CRM call (a read timeout of 30 s, a wait for
the rate budget) never lets the lease run out under a live worker, which would push the lead
twice. Renewing between calls instead would have to outlast the slowest call.

When the worker is asked to stop (`core.stopping`), the heartbeat hands the jobs still held back
before the worker's grace period ends, without counting an attempt, so that they are pushed
again at once by whichever worker runs next instead of waiting out the lease."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
import logging
import threading
import time
import uuid

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from core.stopping import stop_deadline
from delivery.models import PushJob

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.25  # how soon the heartbeat notices a stop


def lease_seconds() -> int:
    return settings.CRMSYNC["PUSH_LEASE_SECONDS"]


def lease_until():
    return timezone.now() + timedelta(seconds=lease_seconds())


@contextmanager
def lease_heartbeat(token: uuid.UUID, *, hand_back: Callable[[], None]) -> Iterator[None]:
    """Keep the claim `token` leased while the body runs; call hand_back() from the heartbeat
    thread if the worker's stop deadline comes first."""
    if transaction.get_connection().in_atomic_block:
        # The claim is not committed yet (a caller's transaction, as in a unit test): no other
        # worker can see it, so there is no lease to keep, and another connection's renewal
        # would wait for that transaction's locks.
        yield
        return
    beat = _Heartbeat(token, hand_back)
    beat.start()
    try:
        yield
    finally:
        beat.stop()


class _Heartbeat(threading.Thread):
    def __init__(self, token: uuid.UUID, hand_back: Callable[[], None]) -> None:
        super().__init__(name=f"lease-{token.hex[:8]}", daemon=True)
        self.token = token
        self.hand_back = hand_back
        self.done = threading.Event()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=5)

    def run(self) -> None:
        try:
            self._beat()
        finally:
            connections.close_all()  # this thread's own connection

    def _beat(self) -> None:
        every = lease_seconds() / 3
        next_renewal = time.monotonic() + every
        while not self.done.wait(_TICK_SECONDS):
            deadline = stop_deadline()
            if deadline is not None and time.monotonic() >= deadline:
                self._safely(self.hand_back, "hand back")
                return
            if time.monotonic() >= next_renewal:
                self._safely(self._renew, "renew")
                next_renewal = time.monotonic() + every

    def _renew(self) -> None:
        PushJob.objects.filter(claim_token=self.token, status=PushJob.Status.IN_PROGRESS).update(
            leased_until=lease_until())

    def _safely(self, action: Callable[[], None], what: str) -> None:
        try:
            action()
        except Exception:  # noqa: BLE001 -- a database blip: the next beat tries again, the lease covers two
            log.exception("push lease %s failed", what)
