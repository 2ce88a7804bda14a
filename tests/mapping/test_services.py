"""Processing a stored submission: versions, rules, rejection with reasons, drift, reprocess."""

import pytest

from crmsync.pipeline import submission_process, submission_reprocess
from delivery.models import PushJob
from ingestion.models import Submission
from leads.models import Lead
from mapping.models import DomainBlock, FieldRule, MappingSet, UnmappedField
from mapping.services import mapping_apply, mapping_preview, mapping_publish, mapping_rollback, redact
from tests.factories import EMAIL_RULE, hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db

TEXT = [{"op": "trim"}, {"op": "collapse_whitespace"}]
RULES = (
    {**EMAIL_RULE, "source_keys": "email, email_address, user_email"},
    {"source_keys": "first_name", "target": "first_name", "transforms": TEXT},
    {"source_keys": "company, company_name", "target": "company", "transforms": TEXT},
    {"source_keys": "phone", "target": "phone", "transforms": [{"op": "phone_e164"}], "on_invalid": "drop"},
    {"source_keys": "country", "target": "country", "transforms": [{"op": "country_iso2"}], "on_invalid": "default", "default": "US"},
    {"source_keys": "employees", "target": "attributes.employees", "transforms": [{"op": "integer"}]},
    {"source_keys": "utm.campaign", "target": "attribution.utm_campaign", "transforms": [{"op": "utm_normalize"}]},
)


@pytest.fixture
def source():
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    return source_with_mapping(rules=RULES, default_region="GB")


def process(source, payload) -> Submission:
    return submission_process(submission_id=submission(source=source, payload=payload).pk)


def test_a_valid_submission_becomes_a_normalized_lead_with_a_pending_push_job(source):
    sub = process(source, {"email_address": "  Ada@Example.COM ", "first_name": "  Ada   Augusta ",
                           "phone": "020 7946 0958", "country": "United Kingdom", "employees": "1,200",
                           "utm": {"campaign": " Spring Launch "}})

    lead = Lead.objects.get()
    assert (sub.status, sub.lead, sub.reasons) == (Submission.Status.PROCESSED, lead, [])
    assert sub.mapping_version == source.mapping_sets.get().published
    assert (lead.email, lead.first_name, lead.phone, lead.country) == (
        "ada@example.com", "Ada Augusta", "+442079460958", "GB")
    assert lead.attributes == {"employees": 1200}
    assert lead.attribution["utm_campaign"] == "spring-launch"
    assert PushJob.objects.get().status == PushJob.Status.PENDING


def test_a_missing_required_field_rejects_with_its_reason_and_pushes_nothing(source):
    sub = process(source, {"first_name": "Ada"})

    assert sub.status == Submission.Status.REJECTED
    assert sub.reasons == [{"field": "email", "target": "email",
                            "message": "'email' or 'email_address' or 'user_email' is required but missing or empty."}]
    assert not Lead.objects.exists() and not PushJob.objects.exists()


def test_an_invalid_value_rejects_drops_or_defaults_as_the_rule_says(source):
    rejected = process(source, {"email": "a@b.co", "employees": "about 50"})
    kept = process(source, {"email": "c@d.co", "phone": "not a phone", "country": "Narnia"})

    assert rejected.status == Submission.Status.REJECTED
    assert rejected.reasons[0]["field"] == "employees" and "about 50" in rejected.reasons[0]["message"]
    lead = Lead.objects.get(email="c@d.co")
    assert (kept.status, lead.phone, lead.country) == (Submission.Status.PROCESSED, "", "US")
    assert kept.reasons[0]["message"].startswith("dropped: ") and kept.reasons[0]["field"] == "phone"


def test_invalid_and_blocked_emails_are_rejected_in_plain_words(source):
    DomainBlock.objects.create(domain="@Throwaway-Inbox.io")  # normalized when saved

    bad = process(source, {"email": "ada at example"})
    blocked = process(source, {"email": "x@throwaway-inbox.io"})
    seeded = process(source, {"email": "x@mailinator.com"})  # the starting list

    assert "'ada at example' is not a valid email address" in bad.reasons[0]["message"]
    assert blocked.reasons[0]["message"] == "'throwaway-inbox.io' is a blocked email domain (disposable or test)."
    assert seeded.status == Submission.Status.REJECTED


def test_a_source_without_a_published_mapping_rejects_with_a_reason():
    source = source_with_mapping(slug="unpublished", publish=False)

    sub = process(source, {"email": "a@b.co"})

    assert sub.status == Submission.Status.REJECTED
    assert sub.reasons[0]["message"] == "The source has no active, published mapping."


def test_processing_twice_changes_nothing_the_second_time(source):
    sub = submission(source=source, payload={"email": "a@b.co"})

    submission_process(submission_id=sub.pk)
    submission_process(submission_id=sub.pk)

    assert Lead.objects.count() == 1 and PushJob.objects.count() == 1


def test_a_second_submission_for_the_same_email_updates_the_lead_and_reuses_the_pending_job(source):
    process(source, {"email": "a@b.co"})
    process(source, {"email": "A@B.co", "company_name": "Acme"})

    assert Lead.objects.get().company == "Acme"
    assert PushJob.objects.count() == 1


def test_blank_values_never_overwrite_known_ones(source):
    process(source, {"email": "a@b.co", "company": "Acme"})
    PushJob.objects.update(status=PushJob.Status.SUCCEEDED)

    process(source, {"email": "a@b.co", "company": " "})

    assert Lead.objects.get().company == "Acme"
    assert not PushJob.objects.filter(status=PushJob.Status.PENDING).exists()  # nothing changed, nothing to push


def test_submissions_use_the_published_version_not_the_draft(source):
    mapping_set = source.mapping_sets.get()
    mapping_set.rules.filter(target="company").update(source_keys="organisation")  # draft only

    process(source, {"email": "a@b.co", "company": "Acme", "organisation": "Other"})

    assert Lead.objects.get().company == "Acme"


def test_publishing_makes_a_new_version_and_rollback_restores_an_old_one(source):
    mapping_set = source.mapping_sets.get()
    v1 = mapping_set.published
    mapping_set.rules.filter(target="company").update(source_keys="organisation")

    v2 = mapping_publish(mapping_set=mapping_set, note="renamed")
    v3 = mapping_rollback(version=v1)

    assert [v.number for v in (v1, v2, v3)] == [1, 2, 3]
    assert v3.config == v1.config and v3.note == "Rollback to v1"
    assert mapping_set.rules.get(target="company").source_keys == "company, company_name"
    assert MappingSet.objects.get(pk=mapping_set.pk).published == v3


def test_a_draft_with_a_broken_rule_cannot_be_published(source):
    mapping_set = source.mapping_sets.get()
    FieldRule.objects.create(mapping_set=mapping_set, source_keys="x", target="attributes.x",
                             transforms=[{"op": "regex_extract", "pattern": "("}])

    with pytest.raises(Exception) as error:
        mapping_publish(mapping_set=mapping_set)
    assert "regex" in str(error.value).lower() or "pattern" in str(error.value).lower()


def test_a_renamed_form_field_shows_up_as_drift_and_reprocesses_after_an_alias_is_added():
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    source = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "company_name", "target": "company", "required": True}))
    # the form's developer renamed company_name to company
    subs = [process(source, {"email": f"p{i}@example.org", "company": "Acme Ltd"}) for i in range(3)]
    assert {s.status for s in subs} == {Submission.Status.REJECTED}
    drift = UnmappedField.objects.get(source=source, name="company")
    assert (drift.count, drift.acknowledged) == (3, False)
    assert drift.sample == "Ac… (8 characters)"

    mapping_set = source.mapping_sets.get()
    mapping_set.rules.filter(target="company").update(source_keys="company_name, company")
    mapping_publish(mapping_set=mapping_set, note="alias for the renamed field")
    results = [submission_reprocess(submission_id=s.pk) for s in subs]
    again = [submission_reprocess(submission_id=s.pk) for s in subs]  # idempotent

    assert {r.status for r in results + again} == {Submission.Status.PROCESSED}
    assert sorted(Lead.objects.values_list("company", flat=True)) == ["Acme Ltd"] * 3
    assert PushJob.objects.count() == 3


def test_preview_shows_fields_lead_and_errors_without_saving(source):
    preview = mapping_preview(mapping_set=source.mapping_sets.get(), payload={"email": "bad", "new_field": "x"})

    assert preview.fields["email"] == "bad" and "new_field" in preview.unmapped
    assert preview.mapped.errors[0]["target"] == "email"
    assert not Submission.objects.exists() and not Lead.objects.exists() and not UnmappedField.objects.exists()


def test_mapping_apply_reads_aliases_in_order():
    config = {"default_region": "", "timezone": "UTC", "rules": [
        {"source_keys": ["email", "user_email"], "target": "email", "transforms": [], "required": True,
         "on_invalid": "reject", "default": "", "max_length": None}]}

    mapped = mapping_apply(config=config, fields={"email": "", "user_email": "b@c.co"})

    assert mapped.values == {"email": "b@c.co"}


@pytest.mark.parametrize("value, shown", [("ada@example.com", "…@example.com"), ("Lovelace", "Lo… (8 characters)"),
                                          (42, "<number>"), ([1, 2], "<list of 2>"), (None, "None")])
def test_drift_samples_are_redacted(value, shown):
    assert redact(value) == shown


def test_a_rule_target_outside_the_lead_is_refused_when_saved(source):
    from django.core.exceptions import ValidationError

    rule = FieldRule(mapping_set=source.mapping_sets.get(), source_keys="x", target="favourite colour")

    with pytest.raises(ValidationError, match="attributes.<name>"):
        rule.full_clean()
