"""Processing a stored submission: mapping rules, rejection with reasons, leads and outbox."""

import pytest

from crmsync.models import Lead, PushJob
from ingestion.models import Submission
from mapping.models import FieldRule
from mapping.services import mapping_apply, submission_process
from tests.factories import hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db

RULES = (
    ("email", "email", True, True),
    ("first_name", "first_name", False, False),
    ("company", "company", False, False),
    ("utm.campaign", "attributes.campaign", False, False),
)


@pytest.fixture
def source():
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    return source_with_mapping(rules=RULES)


def test_a_valid_submission_becomes_a_trimmed_lowercased_lead_with_a_pending_push_job(source):
    sub = submission(source=source, payload={"email": "  Ada@Example.COM ", "first_name": " Ada ",
                                             "utm": {"campaign": "spring"}, "ignored": "x"})

    submission_process(submission_id=sub.pk)

    sub.refresh_from_db()
    lead = Lead.objects.get()
    assert (sub.status, sub.lead, sub.reasons) == (Submission.Status.PROCESSED, lead, [])
    assert (lead.email, lead.first_name, lead.attributes) == ("ada@example.com", "Ada", {"campaign": "spring"})
    assert PushJob.objects.get().status == PushJob.Status.PENDING


def test_a_missing_required_field_rejects_the_submission_with_its_reason_and_pushes_nothing(source):
    sub = submission(source=source, payload={"first_name": "Ada"})

    submission_process(submission_id=sub.pk)

    sub.refresh_from_db()
    assert sub.status == Submission.Status.REJECTED
    assert sub.reasons == [{"field": "email", "target": "email", "message": "'email' is required but missing or empty."}]
    assert not Lead.objects.exists() and not PushJob.objects.exists()


def test_an_invalid_email_is_rejected_in_plain_words(source):
    sub = submission(source=source, payload={"email": "ada at example"})

    submission_process(submission_id=sub.pk)

    sub.refresh_from_db()
    assert sub.status == Submission.Status.REJECTED
    assert "'ada at example' is not a valid email address" in sub.reasons[0]["message"]


def test_a_source_without_an_active_mapping_rejects_with_a_reason(source):
    source.mapping_sets.update(is_active=False)
    sub = submission(source=source, payload={"email": "a@b.co"})

    submission_process(submission_id=sub.pk)

    sub.refresh_from_db()
    assert sub.status == Submission.Status.REJECTED
    assert sub.reasons[0]["message"] == "The source has no active mapping."


def test_processing_twice_changes_nothing_the_second_time(source):
    sub = submission(source=source, payload={"email": "a@b.co"})

    submission_process(submission_id=sub.pk)
    submission_process(submission_id=sub.pk)

    assert Lead.objects.count() == 1 and PushJob.objects.count() == 1


def test_a_second_submission_for_the_same_email_updates_the_lead_and_reuses_the_pending_job(source):
    submission_process(submission_id=submission(source=source, payload={"email": "a@b.co"}).pk)
    submission_process(submission_id=submission(source=source, payload={"email": "A@B.co", "company": "Acme"}).pk)

    assert Lead.objects.get().company == "Acme"
    assert PushJob.objects.count() == 1


def test_blank_values_never_overwrite_known_ones(source):
    submission_process(submission_id=submission(source=source, payload={"email": "a@b.co", "company": "Acme"}).pk)
    PushJob.objects.update(status=PushJob.Status.SUCCEEDED)

    submission_process(submission_id=submission(source=source, payload={"email": "a@b.co", "company": " "}).pk)

    assert Lead.objects.get().company == "Acme"
    assert not PushJob.objects.filter(status=PushJob.Status.PENDING).exists()  # nothing changed, nothing to push


def test_form_values_arriving_as_lists_and_numbers_are_read_as_text(source):
    mapping_set = source.mapping_sets.get()
    FieldRule.objects.create(mapping_set=mapping_set, source_field="employees", target="attributes.employees")

    mapped = mapping_apply(mapping_set=mapping_set, payload={"email": ["a@b.co"], "employees": 50})

    assert mapped.values["email"] == "a@b.co" and mapped.attributes["employees"] == "50"


def test_a_rule_target_outside_the_lead_is_refused_when_saved(source):
    from django.core.exceptions import ValidationError

    rule = FieldRule(mapping_set=source.mapping_sets.get(), source_field="x", target="favourite colour")

    with pytest.raises(ValidationError, match="attributes.<name>"):
        rule.full_clean()
