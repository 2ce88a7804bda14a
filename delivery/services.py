"""The delivery stage: the outbox (one pending job per lead and destination), the dispatcher
that claims due jobs, renders each lead through its destination's field map and pushes batches
through the connector, and the operator's actions (pause, resume, retry)."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import timedelta
import logging
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from audit.models import SyncLog
from audit.services import CallRecord, sync_log_record
from core.outbound import backoff_seconds
from core.queue import enqueue
from delivery import ratelimit
from delivery.connectors import connector_class, connector_for
from delivery.connectors.base import Outcome, PushRecord, RecordResult
from delivery.fieldmap import crm_owned_targets, personal_targets, render
from delivery.models import Destination, LeadDelivery, PushJob
from delivery.session import DestinationSession, RateLimitWait
from leads.decisions import decision_record
from leads.models import Lead, LeadDecision
from leads.services import lead_customer_found

log = logging.getLogger(__name__)

# --- Outbox --------------------------------------------------------------------------------


def push_jobs_enqueue(*, lead: Lead) -> list[PushJob]:
    """Write one pending job per active destination, in the caller's transaction (the outbox),
    and ring the dispatcher once it commits."""
    jobs = [_pending_job(lead, destination) for destination in Destination.objects.filter(is_active=True)]
    if jobs:
        enqueue("delivery.tasks.push_dispatch")
    return jobs


def _pending_job(lead: Lead, destination: Destination) -> PushJob:
    # A new job lingers up to batch_wait_seconds so that leads arriving together share one
    # batch call; _claim() takes it early once a full batch is waiting.
    due = timezone.now() + timedelta(seconds=destination.batch_wait_seconds)
    try:
        with transaction.atomic():
            return PushJob.objects.create(lead=lead, destination=destination, next_attempt_at=due)
    except IntegrityError:
        # Already pending: it will send the lead as it is at push time.
        return PushJob.objects.get(lead=lead, destination=destination, status=PushJob.Status.PENDING)


# --- Dispatch ------------------------------------------------------------------------------


def _due(now=None) -> Q:
    now = now or timezone.now()
    pending_due = Q(status=PushJob.Status.PENDING, next_attempt_at__lte=now)
    # A claimed job whose worker died mid-call: its lease ran out, so it is due again.
    abandoned = Q(status=PushJob.Status.IN_PROGRESS, leased_until__lt=now)
    return (pending_due | abandoned) & Q(destination__is_active=True, destination__paused_at__isnull=True)


def _lingering(now=None) -> Q:
    """New jobs still waiting for their batch to fill (never attempted, not yet due)."""
    return Q(status=PushJob.Status.PENDING, attempts=0, next_attempt_at__gt=now or timezone.now(),
             destination__is_active=True, destination__paused_at__isnull=True)


def _waiting_to_take(due_per_destination: dict[int, int], now=None) -> dict[int, int]:
    """How many waiting new jobs of each destination to take with this claim: enough to fill
    the last batch of its due jobs, plus every full batch. The rest waits, at most its own
    batch_wait_seconds, for company (so a call rarely goes out half empty)."""
    counts = (PushJob.objects.filter(_lingering(now)).values("destination_id", "destination__kind", "destination__batch_size")
              .annotate(n=Count("id")))
    take = {}
    for row in counts:
        size = _batch_size(row["destination__kind"], row["destination__batch_size"])
        top_up = min(row["n"], -due_per_destination.get(row["destination_id"], 0) % size)
        count = top_up + (row["n"] - top_up) // size * size
        if count:
            take[row["destination_id"]] = count
    return take


def _batch_size(kind: str, configured: int | None) -> int:
    largest = connector_class(kind).max_batch
    return max(1, min(configured or largest, largest))


def push_jobs_due_exist() -> bool:
    return PushJob.objects.filter(_due()).exists() or bool(_waiting_to_take({}))


def push_dispatch_due(*, limit: int = 1000) -> int:
    """Claim due jobs, push them in batches per destination and record every outcome.
    Returns how many jobs were claimed."""
    token = uuid.uuid4()
    claimed = _claim(token, limit)
    if not claimed:
        return 0
    jobs = list(PushJob.objects.filter(claim_token=token).select_related("lead", "destination").order_by("id"))
    by_destination: dict[int, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_destination[job.destination_id].append(job)
    for group in by_destination.values():
        _push_group(group, token)
    return claimed


def _claim(token: uuid.UUID, limit: int) -> int:
    """Claim by conditional UPDATE: the WHERE clause is re-checked on write, so of two workers
    racing for a row only one matches it (no SELECT-then-UPDATE window).

    Claims are also serialized (destination rows locked on PostgreSQL; SQLite's IMMEDIATE
    transactions do it anyway) and short: a second dispatcher sees the first one's claim
    and does not split a waiting batch by grabbing the job that arrived in between."""
    with transaction.atomic():
        list(Destination.objects.select_for_update().filter(is_active=True).values_list("id", flat=True))
        # One instant for every query: a job whose wait ends between two of them would be
        # neither due nor waiting, and left to go alone in the next claim.
        now = timezone.now()
        due = list(PushJob.objects.filter(_due(now)).order_by("next_attempt_at").values_list("id", "destination_id")[:limit])
        ids = [job_id for job_id, _ in due]
        for destination_id, count in _waiting_to_take(Counter(d for _, d in due), now).items():
            if len(ids) < limit:
                ids += list(PushJob.objects.filter(_lingering(now), destination_id=destination_id).order_by("id")
                            .values_list("id", flat=True)[: min(count, limit - len(ids))])
        lease = timedelta(seconds=settings.CRMSYNC["PUSH_LEASE_SECONDS"])
        return PushJob.objects.filter(_due(now) | _lingering(now), id__in=ids).update(
            status=PushJob.Status.IN_PROGRESS,
            claim_token=token,
            leased_until=timezone.now() + lease,
            attempts=F("attempts") + 1,
        )


@dataclass
class _Work:
    """One lead's claimed jobs for one destination and what to send."""

    jobs: list[PushJob]
    record: PushRecord
    wanted: dict  # {"primary": {...}, "company": {...}}: the snapshot to keep on success


def _push_group(jobs: list[PushJob], token: uuid.UUID) -> None:
    destination = jobs[0].destination
    fields = list(destination.fields.all())
    session = DestinationSession(destination)
    connector = connector_for(destination, session)
    context = _LogContext(destination, personal_targets(fields))
    work = _work_items(destination, jobs, fields)
    sending = []
    for item in work:
        if _unchanged(destination, item):
            _settle_noop(item, token, context)
        else:
            sending.append(item)
    size = _batch_size(destination.kind, destination.batch_size)
    for start in range(0, len(sending), size):
        chunk = sending[start : start + size]
        try:
            results = connector.upsert([item.record for item in chunk])
        except RateLimitWait as wait:
            # Nothing was sent for this chunk: hand it and the rest back without an attempt.
            _release([job for item in sending[start:] for job in item.jobs], token, wait.seconds, str(wait))
            return
        by_lead = {item.record.lead.pk: item for item in chunk}
        with transaction.atomic():
            for result in results:
                item = by_lead[result.lead.pk]
                for job in item.jobs:
                    _record(job, result, token, context, item.wanted if job is item.jobs[0] else None)
        if any(result.outcome == Outcome.AUTH for result in results):
            first = next(r for r in results if r.outcome == Outcome.AUTH)
            destination_pause(destination=destination, reason=f"CRM refused the credentials: {first.error_code} "
                                                              f"{first.error_message}".strip())
            _release([job for item in sending[start + size:] for job in item.jobs], token, 0, "destination paused")
            return


def _work_items(destination: Destination, jobs: list[PushJob], fields: list) -> list[_Work]:
    # Two claimed jobs for one lead (a re-claimed lease beside a new change) are one upsert.
    by_lead: dict[int, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_lead[job.lead_id].append(job)
    deliveries = {d.lead_id: d for d in LeadDelivery.objects.filter(destination=destination, lead_id__in=by_lead)}
    items = []
    for lead_id, lead_jobs in by_lead.items():
        lead = lead_jobs[0].lead
        primary, company = render(lead, fields, company_key=destination.company_upsert_property)
        delivery = deliveries.get(lead_id)
        pushed = delivery.pushed if delivery and delivery.crm_record_id else {}
        send_primary, send_company = primary, company
        if destination.changed_fields_only and pushed:
            before = pushed.get("primary", {})
            send_primary = {k: v for k, v in primary.items() if before.get(k) != v}
            if company is not None and delivery.company_crm_id and company == pushed.get("company"):
                send_company = None  # in place and associated by an earlier push
        crm_record_id = delivery.crm_record_id if delivery else ""
        # Without a CRM record ID of our own, the CRM may hold the person already (typed in,
        # imported): the connector looks for them by email before creating, once.
        asked = bool(delivery and delivery.looked_up_at)
        lookup_email = lead.email if destination.lookup_existing and not crm_record_id and not asked else ""
        record = PushRecord(lead=lead, fields=send_primary, company=send_company, crm_record_id=crm_record_id,
                            company_crm_id=delivery.company_crm_id if delivery else "", lookup_email=lookup_email,
                            keep_existing=crm_owned_targets(fields) if lookup_email else frozenset())
        items.append(_Work(lead_jobs, record, {"primary": primary, "company": company}))
    return items


def _unchanged(destination: Destination, item: _Work) -> bool:
    record = item.record
    return bool(destination.changed_fields_only and record.crm_record_id and not record.fields
                and record.company is None)


def _settle_noop(item: _Work, token: uuid.UUID, context: "_LogContext") -> None:
    result = RecordResult(item.record.lead, Outcome.UPDATED, item.record.crm_record_id, item.record.company_crm_id)
    with transaction.atomic():
        for job in item.jobs:
            _sync_log(job, result, context, noop=True)
            PushJob.objects.filter(pk=job.pk, claim_token=token).update(
                status=PushJob.Status.SUCCEEDED, operation="noop", crm_record_id=result.crm_record_id,
                last_error="", last_error_code="", leased_until=None, claim_token=None,
                finished_at=timezone.now(), updated_at=timezone.now())


@dataclass(frozen=True)
class _LogContext:
    destination: Destination
    personal_keys: set[str]


def _release(jobs: list[PushJob], token: uuid.UUID, seconds: float, reason: str) -> None:
    """Give claimed jobs back, due after `seconds`, without counting an attempt."""
    for job in jobs:
        _settle(job, token, {"status": PushJob.Status.PENDING, "attempts": F("attempts") - 1, "leased_until": None,
                             "claim_token": None, "next_attempt_at": timezone.now() + timedelta(seconds=seconds)})
    if jobs:
        log.info("push jobs released", extra={"jobs": len(jobs), "reason": reason, "seconds": round(seconds, 2)})


def _record(job: PushJob, result: RecordResult, token: uuid.UUID, context: _LogContext, wanted: dict | None) -> None:
    _sync_log(job, result, context)
    changes = _next_state(job, result)
    # Only the holder of the claim may settle the job; a worker whose lease expired and was
    # re-claimed by another must not overwrite the newer attempt.
    settled = _settle(job, token, changes)
    if settled and result.looked_up and not result.succeeded and wanted is not None:
        # The retry need not ask the CRM again (a success stores the CRM's ID instead).
        LeadDelivery.objects.update_or_create(lead_id=job.lead_id, destination_id=job.destination_id,
                                              defaults={"looked_up_at": timezone.now()})
    if settled and result.succeeded and wanted is not None:
        _delivery_store(job, result, wanted)
        if result.adopted:
            detail = f"{context.destination.name}: {result.adopted}"
            decision_record(lead=job.lead, action=LeadDecision.Action.CRM_MATCHED, matched_by="email", detail=detail)
            if result.crm_lifecycle == "customer" and lead_customer_found(
                    lead=job.lead, detail=f"{detail}, at lifecycle stage customer"):
                push_jobs_enqueue(lead=job.lead)
    if result.outcome == Outcome.RATE_LIMITED and result.retry_after:
        ratelimit.block(context.destination, seconds=result.retry_after, reason=f"{result.error_code} from the CRM")
    log.info(
        "push outcome",
        extra={"push_job": job.pk, "lead": job.lead.external_id, "outcome": str(result.outcome),
               "attempt": job.attempts, "status": changes["status"]},
    )


_OPERATIONS = {Outcome.CREATED: SyncLog.Operation.CREATE, Outcome.UPDATED: SyncLog.Operation.UPDATE}


def _sync_log(job: PushJob, result: RecordResult, context: "_LogContext", *, noop: bool = False) -> None:
    operation = SyncLog.Operation.NOOP if noop else _OPERATIONS.get(result.outcome, SyncLog.Operation.ERROR)
    sync_log_record(call=CallRecord(
        destination_id=context.destination.pk, destination_name=context.destination.name, push_job_id=job.pk,
        lead_id=result.lead.pk, lead_external_id=result.lead.external_id, operation=operation,
        outcome="noop" if noop else str(result.outcome), crm_record_id=result.crm_record_id,
        http_status=None if noop else result.http_status, error_code=result.error_code,
        error_message=result.error_message, request=result.request, response=result.response,
        attempt=job.attempts, duration_ms=result.duration_ms), personal_keys=context.personal_keys)


def _settle(job: PushJob, token: uuid.UUID, changes: dict) -> int:
    """Apply the job's next state if this worker still holds its claim. A job going back to
    pending while a newer pending job exists for the same lead (the lead changed meanwhile)
    is superseded by it instead: the newer one sends the lead as it is now."""
    claimed = PushJob.objects.filter(pk=job.pk, claim_token=token)
    try:
        with transaction.atomic():
            return claimed.update(**changes, updated_at=timezone.now())
    except IntegrityError:
        now = timezone.now()
        PushJob.objects.filter(lead_id=job.lead_id, destination_id=job.destination_id,
                               status=PushJob.Status.PENDING).update(next_attempt_at=now)
        return claimed.update(status=PushJob.Status.SUPERSEDED, leased_until=None, claim_token=None,
                              finished_at=now, updated_at=now, last_error=changes.get("last_error", ""))


def _delivery_store(job: PushJob, result: RecordResult, wanted: dict) -> None:
    delivery, _ = LeadDelivery.objects.select_for_update().get_or_create(lead_id=job.lead_id, destination_id=job.destination_id)
    delivery.crm_record_id = result.crm_record_id or delivery.crm_record_id
    delivery.company_crm_id = result.company_crm_id or delivery.company_crm_id
    if wanted.get("company") is not None and not result.company_crm_id:
        wanted = {**wanted, "company": delivery.pushed.get("company")}  # the company was not (re)written
    delivery.pushed = wanted
    delivery.pushed_at = timezone.now()
    delivery.save()


def _next_state(job: PushJob, result: RecordResult) -> dict:
    now = timezone.now()
    settled = {"leased_until": None, "claim_token": None}
    if result.succeeded:
        return {**settled, "status": PushJob.Status.SUCCEEDED, "crm_record_id": result.crm_record_id,
                "operation": str(result.outcome), "last_error": "", "last_error_code": "", "finished_at": now}
    error = {"last_error": f"{result.error_code}: {result.error_message}".strip(": ")[:2000],
             "last_error_code": result.error_code[:100]}
    if result.outcome == Outcome.PERMANENT:
        return {**settled, **error, "status": PushJob.Status.REVIEW, "finished_at": now}
    if result.outcome in (Outcome.AUTH, Outcome.RATE_LIMITED):
        # Not the record's fault: no attempt is counted. AUTH pauses the destination; the job
        # waits for it to be resumed. RATE_LIMITED waits for the CRM's window.
        wait = result.retry_after if result.outcome == Outcome.RATE_LIMITED and result.retry_after else 0
        return {**settled, **error, "status": PushJob.Status.PENDING, "attempts": F("attempts") - 1,
                "next_attempt_at": now + timedelta(seconds=wait)}
    if job.attempts >= settings.CRMSYNC["PUSH_MAX_ATTEMPTS"]:
        return {**settled, **error, "status": PushJob.Status.DEAD, "finished_at": now}
    delay = result.retry_after if result.retry_after is not None else backoff_seconds(job.attempts)
    return {**settled, **error, "status": PushJob.Status.PENDING, "next_attempt_at": now + timedelta(seconds=delay)}


# --- Operator actions ----------------------------------------------------------------------


def destination_pause(*, destination: Destination, reason: str) -> None:
    """Stop pushing to a destination (its jobs wait) and raise an alert."""
    Destination.objects.filter(pk=destination.pk, paused_at__isnull=True).update(
        paused_at=timezone.now(), paused_reason=reason[:2000])
    destination.paused_at, destination.paused_reason = timezone.now(), reason
    log.error("destination paused", extra={"destination": destination.name, "reason": reason, "alert": True})


def destination_resume(*, destination: Destination) -> int:
    """Resume a paused destination; its waiting jobs become due now. Returns how many."""
    Destination.objects.filter(pk=destination.pk).update(paused_at=None, paused_reason="",
                                                         access_token_encrypted="", access_token_expires_at=None)
    destination.paused_at, destination.paused_reason = None, ""
    due = PushJob.objects.filter(destination=destination, status=PushJob.Status.PENDING).update(
        next_attempt_at=timezone.now())
    enqueue("delivery.tasks.push_dispatch")
    return due


def push_jobs_retry(*, jobs) -> int:
    """Retry now: review and dead jobs start again with fresh attempts, pending ones become due.
    A lead that already has a pending job for the destination keeps that one."""
    count = 0
    now = timezone.now()
    with transaction.atomic():
        for job in jobs.select_for_update().exclude(status__in=[PushJob.Status.IN_PROGRESS, PushJob.Status.SUCCEEDED]):
            if job.status != PushJob.Status.PENDING and PushJob.objects.filter(
                    lead_id=job.lead_id, destination_id=job.destination_id, status=PushJob.Status.PENDING).exists():
                continue
            PushJob.objects.filter(pk=job.pk).update(
                status=PushJob.Status.PENDING, next_attempt_at=now, finished_at=None, updated_at=now,
                attempts=0 if job.status != PushJob.Status.PENDING else job.attempts)
            count += 1
        if count:
            enqueue("delivery.tasks.push_dispatch")
    return count


def push_jobs_stop(*, lead: Lead, reason: str) -> int:
    """Stop a lead's pending pushes (it was merged into another); returns how many."""
    now = timezone.now()
    return PushJob.objects.filter(lead=lead, status=PushJob.Status.PENDING).update(
        status=PushJob.Status.SUPERSEDED, last_error=reason, finished_at=now, updated_at=now)


def crm_records_of(*, lead: Lead) -> list[str]:
    """'<destination>: <CRM record ID>' for every CRM record that holds the lead."""
    return [f"{d.destination}: {d.crm_record_id}" for d in lead.deliveries.select_related("destination")
            if d.crm_record_id]
