"""The leases of claimed push jobs.

A claim holds its jobs for a short lease (`CRMSYNC_PUSH_LEASE_SECONDS`, 15 s) that a heartbeat
thread renews every third of it for as long as the dispatch runs. A killed worker's jobs are
therefore due again within one lease, yet a slow CRM call (a read timeout of 30 s, a wait for
the rate budget) never lets the lease run out under a live worker, which would push the lead
twice. Renewing between calls instead would have to outlast the slowest call.

When the worker is asked to stop (`core.stopping`), the heartbeat hands back the jobs whose
request has not gone out before the worker's grace period ends, without counting an attempt, so
that they are pushed again at once by whichever worker runs next instead of waiting out the
lease. A job whose request has gone out stays leased until that request can no longer reach the
CRM (`in_flight_until`): its answer may still come and settle it, and if the worker is killed
first, no other worker sends it again while the CRM may still apply the first request (a
duplicate record where the CRM's search lags its writes, or the destination only creates). Its
attempt counts, as for a killed worker's (`delivery.services._claim`)."""

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

from core.outbound import timeouts
from core.stopping import stop_deadline
from delivery.models import PushJob

log = logging.getLogger(__name__)

_TICK_SECONDS = 0.25  # how soon the heartbeat notices a stop


def lease_seconds() -> int:
    return settings.CRMSYNC["PUSH_LEASE_SECONDS"]


def lease_until():
    return timezone.now() + timedelta(seconds=lease_seconds())


def in_flight_until():
    """The lease of a job whose request is in flight while its worker stops: long enough for a
    request sent before the next renewal (a batch call may make several) to connect and be read
    to its end, the outbound timeouts (`core.outbound.timeouts`)."""
    connect, read = timeouts()
    return timezone.now() + timedelta(seconds=lease_seconds() / 3 + connect + read)


@contextmanager
def lease_heartbeat(token: uuid.UUID, *, hand_back: Callable[[], None]) -> Iterator[None]:
    """Keep the claim `token` leased while the body runs; call hand_back() from the heartbeat
    thread if the worker's stop deadline comes first, then keep what it left claimed (requests
    in flight) leased until those requests can no longer land."""
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
        handed_back = False
        while not self.done.wait(_TICK_SECONDS):
            deadline = stop_deadline()
            if not handed_back and deadline is not None and time.monotonic() >= deadline:
                handed_back = self._safely(self.hand_back, "hand back")
                next_renewal = time.monotonic()  # lengthen the lease of the requests in flight at once
            if time.monotonic() >= next_renewal:
                self._safely(self._renew_in_flight if handed_back else self._renew, "renew")
                next_renewal = time.monotonic() + every

    def _renew(self) -> None:
        PushJob.objects.filter(claim_token=self.token, status=PushJob.Status.IN_PROGRESS).update(
            leased_until=lease_until())

    def _renew_in_flight(self) -> None:
        # Only sent jobs are still claimed after the hand-back; renewing them for as long as the
        # worker lives covers a follow-up call too, and a killed worker's last renewal covers
        # the request it had in flight.
        PushJob.objects.filter(claim_token=self.token, status=PushJob.Status.IN_PROGRESS, request_sent=True).update(
            leased_until=in_flight_until())

    def _safely(self, action: Callable[[], None], what: str) -> bool:
        try:
            action()
        except Exception:  # noqa: BLE001 -- a database blip: the next beat tries again, the lease covers two
            log.exception("push lease %s failed", what)
            return False
        return True
