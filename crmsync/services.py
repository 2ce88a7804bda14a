"""Leads, the outbox and delivery: everything between a mapped lead and the CRM."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
import logging
import random
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import sync_log_record
from crmsync.connectors.base import Outcome, RecordResult
from crmsync.connectors.hubspot import HubSpotConnector
from crmsync.models import Destination, Lead, PushJob
from crmsync.queue import enqueue

log = logging.getLogger(__name__)

LEAD_FIELDS = ("email", "first_name", "last_name", "phone", "company", "country")
CONNECTORS = {Destination.Kind.HUBSPOT: HubSpotConnector}


# --- Leads ---------------------------------------------------------------------------------


def lead_upsert(*, values: dict[str, str], attributes: dict, attribution: dict | None = None) -> tuple[Lead, bool]:
    """Create or update the lead with this email. Returns the lead and whether it changed.

    Must run inside the caller's transaction. Blank values never overwrite stored ones.
    """
    email = values.get("email", "")
    lead = Lead.objects.select_for_update().filter(email=email).first() if email else None
    if lead is None:
        try:
            with transaction.atomic():  # savepoint: a concurrent insert must not poison the caller
                return Lead.objects.create(**_known(values), attributes=attributes, attribution=attribution or {}), True
        except IntegrityError:
            # Another submission for the same person committed first (lead_unique_email).
            lead = Lead.objects.select_for_update().get(email=email)
    return lead, _lead_merge(lead, values, attributes, attribution or {})


def _known(values: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if k in LEAD_FIELDS}


def _lead_merge(lead: Lead, values: dict[str, str], attributes: dict, attribution: dict) -> bool:
    changed = [k for k, v in _known(values).items() if v and getattr(lead, k) != v]
    for name in changed:
        setattr(lead, name, values[name])
    for name, incoming in (("attributes", attributes), ("attribution", attribution)):
        current = getattr(lead, name)
        merged = {**current, **{k: v for k, v in incoming.items() if v not in ("", None)}}
        if merged != current:
            setattr(lead, name, merged)
            changed.append(name)
    if changed:
        lead.save(update_fields=[*changed, "updated_at"])
    return bool(changed)


# --- Outbox --------------------------------------------------------------------------------


def push_jobs_enqueue(*, lead: Lead) -> list[PushJob]:
    """Write one pending job per active destination, in the caller's transaction (the outbox),
    and ring the dispatcher once it commits."""
    jobs = [_pending_job(lead, destination) for destination in Destination.objects.filter(is_active=True)]
    if jobs:
        enqueue("crmsync.tasks.push_dispatch")
    return jobs


def _pending_job(lead: Lead, destination: Destination) -> PushJob:
    now = timezone.now()
    try:
        with transaction.atomic():
            return PushJob.objects.create(lead=lead, destination=destination, next_attempt_at=now)
    except IntegrityError:
        # Already pending: it will send the lead as it is at push time, so just make it due.
        job = PushJob.objects.get(lead=lead, destination=destination, status=PushJob.Status.PENDING)
        PushJob.objects.filter(pk=job.pk).update(next_attempt_at=now)
        return job


# --- Dispatch ------------------------------------------------------------------------------


def _due() -> Q:
    now = timezone.now()
    pending_due = Q(status=PushJob.Status.PENDING, next_attempt_at__lte=now)
    # A claimed job whose worker died mid-call: its lease ran out, so it is due again.
    abandoned = Q(status=PushJob.Status.IN_PROGRESS, leased_until__lt=now)
    return (pending_due | abandoned) & Q(destination__is_active=True)


def push_jobs_due_exist() -> bool:
    return PushJob.objects.filter(_due()).exists()


def push_dispatch_due(*, limit: int = 500) -> int:
    """Claim due jobs, push them in batches per destination and record every outcome.
    Returns how many jobs were claimed."""
    token = uuid.uuid4()
    claimed = _claim(token, limit)
    if not claimed:
        return 0
    jobs = list(PushJob.objects.filter(claim_token=token).select_related("lead", "destination"))
    by_destination: dict[int, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_destination[job.destination_id].append(job)
    for group in by_destination.values():
        _push_group(group, token)
    return claimed


def _claim(token: uuid.UUID, limit: int) -> int:
    """Claim by conditional UPDATE: the WHERE clause is re-checked on write, so of two workers
    racing for a row only one matches it (no SELECT-then-UPDATE window)."""
    ids = list(PushJob.objects.filter(_due()).order_by("next_attempt_at").values_list("id", flat=True)[:limit])
    lease = timedelta(seconds=settings.CRMSYNC["PUSH_LEASE_SECONDS"])
    return PushJob.objects.filter(_due(), id__in=ids).update(
        status=PushJob.Status.IN_PROGRESS,
        claim_token=token,
        leased_until=timezone.now() + lease,
        attempts=F("attempts") + 1,
    )


def _push_group(jobs: list[PushJob], token: uuid.UUID) -> None:
    destination = jobs[0].destination
    connector = CONNECTORS[destination.kind](destination)
    # Two claimed jobs for one lead (a re-claimed lease beside a new change) are one upsert.
    by_lead: dict[int, list[PushJob]] = defaultdict(list)
    for job in jobs:
        by_lead[job.lead_id].append(job)
    leads = [group[0].lead for group in by_lead.values()]
    for start in range(0, len(leads), connector.batch_size):
        results = connector.upsert(leads[start : start + connector.batch_size])
        with transaction.atomic():
            for result in results:
                for job in by_lead[result.lead.pk]:
                    _record(job, result, token)


def _record(job: PushJob, result: RecordResult, token: uuid.UUID) -> None:
    sync_log_record(push_job=job, result=result, attempt=job.attempts)
    changes = _next_state(job, result)
    # Only the holder of the claim may settle the job; a worker whose lease expired and was
    # re-claimed by another must not overwrite the newer attempt.
    PushJob.objects.filter(pk=job.pk, claim_token=token).update(**changes, updated_at=timezone.now())
    log.info(
        "push outcome",
        extra={"push_job": job.pk, "lead": job.lead.external_id, "outcome": str(result.outcome),
               "attempt": job.attempts, "status": changes["status"]},
    )


def _next_state(job: PushJob, result: RecordResult) -> dict:
    now = timezone.now()
    settled = {"leased_until": None, "claim_token": None}
    if result.succeeded:
        return {**settled, "status": PushJob.Status.SUCCEEDED, "crm_record_id": result.crm_record_id,
                "last_error": "", "finished_at": now}
    error = f"{result.error_code}: {result.error_message}".strip(": ")[:2000]
    if result.outcome == Outcome.PERMANENT:
        return {**settled, "status": PushJob.Status.FAILED, "last_error": error, "finished_at": now}
    if job.attempts >= settings.CRMSYNC["PUSH_MAX_ATTEMPTS"]:
        return {**settled, "status": PushJob.Status.DEAD, "last_error": error, "finished_at": now}
    delay = result.retry_after if result.retry_after is not None else backoff_seconds(job.attempts)
    return {**settled, "status": PushJob.Status.PENDING, "last_error": error,
            "next_attempt_at": now + timedelta(seconds=delay)}


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter (AWS architecture blog), at least one second."""
    base = settings.CRMSYNC["PUSH_BACKOFF_BASE_SECONDS"]
    cap = settings.CRMSYNC["PUSH_BACKOFF_CAP_SECONDS"]
    return max(1.0, random.uniform(0, min(cap, base * 2 ** (attempt - 1))))


# --- Sweeper -------------------------------------------------------------------------------


# Submissions per queued task: small enough that several workers share a burst.
SUBMISSION_BATCH = 20


@dataclass
class SweepReport:
    submissions_requeued: int
    dispatch_rung: bool


def pipeline_sweep(*, stale_seconds: int) -> SweepReport:
    """Find work that is new, or that a lost queue message or a killed worker left behind, and
    ring the queue. Processing and dispatch are idempotent, so ringing twice is harmless."""
    from ingestion.services import submissions_claim

    ids = submissions_claim(requeue_after_seconds=stale_seconds)
    for start in range(0, len(ids), SUBMISSION_BATCH):
        enqueue("mapping.tasks.submissions_process", ids[start : start + SUBMISSION_BATCH])
    due = push_jobs_due_exist()
    if due:
        enqueue("crmsync.tasks.push_dispatch")
    return SweepReport(submissions_requeued=len(ids), dispatch_rung=due)
