"""What a reviewer does with a rejected submission besides reprocessing it: correct its source
fields, or dismiss it as not a lead. Neither touches the raw body or the parsed payload: a
correction is kept apart, in `Submission.field_overrides` (read over the payload by the
mapping), and every action leaves one `SubmissionCorrection` row saying who, when, what and why.
Sending a corrected submission through the mapping again is the pipeline's step
(`crmsync.pipeline.submission_correct_and_reprocess`)."""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ingestion.models import Submission, SubmissionCorrection

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 200
MAX_VALUE_LENGTH = 10_000


def value_text(value: Any) -> str:
    """A source field's value as a reviewer sees and types it: text as is, nothing as empty,
    anything else (numbers, lists, booleans) as JSON. Corrections compare in this form, so a
    value shown and left alone is never recorded as a change."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def submission_correct(*, submission_id: int, changes: Mapping[str, Any], note: str = "", actor=None,
                       current: Mapping[str, Any] | None = None) -> SubmissionCorrection:
    """Correct source fields of a rejected submission: `changes` maps field names (existing or
    new) to the values to use. `current` is the flat view of its fields the reviewer saw (the
    mapping stage computes it); values equal to what is there already are not changes.

    Raises ValidationError for a submission that is not rejected, a bad field name or value,
    or nothing changed."""
    wanted = _named(changes)
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(pk=submission_id)
        _require_rejected(submission, "corrected")
        before = {**(current or {}), **submission.field_overrides}
        # Only what differs is checked and recorded: a field shown and left alone (however long
        # its name or value) is not part of the correction.
        diff = {name: [before.get(name), value] for name, value in wanted.items() if value_text(before.get(name)) != value}
        if not diff:
            raise ValidationError("Nothing to save: every value is as it was.", code="unchanged")
        _check(diff)
        submission.field_overrides = {**submission.field_overrides, **{name: new for name, (_, new) in diff.items()}}
        submission.save(update_fields=["field_overrides"])
        correction = SubmissionCorrection.objects.create(
            submission=submission, action=SubmissionCorrection.Action.CORRECT, changes=diff, note=note.strip(),
            actor=actor)
    log.info("submission corrected", extra={"submission": submission_id, "fields": sorted(diff),
                                             "actor": getattr(actor, "username", "")})
    return correction


def submission_dismiss(*, submission_id: int, reason: str, actor=None) -> SubmissionCorrection:
    """Dismiss a rejected submission: a person decided it is not a lead (a test, a bot the
    honeypot missed, a duplicate sent by hand). It leaves the rejected list and is never
    processed; the reason is kept on it. Raises ValidationError without a reason or for a
    submission that is not rejected."""
    reason = _clean_reason(reason)
    with transaction.atomic():
        submission = Submission.objects.select_for_update().get(pk=submission_id)
        _require_rejected(submission, "dismissed")
        submission.status = Submission.Status.DISMISSED
        submission.dismissed_reason = reason
        submission.save(update_fields=["status", "dismissed_reason"])
        correction = SubmissionCorrection.objects.create(
            submission=submission, action=SubmissionCorrection.Action.DISMISS, note=reason, actor=actor)
    log.info("submission dismissed", extra={"submission": submission_id, "actor": getattr(actor, "username", "")})
    return correction


@dataclass
class DismissReport:
    dismissed: int = 0
    skipped: Counter = field(default_factory=Counter)  # status -> how many were left alone


def submissions_dismiss(*, submission_ids: Iterable[int], reason: str, actor=None) -> DismissReport:
    """Dismiss every rejected submission of the selection with one reason; the others are
    counted by their status and left alone."""
    reason = _clean_reason(reason)
    report = DismissReport()
    for submission_id in submission_ids:
        try:
            submission_dismiss(submission_id=submission_id, reason=reason, actor=actor)
        except ValidationError:
            status = Submission.objects.filter(pk=submission_id).values_list("status", flat=True).first()
            report.skipped[status or "deleted"] += 1
        except Submission.DoesNotExist:
            report.skipped["deleted"] += 1
        else:
            report.dismissed += 1
    return report


def _require_rejected(submission: Submission, verb: str) -> None:
    if submission.status != Submission.Status.REJECTED:
        raise ValidationError(f"Only rejected submissions can be {verb}; submission {submission.pk} is "
                              f"{submission.get_status_display().lower()}.", code="not_rejected")


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why it is dismissed; the reason is kept with the submission."},
                              code="required")
    return reason


def _named(changes: Mapping[str, Any]) -> dict[str, Any]:
    named: dict[str, Any] = {}
    # Names are kept as they are: a payload's keys may carry spaces, and a stripped copy would
    # be a different field.
    for name, value in changes.items():
        if not (name or "").strip():
            raise ValidationError("A field needs a name.", code="invalid")
        named[name] = value
    return named


def _check(diff: dict[str, list]) -> None:
    for name, (_, value) in diff.items():
        if len(name) > MAX_NAME_LENGTH:
            raise ValidationError(f"The field name '{name[:40]}…' is longer than {MAX_NAME_LENGTH} characters.",
                                  code="invalid")
        if not isinstance(value, str):
            raise ValidationError(f"The value of '{name}' must be text.", code="invalid")
        if len(value) > MAX_VALUE_LENGTH:
            raise ValidationError(f"The value of '{name}' is longer than {MAX_VALUE_LENGTH} characters.",
                                  code="invalid")
