"""The pipeline: the one place that calls the stages in order and writes the hand-offs between
them. Each stage's services do their own work and return what changed; only this module goes
from one stage to the next (a map to identity resolution, a changed lead to the outbox).
Tasks and admin actions that span stages call these functions.

    ingestion (Submission) -> mapping (values) -> leads (Lead) -> delivery (PushJob) -> CRM
"""

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
import logging
from typing import Any

from django.db import transaction

from audit import buckets
from audit.logging import log_context
from core import metrics
from core.fields import CONSENT_SOURCES
from core.queue import enqueue
from delivery.services import crm_records_of, push_jobs_due_exist, push_jobs_enqueue, push_jobs_stop
from delivery.sync import polls_due_enqueue
from ingestion.meta import Fetch, meta_leads_fetch
from ingestion.models import Submission, SubmissionCorrection
from ingestion.review import submission_correct
from ingestion.services import submission_finish, submission_reopen, submission_waiting_for_retry, submissions_claim
from leads import services as leads
from leads.models import Lead
from mapping.eventtime import event_time
from mapping.extractors import shape_for_kind
from mapping.models import MappingSet
from mapping.services import source_fields, submission_map

log = logging.getLogger(__name__)

# Submissions per queued task: small enough that several workers share a burst.
SUBMISSION_BATCH = 20


# --- One submission ------------------------------------------------------------------------


def submission_process(*, submission_id: int) -> Submission:
    """Map a received submission into a lead and its push jobs, all in one transaction.

    Safe to run any number of times: the row lock and the status check make every run after
    the first a no-op, and a crash before commit leaves the submission 'received' for the
    sweeper. Data that must be fetched first (Meta leads) is fetched before the transaction.
    Every line logged meanwhile, and every decision made, carries the submission's correlation ID.
    """
    submission = Submission.objects.select_related("source").get(pk=submission_id)
    with log_context(correlation_ids=[submission.correlation_id]):
        return _process(submission)


def _process(submission: Submission) -> Submission:
    submission_id = submission.pk
    if submission.status != Submission.Status.RECEIVED or submission_waiting_for_retry(submission):
        return submission
    if meta_leads_fetch(submission=submission) != Fetch.READY:
        submission.refresh_from_db()
        return submission
    with transaction.atomic():
        submission = Submission.objects.select_for_update().select_related("source").get(pk=submission_id)
        if submission.status != Submission.Status.RECEIVED:
            return submission
        return _process_locked(submission)


def _process_locked(submission: Submission) -> Submission:
    result = submission_map(submission=submission)
    if result.rejected:
        return submission_finish(submission=submission, status=Submission.Status.REJECTED, reasons=result.reasons,
                                 mapping_version=result.version)
    mapped = result.mapped
    incoming = leads.Incoming(values=mapped.values, attributes=mapped.attributes, attribution=mapped.attribution,
                              source_slug=submission.source.slug, submission=submission,
                              received_at=submission.received_at,
                              event_at=event_time(kind=submission.source.kind, payload=submission.payload,
                                                  received_at=submission.received_at))
    resolution = leads.lead_resolve(incoming=incoming)
    buckets.count_add(metric=buckets.CONSENT, subject_id=submission.source_id,
                      outcome="given" if CONSENT_SOURCES & mapped.values.keys() else "missing")
    if not resolution.matched_by:  # a new lead, routed or not
        buckets.count_add(metric=buckets.NEW_LEAD, outcome="owned" if resolution.lead.owner_id else "unowned")
    if resolution.changed:
        push_jobs_enqueue(lead=resolution.lead, correlation_id=submission.correlation_id)
    return submission_finish(submission=submission, status=Submission.Status.PROCESSED, lead=resolution.lead,
                             mapping_version=result.version, reasons=result.notes)


def submission_reprocess(*, submission_id: int) -> Submission:
    """Send a rejected submission through the current mapping again. Idempotent: anything but
    a rejected submission is left alone, and identity resolution finds the lead a previous run
    made."""
    submission_reopen(submission_id=submission_id)
    return submission_process(submission_id=submission_id)


@dataclass
class ReprocessReport:
    """What reprocessing a selection did: the status each reopened submission ended in, and
    the status of each one left alone (only rejected submissions are reprocessed)."""

    outcomes: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)

    @property
    def reprocessed(self) -> int:
        return sum(self.outcomes.values())


def submissions_reprocess(*, submission_ids: Iterable[int]) -> ReprocessReport:
    """Reprocess each rejected submission of a selection (see submission_reprocess) and say
    what became of each, and which were left alone because they were not rejected."""
    report = ReprocessReport()
    for submission_id in submission_ids:
        if submission_reopen(submission_id=submission_id):
            report.outcomes[submission_process(submission_id=submission_id).status] += 1
        else:
            status = Submission.objects.filter(pk=submission_id).values_list("status", flat=True).first()
            report.skipped[status or "deleted"] += 1
    return report


def submission_fields(*, submission: Submission) -> dict[str, Any]:
    """The flat source fields a submission offers its mapping, with a reviewer's corrections
    over them: what a reviewer sees and corrects. The shape is the one the source's published
    mapping reads (the one that processed it if the source has none now)."""
    return source_fields(submission=submission, shape=_shape_of(submission))


def _shape_of(submission: Submission) -> str:
    mapping_set = (MappingSet.objects.filter(source_id=submission.source_id, is_active=True)
                   .select_related("published").first())
    version = mapping_set.published if mapping_set and mapping_set.published else submission.mapping_version
    return version.config["shape"] if version else shape_for_kind(submission.source.kind)


@dataclass
class Corrected:
    correction: SubmissionCorrection
    submission: Submission  # as reprocessing left it: processed, rejected again, or waiting


def submission_correct_and_reprocess(*, submission_id: int, changes: dict[str, str], note: str = "",
                                     actor=None) -> Corrected:
    """A reviewer's fix of a rejected submission's data: record the corrected source fields
    (ingestion.review.submission_correct: old and new values, who, why; the raw body and the
    payload stay as received), then send it through the current mapping again. The correction
    is committed first: if reprocessing is interrupted, the submission is left 'received' with
    its correction and the sweeper processes it."""
    submission = Submission.objects.select_related("source", "mapping_version").get(pk=submission_id)
    correction = submission_correct(submission_id=submission_id, changes=changes, note=note, actor=actor,
                                    current=submission_fields(submission=submission))
    return Corrected(correction, submission_reprocess(submission_id=submission_id))


# --- Leads a reviewer acts on --------------------------------------------------------------


def leads_merge(*, survivor: Lead, other: Lead, actor=None) -> Lead:
    """Merge `other` into `survivor` (see leads.services.leads_merge): the other's pending
    pushes stop, both leads log the merge, and the survivor is pushed again."""
    with transaction.atomic():
        merge = leads.leads_merge(survivor=survivor, other=other)
        stopped = push_jobs_stop(lead=merge.other, reason=f"merged into {merge.survivor.external_id}")
        leads.merge_decisions_record(merge=merge, actor=actor, crm_records=crm_records_of(lead=merge.other),
                                     stopped=stopped)
        push_jobs_enqueue(lead=merge.survivor)
    log.info("leads merged", extra={"survivor": merge.survivor.external_id, "merged": merge.other.external_id})
    return merge.survivor


def leads_reevaluate(*, lead_ids: list[int], actor=None) -> int:
    """Apply the current scoring, customer and routing rules to existing leads now, instead of
    at their next submission; changed leads are pushed again. Returns how many changed."""
    changed_count = 0
    for lead_id in lead_ids:
        with transaction.atomic():
            lead = leads.lead_reevaluate(lead_id=lead_id)
            if lead is not None:
                push_jobs_enqueue(lead=lead)
                changed_count += 1
    log.info("leads re-evaluated", extra={"leads": len(lead_ids), "changed": changed_count,
                                          "actor": getattr(actor, "username", "")})
    return changed_count


# --- The sweeper ---------------------------------------------------------------------------


@dataclass
class SweepReport:
    submissions_requeued: int
    dispatch_rung: bool


def pipeline_sweep(*, stale_seconds: int) -> SweepReport:
    """Find work that is new, or that a lost queue message or a killed worker left behind, and
    ring the queue. Processing and dispatch are idempotent, so ringing twice is harmless."""
    ids = submissions_claim(requeue_after_seconds=stale_seconds)
    for start in range(0, len(ids), SUBMISSION_BATCH):
        enqueue("crmsync.tasks.submissions_process", ids[start : start + SUBMISSION_BATCH])
    due = push_jobs_due_exist()
    if due:
        enqueue("delivery.tasks.push_dispatch")
    polls_due_enqueue()
    metrics.worker_swept()  # a worker is alive (the alert on /metrics when none is)
    return SweepReport(submissions_requeued=len(ids), dispatch_rung=due)
