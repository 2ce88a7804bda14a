"""Turning an untrusted payload into a canonical lead, and processing stored submissions."""

from dataclasses import dataclass, field
import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from crmsync.services import lead_upsert, push_jobs_enqueue
from ingestion.meta import Fetch, meta_fields, meta_leads_fetch
from ingestion.models import Submission
from mapping.models import ATTRIBUTE_PREFIX, FieldRule, MappingSet

log = logging.getLogger(__name__)


@dataclass
class MappedLead:
    values: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)


def mapping_apply(*, mapping_set: MappingSet, payload: dict[str, Any]) -> MappedLead:
    """Run every rule of the set over the payload. Never raises for bad data: each problem is
    a per-field reason in `errors`."""
    mapped = MappedLead()
    for rule in mapping_set.rules.all():
        value = _transform(rule, payload_value(payload, rule.source_field))
        error = _check(rule, value)
        if error:
            mapped.errors.append({"field": rule.source_field, "target": rule.target, "message": error})
        elif rule.target.startswith(ATTRIBUTE_PREFIX):
            mapped.attributes[rule.target.removeprefix(ATTRIBUTE_PREFIX)] = value
        else:
            mapped.values[rule.target] = value
    return mapped


def payload_value(payload: dict[str, Any], path: str) -> str:
    """The string at a dotted path, '' when absent. Form fields arrive as one-item lists."""
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if value is None or isinstance(value, (dict, list)):
        return ""
    return str(value)


def _transform(rule: FieldRule, value: str) -> str:
    if rule.trim:
        value = value.strip()
    if rule.lowercase:
        value = value.lower()
    return value


def _check(rule: FieldRule, value: str) -> str:
    if not value:
        return f"'{rule.source_field}' is required but missing or empty." if rule.required else ""
    if rule.target == "email":
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            return f"'{value}' is not a valid email address: {exc}"
    return ""


def submission_process(*, submission_id: int) -> Submission:
    """Map a received submission into a lead and its push jobs, all in one transaction.

    Safe to run any number of times: the row lock and the status check make every run after
    the first a no-op, and a crash before commit leaves the submission 'received' for the
    sweeper. Data that must be fetched first (Meta leads) is fetched before the transaction.
    """
    submission = Submission.objects.select_related("source").get(pk=submission_id)
    if submission.status != Submission.Status.RECEIVED or _waiting_for_retry(submission):
        return submission
    if meta_leads_fetch(submission=submission) != Fetch.READY:
        submission.refresh_from_db()
        return submission
    with transaction.atomic():
        submission = Submission.objects.select_for_update().select_related("source").get(pk=submission_id)
        if submission.status != Submission.Status.RECEIVED:
            return submission
        mapping_set = MappingSet.objects.filter(source=submission.source, is_active=True).first()
        if mapping_set is None:
            reasons = [{"field": "", "target": "", "message": "The source has no active mapping."}]
            return _finish(submission, Submission.Status.REJECTED, reasons=reasons)
        mapped = mapping_apply(mapping_set=mapping_set, payload=mapping_input(submission))
        if mapped.errors:
            return _finish(submission, Submission.Status.REJECTED, reasons=mapped.errors)
        lead, changed = lead_upsert(values=mapped.values, attributes=mapped.attributes)
        if changed:
            push_jobs_enqueue(lead=lead)
        return _finish(submission, Submission.Status.PROCESSED, lead=lead)


def mapping_input(submission: Submission) -> dict[str, Any]:
    """What the rules read: the payload, or for Meta the fetched lead's fields."""
    if "leads" in submission.enrichment:
        return meta_fields(submission.enrichment)
    return submission.payload


def _waiting_for_retry(submission: Submission) -> bool:
    return submission.next_attempt_at is not None and submission.next_attempt_at > timezone.now()


def _finish(submission: Submission, status: str, *, reasons: list | None = None, lead=None) -> Submission:
    submission.status = status
    submission.reasons = reasons or []
    submission.lead = lead
    submission.processed_at = timezone.now()
    submission.save(update_fields=["status", "reasons", "lead", "processed_at"])
    log.info("submission processed", extra={"submission": submission.pk, "status": status})
    return submission
