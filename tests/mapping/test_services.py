"""Processing a stored submission: versions, rules, rejection with reasons, drift, reprocess."""

from concurrent.futures import ThreadPoolExecutor
import threading

from django.db import connection
import pytest

from crmsync.pipeline import submission_process, submission_reprocess
from delivery.models import PushJob
from ingestion.models import Submission
from leads.models import Lead
from mapping.models import DomainBlock, DriftOverflow, FieldPresence, FieldRule, MappingSet, UnmappedField
from mapping.services import (
    DRIFT_KEPT_PER_SOURCE,
    DRIFT_NEW_PER_SUBMISSION,
    mapping_apply,
    mapping_preview,
    mapping_publish,
    mapping_rollback,
    presence_dismiss,
    redact,
)
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


def test_a_reviewers_corrections_are_read_over_the_payload_when_the_submission_is_reprocessed(source):
    # given a submission rejected for a mistyped email
    sub = process(source, {"email": "ada@example", "first_name": "Ada", "company": "Engines"})
    assert sub.status == Submission.Status.REJECTED

    # when a reviewer corrects the field and reprocesses it
    Submission.objects.filter(pk=sub.pk).update(field_overrides={"email": "ada@example.com", "company": "Analytical"})
    sub = submission_reprocess(submission_id=sub.pk)

    # then the lead holds the corrections, and the payload stays as received
    assert sub.status == Submission.Status.PROCESSED, sub.reasons
    assert (sub.lead.email, sub.lead.first_name, sub.lead.company) == ("ada@example.com", "Ada", "Analytical")
    assert sub.payload["email"] == "ada@example"


def rules_config(*rules: dict, default_region: str = "") -> dict:
    full = [{"transforms": [], "required": False, "on_invalid": "drop", "default": "", "max_length": None, **rule}
            for rule in rules]
    return {"default_region": default_region, "timezone": "UTC", "rules": full}


@pytest.mark.parametrize("sent", ["last_name", "Last Name", "lastName", "last-name", "LAST_NAME", "Last  name"])
def test_an_alias_finds_its_field_whatever_the_case_and_separators(sent):
    config = rules_config({"source_keys": ["surname", "last_name"], "target": "last_name"})

    assert mapping_apply(config=config, fields={sent: "Lovelace"}).values == {"last_name": "Lovelace"}


def test_an_alias_written_exactly_as_sent_wins_over_a_differently_written_twin():
    config = rules_config({"source_keys": ["First name"], "target": "first_name"})

    mapped = mapping_apply(config=config, fields={"first_name": "Augusta", "First name": "Ada", "First Name": "X"})

    assert mapped.values == {"first_name": "Ada"}


def test_dots_still_count_so_a_field_id_never_finds_another():
    config = rules_config({"source_keys": ["1.3"], "target": "first_name"})

    assert mapping_apply(config=config, fields={"13": "Not a name"}).values == {}


def test_a_field_found_under_another_spelling_is_not_drift():
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    source = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "first_name", "target": "first_name"}))

    process(source, {"Email": "ada@example.com", "First Name": "Ada", "Favourite colour": "green"})

    assert list(UnmappedField.objects.values_list("name", flat=True)) == ["Favourite colour"]


@pytest.mark.parametrize("full, first, last", [("Ada Lovelace", "Ada", "Lovelace"),
                                               ("Dr Ludwig van Beethoven", "Ludwig", "van Beethoven"),
                                               ("  Grace   Brewster Hopper ", "Grace", "Hopper"),
                                               ("Cher", "Cher", None)])
def test_a_full_name_gives_the_first_and_last_name_when_only_it_is_sent(full, first, last):
    config = rules_config({"source_keys": ["first_name"], "target": "first_name"},
                          {"source_keys": ["last_name"], "target": "last_name"},
                          {"source_keys": ["name"], "target": "full_name", "transforms": [{"op": "trim"}]})

    mapped = mapping_apply(config=config, fields={"name": full})

    assert (mapped.values.get("first_name"), mapped.values.get("last_name")) == (first, last)
    assert mapped.attributes == {"full_name": full.strip()}


def test_first_and_last_names_sent_win_over_the_full_name():
    config = rules_config({"source_keys": ["first_name"], "target": "first_name"},
                          {"source_keys": ["name"], "target": "full_name"})

    mapped = mapping_apply(config=config, fields={"first_name": "Augusta Ada", "name": "Ada King"})

    assert (mapped.values["first_name"], mapped.values["last_name"]) == ("Augusta Ada", "King")


@pytest.mark.parametrize("country, phone, expected", [("France", "01 23 45 67 89", "+33123456789"),
                                                      ("US", "(202) 555-0143", "+12025550143"),
                                                      ("", "020 7946 0958", "+442079460958"),
                                                      ("Atlantis", "020 7946 0958", "+442079460958")])
def test_a_phone_number_is_read_in_the_leads_own_country_else_in_the_mappings_region(country, phone, expected):
    config = rules_config({"source_keys": ["phone"], "target": "phone", "transforms": [{"op": "phone_e164"}],
                           "on_invalid": "reject"},
                          {"source_keys": ["country"], "target": "country", "transforms": [{"op": "country_iso2"}]},
                          default_region="GB")

    mapped = mapping_apply(config=config, fields={"phone": phone, "country": country})

    assert (mapped.values.get("phone"), mapped.errors) == (expected, [])


# --- Drift: limits, and fields that stop arriving ------------------------------------------


def test_a_body_with_ten_thousand_keys_records_fifty_new_names_and_counts_the_rest():
    source = source_with_mapping()
    payload = {"email": "ada@example.com", **{f"field_{i:05}": "x" for i in range(10_000)}}

    sub = process(source, payload)

    assert sub.status == Submission.Status.PROCESSED
    assert UnmappedField.objects.filter(source=source).count() == DRIFT_NEW_PER_SUBMISSION == 50
    assert DriftOverflow.objects.get(source=source).names_left_out == 10_000 - 50


def test_a_source_keeps_at_most_five_hundred_unmapped_names_and_still_counts_those_it_knows():
    source = source_with_mapping()
    for batch in range(11):
        process(source, {"email": "ada@example.com", **{f"b{batch}_f{i}": "x" for i in range(60)}})

    assert UnmappedField.objects.filter(source=source).count() == DRIFT_KEPT_PER_SOURCE == 500
    assert DriftOverflow.objects.get(source=source).names_left_out == 10 * 10 + 60
    process(source, {"email": "ada@example.com", "b0_f0": "x"})
    assert UnmappedField.objects.get(source=source, name="b0_f0").count == 2


def test_an_unmapped_field_mapped_and_published_is_no_longer_drift():
    source = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "surname", "target": "last_name"}))
    process(source, {"email": "ada@example.com", "Last Name": "Lovelace", "colour": "green"})
    assert set(UnmappedField.objects.values_list("name", flat=True)) == {"Last Name", "colour"}

    mapping_set = source.mapping_sets.get()
    mapping_set.rules.filter(target="last_name").update(source_keys="surname, last_name")
    mapping_publish(mapping_set=mapping_set, note="the form renamed Surname")

    assert list(UnmappedField.objects.values_list("name", flat=True)) == ["colour"]


def send_runs(source, *runs: tuple[int, dict]) -> None:
    """`count` submissions of each payload, in order."""
    for count, fields in runs:
        for _ in range(count):
            process(source, {"email": "ada@example.com", **fields})


def stopped() -> list[str]:
    return list(FieldPresence.objects.filter(stopped_at__isnull=False).values_list("name", flat=True))


@pytest.fixture
def surname_form():
    return source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "Surname", "target": "last_name"},
                                      {"source_keys": "phone", "target": "phone"}))


def test_a_mapped_field_missing_from_five_submissions_in_a_row_after_twenty_with_it_has_stopped_arriving(surname_form):
    # given a form that always sent Surname
    send_runs(surname_form, (20, {"Surname": "Lovelace"}))

    # when it is renamed Last Name: four submissions are not yet enough to tell
    send_runs(surname_form, (4, {"Last Name": "Lovelace"}))
    assert stopped() == []
    send_runs(surname_form, (1, {"Last Name": "Lovelace"}))

    # then the fifth marks it as stopped
    assert stopped() == ["Surname"]
    presence = FieldPresence.objects.get(name="Surname")
    assert (presence.seen, presence.misses_in_a_row) == (20, 5)


def test_only_a_field_in_at_least_sixteen_of_the_twenty_submissions_before_counts_as_stopped(surname_form):
    # Surname in 16 of 20, phone in 15 of 20; then neither, five times
    send_runs(surname_form, (4, {}), (1, {"Surname": "L"}), (15, {"Surname": "L", "phone": "1"}), (5, {}))

    assert stopped() == ["Surname"]


def test_a_submission_without_any_mapped_field_counts_as_a_miss_for_each(surname_form):
    send_runs(surname_form, (2, {"Surname": "L"}))

    process(surname_form, {"something": "else"})

    assert dict(FieldPresence.objects.values_list("name", "misses_in_a_row")) == {"Surname": 1, "email": 1}


def test_a_stopped_field_that_arrives_again_is_no_longer_stopped_and_a_dismissed_one_stays_quiet(surname_form):
    send_runs(surname_form, (20, {"Surname": "L"}), (5, {}))
    assert stopped() == ["Surname"]

    send_runs(surname_form, (1, {"Surname": "L"}))
    assert stopped() == []

    send_runs(surname_form, (20, {"Surname": "L"}), (5, {}))
    presence_dismiss(presence_ids=list(FieldPresence.objects.values_list("pk", flat=True)))
    send_runs(surname_form, (10, {}))
    assert stopped() == []


def test_a_field_the_mapping_no_longer_names_is_no_longer_watched(surname_form):
    send_runs(surname_form, (20, {"Surname": "L"}), (5, {}))

    mapping_set = surname_form.mapping_sets.get()
    mapping_set.rules.filter(target="last_name").update(source_keys="last_name")
    mapping_publish(mapping_set=mapping_set)

    assert not FieldPresence.objects.filter(name="Surname").exists()


@pytest.mark.django_db(transaction=True)
def test_workers_mapping_one_sources_submissions_at_once_record_drift_and_presence_without_failing():
    # given twelve submissions of one form, each with a common new field and 10 of its own
    source = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "surname", "target": "last_name"}))
    ids = [submission(source=source, payload={"email": f"p{n}@example.org", "surname": "L", "common": "x",
                                              **{f"own_{n}_{i}": "x" for i in range(10)}}).pk for n in range(12)]
    start = threading.Barrier(len(ids))

    def process_now(submission_id: int) -> str:
        try:
            start.wait(timeout=30)
            return submission_process(submission_id=submission_id).status
        finally:
            connection.close()

    # when as many workers map them at the same moment
    with ThreadPoolExecutor(max_workers=len(ids)) as pool:
        statuses = list(pool.map(process_now, ids))

    # then every one is processed, each field counted once per submission
    assert statuses == [Submission.Status.PROCESSED] * 12
    assert UnmappedField.objects.get(name="common").count == 12
    assert UnmappedField.objects.filter(source=source).count() == 1 + 12 * 10
    assert dict(FieldPresence.objects.values_list("name", "seen")) == {"email": 12, "surname": 12}
