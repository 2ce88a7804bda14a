"""Faults the sandbox injects into a CRM's data calls, the log of those calls, and the reset
tests and benchmarks start from.

A decision derives from (seed, CRM, the request's sequence number): the sequence is counted in
the database, so every gunicorn process draws from one series, and the same seed replays the
same faults on the same series of requests. Setting the faults restarts the series.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
import hashlib
import json
import socket
import time
from typing import Any, Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from sandbox.limits import sequence_next
from sandbox.models import (
    SandboxAccessToken,
    SandboxAssociation,
    SandboxCompany,
    SandboxContact,
    SandboxFaults,
    SandboxRateWindow,
    SandboxRequestLog,
    SandboxRestRecord,
    SandboxSalesforceRecord,
    SandboxSettings,
    SandboxWebhookSubscription,
)

CRMS = ("hubspot", "salesforce", "rest")
Fault = SandboxRequestLog.Fault
ERROR_STATUSES = (500, 502, 503)
# Kinds that refuse the call without applying it.
REFUSING = frozenset({Fault.ERROR, Fault.RATE_LIMIT, Fault.LOCK})
LOG_RETENTION = timedelta(days=1)
EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
LOG_PRUNE_EVERY = 1000  # rows; a cheap bound on a table every data call writes to


@dataclass
class FaultDecision:
    """What to do to one request. `record_locked` decides per record (Salesforce's
    UNABLE_TO_LOCK_ROW) and remembers which records it locked, for the request log."""

    kind: str = Fault.NONE
    error_status: int = 500
    timeout_seconds: float = 0.0
    latency_ms: int = 0
    lock_rate: float = 0.0
    seed: int = 0
    crm: str = ""
    sequence: int = 0
    locked: list[int] = field(default_factory=list)

    @property
    def refuses(self) -> bool:
        return self.kind in REFUSING

    def record_locked(self, index: int) -> bool:
        if self.lock_rate <= 0 or _draw(self.seed, self.crm, self.sequence, f"lock:{index}") >= self.lock_rate:
            return False
        self.locked.append(index)
        return True

    def logged_kind(self) -> str:
        return Fault.LOCK if self.kind == Fault.NONE and self.locked else self.kind


def no_faults() -> FaultDecision:
    return FaultDecision()


# --- settings ---------------------------------------------------------------------------------

def faults_set(*, crm: str, error_rate: float = 0.0, rate_limit_rate: float = 0.0, lost_reply_rate: float = 0.0,
               latency_ms: int = 0, timeout_rate: float = 0.0, timeout_seconds: float = 30.0,
               lock_rate: float = 0.0, seed: int = 0) -> SandboxFaults:
    """Replace the CRM's faults (knobs not given are off) and restart its request series, so a
    run with this seed meets the same faults as the previous run with it."""
    if crm not in CRMS:
        raise ValueError(f"crm must be one of {', '.join(CRMS)}, not {crm!r}")
    row = SandboxFaults(crm=crm, error_rate=error_rate, rate_limit_rate=rate_limit_rate,
                        lost_reply_rate=lost_reply_rate, latency_ms=latency_ms, timeout_rate=timeout_rate,
                        timeout_seconds=timeout_seconds, lock_rate=lock_rate, seed=seed)
    row.full_clean(exclude=["crm"])  # the rates' bounds and their sum; crm is unique and replaced below
    with transaction.atomic():
        SandboxFaults.objects.filter(crm=crm).delete()
        row.save()
        SandboxRateWindow.objects.filter(crm=crm, window=SandboxRateWindow.Window.SEQUENCE).delete()
    return row


def faults_reset(*, crm: str | None = None) -> None:
    """No faults any more (for one CRM, or for all)."""
    rows = SandboxFaults.objects.all() if crm is None else SandboxFaults.objects.filter(crm=crm)
    rows.delete()


def fault_decide(*, crm: str) -> FaultDecision:
    """The decision for the CRM's next data request. Without faults set, no query is spent on
    the sequence."""
    faults = SandboxFaults.objects.filter(crm=crm).first()
    if faults is None:
        return no_faults()
    sequence = sequence_next(crm=crm)
    pick = _draw(faults.seed, crm, sequence, "kind")
    kind = Fault.NONE
    for candidate, rate in _exclusive_rates(faults):
        if pick < rate:
            kind = candidate
            break
        pick -= rate
    status = ERROR_STATUSES[int(_draw(faults.seed, crm, sequence, "status") * len(ERROR_STATUSES))]
    # Salesforce reports locks per record (in the results), so they are not a request-level kind.
    lock_rate = faults.lock_rate if crm == "salesforce" else 0.0
    return FaultDecision(kind, status, faults.timeout_seconds, faults.latency_ms, lock_rate, faults.seed, crm, sequence)


def _exclusive_rates(faults: SandboxFaults) -> list[tuple[str, float]]:
    rates = [(Fault.RATE_LIMIT, faults.rate_limit_rate), (Fault.ERROR, faults.error_rate)]
    if faults.crm == "hubspot":
        rates.append((Fault.LOCK, faults.lock_rate))
    return rates + [(Fault.TIMEOUT, faults.timeout_rate), (Fault.LOST_REPLY, faults.lost_reply_rate)]


def _draw(seed: int, crm: str, sequence: int, what: str) -> float:
    """A number in [0, 1) fixed by its inputs, the same in every process."""
    digest = hashlib.sha256(f"{seed}:{crm}:{sequence}:{what}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


# --- applying a decision ----------------------------------------------------------------------

def fault_call(decision: FaultDecision, *, refuse: Callable[[FaultDecision], HttpResponse],
               run: Callable[[], HttpResponse]) -> HttpResponse:
    """Refuse without running, or run (after the timeout's wait, for a client to give up on)."""
    if decision.refuses:
        return refuse(decision)
    if decision.kind == Fault.TIMEOUT:
        time.sleep(decision.timeout_seconds)
    return run()


def fault_finish(request: HttpRequest, decision: FaultDecision, response: HttpResponse) -> HttpResponse:
    """The latency, then the reply, or no reply at all for a lost one. Called after the write
    was committed and the request logged."""
    if decision.latency_ms:
        time.sleep(decision.latency_ms / 1000)
    if decision.kind != Fault.LOST_REPLY:
        return response
    client = request.META.get("gunicorn.socket")
    if client is not None:
        # The client sees the connection close without an answer; gunicorn's own write of the
        # response below then fails quietly (EPIPE).
        try:
            client.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return HttpResponse(status=504)  # what a test client (no socket to drop) gets instead


# --- request log ------------------------------------------------------------------------------

def request_log_record(*, crm: str, request: HttpRequest, status: int, fault: str, started_at: Any) -> None:
    row = SandboxRequestLog.objects.create(crm=crm, method=request.method or "", path=request.path[:500],
                                           status=status, records=_records_in(request), fault=fault,
                                           started_at=started_at)
    if row.pk % LOG_PRUNE_EVERY == 0:
        SandboxRequestLog.objects.filter(started_at__lt=timezone.now() - LOG_RETENTION).delete()


def _records_in(request: HttpRequest) -> int:
    """Inputs of a HubSpot batch, records of a Salesforce collection, items of a REST batch (a
    JSON array), 1 for any other body."""
    if request.method in ("GET", "HEAD", "DELETE") or not request.body:
        return 0
    try:
        body = json.loads(request.body)
    except ValueError:
        return 1
    if isinstance(body, list):
        return len(body)
    if isinstance(body, dict):
        for key in ("inputs", "records"):
            if isinstance(body.get(key), list):
                return len(body[key])
    return 1


def request_log_count(*, crm: str | None = None, fault: str | None = None, method: str | None = None,
                      path_endswith: str | None = None) -> int:
    """Data requests the sandbox received, optionally of one CRM, fault kind, method or path
    ending (e.g. "/contacts/batch/read")."""
    rows = SandboxRequestLog.objects.all()
    for name, value in (("crm", crm), ("fault", fault), ("method", method), ("path__endswith", path_endswith)):
        if value is not None:
            rows = rows.filter(**{name: value})
    return rows.count()


def max_requests_in_any_window(*, crm: str, window_ms: int) -> int:
    """The most requests of the CRM that started within any `window_ms` milliseconds: what a
    benchmark compares with the CRM's rate limit (e.g. 190 per 10,000 ms)."""
    # Whole microseconds: float milliseconds would put 9.999 s and 10 s apart in one window.
    starts = [(moment - EPOCH) // timedelta(microseconds=1) for moment in SandboxRequestLog.objects
              .filter(crm=crm).order_by("started_at").values_list("started_at", flat=True)]
    best, first = 0, 0
    for last, start in enumerate(starts):
        while start - starts[first] >= window_ms * 1000:
            first += 1
        best = max(best, last - first + 1)
    return best


# --- reset ------------------------------------------------------------------------------------

def sandbox_reset() -> None:
    """Records, associations, tokens, request logs, counters, faults, webhook subscriptions and
    clock offsets of every CRM go; the other settings, created properties and custom fields (the
    orgs' configuration) stay."""
    with transaction.atomic():
        for model in (SandboxContact, SandboxCompany, SandboxAssociation, SandboxSalesforceRecord,
                      SandboxRestRecord, SandboxAccessToken, SandboxRequestLog, SandboxRateWindow, SandboxFaults,
                      SandboxWebhookSubscription):
            model.objects.all().delete()
        SandboxSettings.objects.update(clock_offset_seconds=0)

