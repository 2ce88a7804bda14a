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
from django.db.models import Case, Count, F, Max, Q, When
from django.utils import timezone

from audit import buckets
from audit.logging import correlation_id_current, log_context
from audit.models import SyncLog
from audit.services import CallRecord, sync_log_record
from core import metrics
from core.outbound import backoff_seconds
from core.queue import enqueue
from core.stopping import stop_requested
from delivery import ratelimit
from delivery.connectors import connector_class, connector_for
from delivery.connectors.base import Outcome, PollError, PushRecord, RecordResult
from delivery.fieldmap import crm_owned_targets, personal_targets, render
from delivery.leases import lease_heartbeat, lease_until
from delivery.models import Conflict, Destination, DestinationField, LeadDelivery, PushJob
from delivery.reconcile import changes_reconcile, same, sync_fields
from delivery.session import DestinationSession, RateLimitWait
from ingestion.models import Submission
from leads.decisions import decision_record
from leads.models import Lead, LeadDecision
from leads.services import lead_customer_found

log = logging.getLogger(__name__)

# --- Outbox --------------------------------------------------------------------------------


def push_jobs_enqueue(*, lead: Lead, correlation_id: str | None = None, exclude_destination_id: int | None = None,
                      only_destination_id: int | None = None) -> list[PushJob]:
    """Write one pending job per active destination (or only one, or all but one: a value read
    from a CRM need not go back to it), in the caller's transaction (the outbox), and ring the
    dispatcher once it commits. The jobs carry the correlation ID of the submission that caused
    them (by default, the one whose work is running): a job already pending takes the newer
    one, since it will send this submission's changes."""
    correlation_id = correlation_id_current() if correlation_id is None else correlation_id
    destinations = Destination.objects.filter(is_active=True)
    if exclude_destination_id is not None:
        destinations = destinations.exclude(pk=exclude_destination_id)
    if only_destination_id is not None:
        destinations = destinations.filter(pk=only_destination_id)
    jobs = [_pending_job(lead, destination, correlation_id) for destination in destinations]
    if jobs:
        enqueue("delivery.tasks.push_dispatch")
    return jobs


def _pending_job(lead: Lead, destination: Destination, correlation_id: str = "") -> PushJob:
    # A new job lingers up to batch_wait_seconds so that leads arriving together share one
    # batch call; _claim() takes it early once a full batch is waiting.
    due = timezone.now() + timedelta(seconds=destination.batch_wait_seconds)
    try:
        with transaction.atomic():
            return PushJob.objects.create(lead=lead, destination=destination, next_attempt_at=due,
                                          correlation_id=correlation_id)
    except IntegrityError:
        # Already pending: it will send the lead as it is at push time.
        pending = PushJob.objects.filter(lead=lead, destination=destination, status=PushJob.Status.PENDING)
        if correlation_id:
            pending.update(correlation_id=correlation_id)
        return pending.get()


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
    if stop_requested():
        return 0  # the worker is stopping: claim nothing more
    token = uuid.uuid4()
    claimed = _claim(token, limit)
    if not claimed:
        return 0
    jobs = list(PushJob.objects.filter(claim_token=token).select_related("lead", "destination").order_by("id"))
    by_destination: dict[int, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_destination[job.destination_id].append(job)
    # At the stop deadline only the jobs whose request has not gone out go back; the heartbeat
    # keeps a request in flight leased until it can no longer land (delivery.leases).
    with lease_heartbeat(token, hand_back=lambda: _release(jobs, token, 0, "worker stopping", unsent_only=True)):
        for group in by_destination.values():
            with log_context(correlation_ids=[job.correlation_id for job in group]):
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
        return PushJob.objects.filter(_due(now) | _lingering(now), id__in=ids).update(
            status=PushJob.Status.IN_PROGRESS,
            claim_token=token,
            leased_until=lease_until(),
            # Each claim counts an attempt, except that the attempt of a worker that died before
            # its request went out (abandoned, never sent) is taken over instead of counted again.
            # Both sides of SET read the row as it was, on PostgreSQL and SQLite alike.
            attempts=Case(When(status=PushJob.Status.IN_PROGRESS, request_sent=False, then=F("attempts")),
                          default=F("attempts") + 1),
            request_sent=False,
        )


@dataclass
class _Work:
    """One lead's claimed jobs for one destination and what to send."""

    jobs: list[PushJob]
    record: PushRecord
    wanted: dict  # {"primary": {...}, "company": {...}}: the snapshot to keep on success
    held: str = ""  # why nothing may be pushed for the lead here (its CRM record was deleted or merged)


def _push_group(jobs: list[PushJob], token: uuid.UUID) -> None:
    destination = jobs[0].destination
    fields = list(destination.fields.all())
    session = DestinationSession(destination)
    connector = connector_for(destination, session)
    context = _LogContext(destination, personal_targets(fields))
    if not _two_way_guard(destination, jobs, fields, connector, token):
        return
    work = _work_items(destination, jobs, fields)
    sending = []
    for item in work:
        if item.held:
            _settle_held(item, token)
        elif _unchanged(destination, item):
            _settle_noop(item, token, context)
        else:
            sending.append(item)
    size = _batch_size(destination.kind, destination.batch_size)
    for start in range(0, len(sending), size):
        chunk = sending[start : start + size]
        if stop_requested():
            # The worker is stopping: what was not sent goes back, due now, without an attempt.
            _release([job for item in sending[start:] for job in item.jobs], token, 0, "worker stopping")
            return
        _mark_sent(chunk, token)
        try:
            results = connector.upsert([item.record for item in chunk])
        except RateLimitWait as wait:
            # Nothing was sent for this chunk: hand it and the rest back without an attempt.
            _release([job for item in sending[start:] for job in item.jobs], token, wait.seconds, str(wait))
            buckets.count_add(metric=buckets.PUSH, subject_id=destination.pk, outcome="rate_wait", n=len(sending) - start)
            return
        by_lead = {item.record.lead.pk: item for item in chunk}
        with transaction.atomic():
            for result in results:
                item = by_lead[result.lead.pk]
                for job in item.jobs:
                    _record(job, result, token, context, item.wanted if job is item.jobs[0] else None)
        _outcomes_count(destination, results, [job for item in chunk for job in item.jobs])
        if any(result.outcome == Outcome.AUTH for result in results):
            first = next(r for r in results if r.outcome == Outcome.AUTH)
            destination_pause(destination=destination, reason=f"CRM refused the credentials: {first.error_code} "
                                                              f"{first.error_message}".strip())
            _release([job for item in sending[start + size:] for job in item.jobs], token, 0, "destination paused")
            return


def _outcomes_count(destination: Destination, results: list[RecordResult], jobs: list[PushJob]) -> None:
    """The dashboard's hourly counts (audit.buckets): each record's outcome and, for each record
    the CRM took whose job a submission caused (it carries that submission's correlation ID),
    the time since that submission arrived (end-to-end latency). A push nothing submitted caused
    (a change pulled by two-way sync, a merge, a resolved conflict) is left out: timed from the
    lead's last submission, it would show weeks for a change synced in seconds."""
    buckets.counts_add(metric=buckets.PUSH, subject_id=destination.pk, counts=Counter(str(r.outcome) for r in results))
    metrics.push_results(destination=destination.name, outcomes=[str(r.outcome) for r in results])
    took = {result.lead.pk for result in results if result.succeeded}
    caused_by = {job.correlation_id for job in jobs if job.lead_id in took and job.correlation_id}
    if caused_by:
        received = (Submission.objects.filter(correlation_id__in=caused_by).order_by().values("correlation_id")
                    .annotate(at=Max("received_at")).values_list("at", flat=True))
        now = timezone.now()
        seconds = [(now - at).total_seconds() for at in received]
        buckets.latency_observe(subject_id=destination.pk, seconds=seconds)
        metrics.end_to_end(destination=destination.name, seconds=seconds)


def _mark_sent(chunk: list[_Work], token: uuid.UUID) -> None:
    """From here on the CRM may see the request: a worker killed now has made an attempt."""
    PushJob.objects.filter(id__in=[job.pk for item in chunk for job in item.jobs], claim_token=token).update(
        request_sent=True, leased_until=lease_until())


def _work_items(destination: Destination, jobs: list[PushJob], fields: list) -> list[_Work]:
    # Two claimed jobs for one lead (a re-claimed lease beside a new change) are one upsert.
    by_lead: dict[int, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_lead[job.lead_id].append(job)
    deliveries = {d.lead_id: d for d in LeadDelivery.objects.filter(destination=destination, lead_id__in=by_lead)}
    # Two-way sync: fields that come from the CRM are sent only to fill a new record, and a
    # field with an open conflict is not sent until a reviewer resolves it.
    from_crm = {f.target for f in fields if f.direction == DestinationField.Direction.FROM_CRM
                and f.object == DestinationField.Object.PRIMARY}
    read_back = {f.target for f in fields if f.reads_back and f.object == DestinationField.Object.PRIMARY}
    # A record the lookup adopts keeps its values of the fields the CRM owns or decides.
    crm_decides = read_back - {f.target for f in fields if f.direction == DestinationField.Direction.BOTH
                               and f.effective_rule() == DestinationField.Rule.OURS}
    in_conflict: dict[int, set[str]] = defaultdict(set)
    for lead_id, target in Conflict.objects.filter(destination=destination, lead_id__in=by_lead, kind=Conflict.Kind.FIELD,
                                                   status=Conflict.Status.OPEN).values_list("lead_id", "target"):
        in_conflict[lead_id].add(target)
    items = []
    for lead_id, lead_jobs in by_lead.items():
        lead = lead_jobs[0].lead
        primary, company = render(lead, fields, company_key=destination.company_upsert_property)
        delivery = deliveries.get(lead_id)
        pushed = delivery.pushed if delivery and delivery.crm_record_id else {}
        before = pushed.get("primary", {}) if pushed else {}
        held = in_conflict[lead_id] | (from_crm if delivery and delivery.crm_record_id else set())
        if held:
            # Not sent, and the base keeps the value last synced for them.
            primary = {k: v for k, v in primary.items() if k not in held}
            primary.update({k: before[k] for k in held if k in before})
        send_primary, send_company = primary, company
        if destination.changed_fields_only and pushed:
            send_primary = {k: v for k, v in primary.items() if not _same_as_synced(k, v, before, read_back)}
            if company is not None and delivery.company_crm_id and company == pushed.get("company"):
                send_company = None  # in place and associated by an earlier push
        elif pushed and read_back:
            # Full records: a two-way field unchanged here since the last sync is left out, so
            # a person's change in the CRM is never overwritten by our older value.
            send_primary = {k: v for k, v in primary.items() if k not in held
                            and not (k in read_back and same(v, before.get(k)))}
        elif held:
            send_primary = {k: v for k, v in primary.items() if k not in held}
        crm_record_id = delivery.crm_record_id if delivery else ""
        # Without a CRM record ID of our own, the CRM may hold the person already (typed in,
        # imported): the connector looks for them by email before creating, once.
        asked = bool(delivery and delivery.looked_up_at)
        lookup_email = lead.email if destination.lookup_existing and not crm_record_id and not asked else ""
        record = PushRecord(lead=lead, fields=send_primary, company=send_company, crm_record_id=crm_record_id,
                            company_crm_id=delivery.company_crm_id if delivery else "", lookup_email=lookup_email,
                            keep_existing=(crm_owned_targets(fields) | crm_decides) if lookup_email else frozenset())
        gone = delivery.get_crm_state_display() if delivery and delivery.crm_state else ""
        items.append(_Work(lead_jobs, record, {"primary": primary, "company": company}, gone))
    return items


def _same_as_synced(target: str, value, before: dict, read_back: set[str]) -> bool:
    """Whether a field's value is what the CRM was last synced with. Two-way fields compare as
    the CRM stores them (a pulled 'false' is our False), the others exactly."""
    return same(value, before.get(target)) if target in read_back else before.get(target) == value


def _unchanged(destination: Destination, item: _Work) -> bool:
    record = item.record
    return bool(destination.changed_fields_only and record.crm_record_id and not record.fields
                and record.company is None)


def _settle_noop(item: _Work, token: uuid.UUID, context: "_LogContext") -> None:
    result = RecordResult(item.record.lead, Outcome.UPDATED, item.record.crm_record_id, item.record.company_crm_id)
    with transaction.atomic(), log_context(correlation_ids=[job.correlation_id for job in item.jobs]):
        for job in item.jobs:
            _sync_log(job, result, context, noop=True)
            PushJob.objects.filter(pk=job.pk, claim_token=token).update(
                status=PushJob.Status.SUCCEEDED, operation="noop", crm_record_id=result.crm_record_id,
                last_error="", last_error_code="", leased_until=None, claim_token=None,
                finished_at=timezone.now(), updated_at=timezone.now())
    buckets.count_add(metric=buckets.PUSH, subject_id=context.destination.pk, outcome="noop", n=len(item.jobs))
    metrics.push_results(destination=context.destination.name, outcomes=["noop"] * len(item.jobs))


def _two_way_guard(destination: Destination, jobs: list[PushJob], fields: list[DestinationField], connector,
                   token: uuid.UUID) -> bool:
    """Before overwriting a two-way field (direction 'both', a rule other than 'ours') in records
    the CRM already holds, read those records' current values and reconcile them first: a person
    may have changed the field since the last poll, and the field's rule, not the order of
    events, must decide. One batch read per group. Returns False when the jobs were handed back."""
    guarded = [f for f in fields if f.direction == DestinationField.Direction.BOTH
               and f.object == DestinationField.Object.PRIMARY and f.effective_rule() != DestinationField.Rule.OURS]
    if not guarded or destination.kind not in (Destination.Kind.HUBSPOT, Destination.Kind.SALESFORCE):
        return True
    leads = {job.lead_id: job.lead for job in jobs}
    ids = []
    for delivery in LeadDelivery.objects.filter(destination=destination, lead_id__in=leads, crm_state="").exclude(crm_record_id=""):
        ours, _ = render(leads[delivery.lead_id], guarded, company_key="")
        base = delivery.pushed.get("primary") or {}
        if any(not same(ours.get(f.target), base.get(f.target)) for f in guarded):
            ids.append(delivery.crm_record_id)
    if not ids:
        return True
    try:
        changes = connector.read(object="primary", ids=ids, fields=sorted({f.target for f in guarded}))
    except RateLimitWait as wait:
        _release(jobs, token, wait.seconds, str(wait))
        return False
    except PollError as exc:
        if exc.retryable or exc.auth:
            _release(jobs, token, 5, f"could not read two-way fields back before pushing: {exc}")
            return False
        log.warning("two-way read before push failed; pushing without it", extra={"destination": destination.name,
                                                                                    "error": str(exc)})
        return True
    except ValueError as exc:  # a field-map target the CRM's query language refuses (the poll shows it too)
        log.warning("two-way read before push failed; pushing without it", extra={"destination": destination.name,
                                                                                    "error": str(exc)})
        return True
    with transaction.atomic():
        reconciled = changes_reconcile(destination=destination, fields=sync_fields(destination), changes=changes)
        for lead in Lead.objects.filter(pk__in=reconciled.pulled):
            push_jobs_enqueue(lead=lead, exclude_destination_id=destination.pk)
    for job in jobs:
        job.lead.refresh_from_db()
    return True


def _settle_held(item: _Work, token: uuid.UUID) -> None:
    """The lead's CRM record was deleted or merged away there: nothing is sent (an upsert would
    recreate it) until a reviewer resolves the conflict; an unlinked lead is not synced at all."""
    unlinked = item.held == LeadDelivery.CrmState.UNLINKED.label
    now = timezone.now()
    for job in item.jobs:
        PushJob.objects.filter(pk=job.pk, claim_token=token).update(
            status=PushJob.Status.SUPERSEDED if unlinked else PushJob.Status.REVIEW, attempts=F("attempts") - 1,
            last_error=f"Not sent: {item.held}." + ("" if unlinked else " Resolve it in the conflict queue."),
            last_error_code="CRM_RECORD_HELD", leased_until=None, claim_token=None, finished_at=now, updated_at=now)


@dataclass(frozen=True)
class _LogContext:
    destination: Destination
    personal_keys: set[str]


def _release(jobs: list[PushJob], token: uuid.UUID, seconds: float, reason: str, *, unsent_only: bool = False) -> None:
    """Give claimed jobs back, due after `seconds`, without counting an attempt; with
    `unsent_only`, only those whose request has not gone out (checked as each is released, so
    a request marked sent meanwhile keeps its job)."""
    released = 0
    for job in jobs:
        released += _settle(job, token, {"status": PushJob.Status.PENDING, "attempts": F("attempts") - 1,
                                         "leased_until": None, "claim_token": None,
                                         "next_attempt_at": timezone.now() + timedelta(seconds=seconds)},
                            unsent_only=unsent_only)
    if released:
        log.info("push jobs released", extra={"jobs": released, "reason": reason, "seconds": round(seconds, 2)})


def _record(job: PushJob, result: RecordResult, token: uuid.UUID, context: _LogContext, wanted: dict | None) -> None:
    with log_context(correlation_ids=[job.correlation_id]):
        _record_job(job, result, token, context, wanted)


def _record_job(job: PushJob, result: RecordResult, token: uuid.UUID, context: _LogContext, wanted: dict | None) -> None:
    _sync_log(job, result, context)
    changes = _next_state(job, result)
    # Only the holder of the claim may settle the job; a worker whose lease expired and was
    # re-claimed by another must not overwrite the newer attempt.
    settled = _settle(job, token, changes)
    if settled and changes["status"] == PushJob.Status.DEAD:
        buckets.count_add(metric=buckets.PUSH, subject_id=job.destination_id, outcome="dead")
        metrics.dead_letter(destination=context.destination.name)
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
                push_jobs_enqueue(lead=job.lead, correlation_id=job.correlation_id)
    if result.outcome == Outcome.RATE_LIMITED and result.retry_after:
        ratelimit.block(context.destination, seconds=result.retry_after, reason=f"{result.error_code} from the CRM")
    log.info(
        "push outcome",
        extra={"push_job": job.pk, "lead": job.lead.external_id, "outcome": str(result.outcome),
               "attempt": job.attempts, "status": changes["status"] if settled else "not settled: claim lost or handed back"},
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
        attempt=job.attempts, duration_ms=result.duration_ms, correlation_id=job.correlation_id),
        personal_keys=context.personal_keys)


def _settle(job: PushJob, token: uuid.UUID, changes: dict, *, unsent_only: bool = False) -> int:
    """Apply the job's next state if this worker still holds its claim (and, with `unsent_only`,
    its request has not gone out). A job going back to pending while a newer pending job exists
    for the same lead (the lead changed meanwhile) is superseded by it instead: the newer one
    sends the lead as it is now."""
    claimed = PushJob.objects.filter(pk=job.pk, claim_token=token)
    if unsent_only:
        claimed = claimed.filter(request_sent=False)
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
    if result.outcome == Outcome.CREATED and delivery.crm_record_id and result.crm_record_id != delivery.crm_record_id:
        _recreated(job, delivery, result.crm_record_id)
    delivery.crm_record_id = result.crm_record_id or delivery.crm_record_id
    delivery.company_crm_id = result.company_crm_id or delivery.company_crm_id
    if wanted.get("company") is not None and not result.company_crm_id:
        wanted = {**wanted, "company": delivery.pushed.get("company")}  # the company was not (re)written
    delivery.pushed = wanted
    delivery.pushed_at = timezone.now()
    delivery.save()


def _recreated(job: PushJob, delivery: LeadDelivery, new_id: str) -> None:
    """The CRM created a record for a lead it held under another ID: the old record was deleted
    (or merged away) there before a poll noticed, and the upsert made a new one. Never silent:
    the lead is held for a reviewer, who keeps the new record or stops syncing the lead there."""
    old_id = delivery.crm_record_id
    delivery.crm_state = LeadDelivery.CrmState.DELETED
    note = (f"The CRM no longer had record {old_id}; a push created record {new_id} before a poll saw the deletion. "
            "Recreate keeps the new record; stop syncing leaves it to be deleted in the CRM.")
    try:
        with transaction.atomic():
            Conflict.objects.create(lead_id=job.lead_id, destination_id=job.destination_id, kind=Conflict.Kind.DELETED,
                                    crm_record_id=old_id, note=note)
    except IntegrityError:
        pass
    decision_record(lead=job.lead, action=LeadDecision.Action.CONFLICT, detail=f"{job.destination}: {note}")
    log.warning("crm record recreated", extra={"push_job": job.pk, "old_record": old_id, "new_record": new_id})


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
