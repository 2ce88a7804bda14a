"""A reviewer's corrections and dismissals of rejected submissions (ingestion.review), and the
pipeline step that reprocesses a corrected submission."""

from django.core.exceptions import ValidationError
import pytest

from crmsync.pipeline import submission_correct_and_reprocess, submission_fields, submission_process
from ingestion.models import Submission, SubmissionCorrection
from ingestion.review import submission_correct, submission_dismiss, submissions_dismiss
from leads.models import Lead
from tests.factories import EMAIL_RULE, source_with_mapping

pytestmark = pytest.mark.django_db

RAW = b'{"email": "bob@@x", "first_name": "Bob"}'


@pytest.fixture
def reviewer(django_user_model):
    return django_user_model.objects.create_user("rita", "rita@example.com", "pw-rita-123", is_staff=True)


def rejected(source=None, payload=None, raw=RAW) -> Submission:
    source = source or source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "first_name", "target": "first_name"}))
    submission = Submission.objects.create(source=source, raw_body=raw, content_type="application/json",
                                           payload=payload if payload is not None else {"email": "bob@@x", "first_name": "Bob"})
    submission_process(submission_id=submission.pk)
    submission.refresh_from_db()
    assert submission.status == Submission.Status.REJECTED
    return submission


def test_a_correction_keeps_the_raw_body_and_payload_and_records_old_and_new(reviewer):
    submission = rejected()

    correction = submission_correct(submission_id=submission.pk, changes={"email": "bob@example.com", "first_name": "Bob"},
                                    note="typo on the form", actor=reviewer, current=submission_fields(submission=submission))

    submission.refresh_from_db()
    assert submission.field_overrides == {"email": "bob@example.com"}  # first_name was left as it was
    assert bytes(submission.raw_body) == RAW
    assert submission.payload == {"email": "bob@@x", "first_name": "Bob"}
    assert (correction.action, correction.changes, correction.note, correction.actor) == (
        "correct", {"email": ["bob@@x", "bob@example.com"]}, "typo on the form", reviewer)


def test_a_corrected_submission_is_reprocessed_into_a_lead(reviewer):
    submission = rejected()

    done = submission_correct_and_reprocess(submission_id=submission.pk, changes={"email": "bob@example.com"},
                                            actor=reviewer)

    assert done.submission.status == Submission.Status.PROCESSED
    assert done.submission.lead == Lead.objects.get(email="bob@example.com")
    assert done.correction.changes == {"email": ["bob@@x", "bob@example.com"]}


def test_a_field_the_sender_left_out_can_be_added():
    submission = rejected(payload={"first_name": "Bob"})

    done = submission_correct_and_reprocess(submission_id=submission.pk, changes={"email": "bob@example.com"})

    assert done.submission.status == Submission.Status.PROCESSED
    assert done.correction.changes == {"email": [None, "bob@example.com"]}


def test_a_second_correction_records_the_first_one_as_its_old_value():
    submission = rejected()
    submission_correct_and_reprocess(submission_id=submission.pk, changes={"email": "bob@example"})  # still wrong

    done = submission_correct_and_reprocess(submission_id=submission.pk, changes={"email": "bob@example.com"})

    assert done.correction.changes == {"email": ["bob@example", "bob@example.com"]}
    assert [c.action for c in Submission.objects.get().corrections.all()] == ["correct", "correct"]


def test_a_correction_that_changes_nothing_is_refused_and_records_nothing():
    submission = rejected()

    with pytest.raises(ValidationError, match="Nothing to save"):
        submission_correct_and_reprocess(submission_id=submission.pk, changes={"email": "bob@@x"})

    assert not SubmissionCorrection.objects.exists()
    assert Submission.objects.get().status == Submission.Status.REJECTED


@pytest.mark.parametrize("changes, message", [
    ({" ": "x"}, "A field needs a name"),
    ({"x" * 201: "x"}, "longer than 200"),
    ({"email": "x" * 10_001}, "longer than 10000"),
    ({"email": 5}, "must be text"),
])
def test_bad_field_names_and_values_are_refused(changes, message):
    submission = rejected()

    with pytest.raises(ValidationError, match=message):
        submission_correct(submission_id=submission.pk, changes=changes)

    assert Submission.objects.get().field_overrides == {}


def test_only_a_rejected_submission_can_be_corrected_or_dismissed():
    submission = rejected()
    submission_correct_and_reprocess(submission_id=submission.pk, changes={"email": "bob@example.com"})

    with pytest.raises(ValidationError, match="Only rejected submissions can be corrected; submission .* is processed"):
        submission_correct(submission_id=submission.pk, changes={"email": "other@example.com"})
    with pytest.raises(ValidationError, match="Only rejected submissions can be dismissed"):
        submission_dismiss(submission_id=submission.pk, reason="test")


def test_dismissing_needs_a_reason_and_keeps_it(reviewer):
    submission = rejected()

    with pytest.raises(ValidationError) as refused:
        submission_dismiss(submission_id=submission.pk, reason="  ")
    submission_dismiss(submission_id=submission.pk, reason="a test from the agency", actor=reviewer)

    assert "reason" in refused.value.message_dict
    submission.refresh_from_db()
    assert (submission.status, submission.dismissed_reason) == ("dismissed", "a test from the agency")
    [row] = submission.corrections.all()
    assert (row.action, row.note, row.actor, row.changes) == ("dismiss", "a test from the agency", reviewer, {})
    assert not Submission.objects.filter(status=Submission.Status.REJECTED).exists()


def test_a_dismissed_submission_is_never_reprocessed():
    from crmsync.pipeline import submissions_reprocess

    submission = rejected()
    submission_dismiss(submission_id=submission.pk, reason="not a lead")

    report = submissions_reprocess(submission_ids=[submission.pk])

    assert (report.reprocessed, dict(report.skipped)) == (0, {"dismissed": 1})
    assert Submission.objects.get().status == Submission.Status.DISMISSED


def test_dismissing_a_selection_dismisses_the_rejected_ones_and_counts_the_rest():
    source = source_with_mapping()
    bad = [rejected(source=source, payload={"email": "x@@y"}) for _ in range(2)]
    good = Submission.objects.create(source=source, raw_body=b"{}", payload={"email": "ok@example.com"})
    submission_process(submission_id=good.pk)

    report = submissions_dismiss(submission_ids=[*(s.pk for s in bad), good.pk], reason="bot traffic")

    assert (report.dismissed, dict(report.skipped)) == (2, {"processed": 1})
    assert Submission.objects.filter(status="dismissed").count() == 2
