"""RevOps edit, test and publish mappings in the admin; reviewers reprocess but cannot edit."""

import html
import json

from django.contrib.auth.models import Permission
from django.test import Client
import pytest

from crmsync.pipeline import submission_process
from ingestion.models import Source, Submission
from leads.models import Lead
from mapping.models import FieldPresence, FieldRule, MappingSet, UnmappedField
from mapping.services import mapping_publish
from mapping.starters import mapping_starter_create
from tests.factories import EMAIL_RULE, source_with_mapping, submission

pytestmark = pytest.mark.django_db


def staff(django_user_model, username: str, *perms: str) -> Client:
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw-123456", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def revops(django_user_model):
    return staff(django_user_model, "revops", "mapping.view_mappingset", "mapping.change_mappingset",
                 "mapping.add_fieldrule", "mapping.change_fieldrule", "mapping.delete_fieldrule",
                 "mapping.view_fieldrule", "mapping.publish_mappingset", "mapping.view_mappingversion",
                 "ingestion.view_submission", "ingestion.reprocess_submission")


@pytest.fixture
def reviewer(django_user_model):
    return staff(django_user_model, "reviewer", "ingestion.view_submission", "ingestion.reprocess_submission",
                 "mapping.view_mappingset", "mapping.view_fieldrule", "mapping.view_mappingversion")


@pytest.fixture
def source():
    return source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "company_name", "target": "company"}))


def rule_formset(mapping_set: MappingSet, company_keys: str) -> dict:
    rules = list(mapping_set.rules.order_by("position"))
    data = {"source": mapping_set.source_id, "name": mapping_set.name, "is_active": "on", "shape": "",
            "default_region": "", "timezone": "UTC",
            "rules-TOTAL_FORMS": str(len(rules)), "rules-INITIAL_FORMS": str(len(rules)),
            "rules-MIN_NUM_FORMS": "0", "rules-MAX_NUM_FORMS": "1000"}
    for i, rule in enumerate(rules):
        data.update({f"rules-{i}-id": rule.pk, f"rules-{i}-mapping_set": mapping_set.pk, f"rules-{i}-position": i,
                     f"rules-{i}-source_keys": company_keys if rule.target == "company" else rule.source_keys,
                     f"rules-{i}-target": rule.target, f"rules-{i}-transforms": json.dumps(rule.transforms),
                     f"rules-{i}-on_invalid": "reject", f"rules-{i}-default": "", f"rules-{i}-max_length": ""})
    return data


def test_revops_edits_previews_and_publishes_and_the_new_version_is_used(revops, source):
    mapping_set = source.mapping_sets.get()
    url = f"/admin/mapping/mappingset/{mapping_set.pk}/"
    source.mapping_sets.get().rules.filter(target="company").update(required=True)
    mapping_publish(mapping_set=mapping_set)
    # the form now sends "company" instead of "company_name": rejected, and seen as drift
    rejected = [submission_process(submission_id=submission(source=source, payload={"email": f"p{i}@b.co", "company": "Acme"}).pk)
                for i in range(2)]
    assert {r.status for r in rejected} == {Submission.Status.REJECTED}
    assert "company" in revops.get(f"{url}change/").content.decode()  # the drift warning

    # edit: accept the renamed field as an alias
    assert revops.post(f"{url}change/", rule_formset(mapping_set, "company_name, company")).status_code == 302
    # preview the draft on a pasted payload: nothing saved
    preview = revops.post(f"{url}preview/", {"payload": '{"email": "Ada@Example.com", "company": "Acme"}'})
    assert preview.status_code == 200
    assert "Acme" in preview.content.decode() and "ada@example.com" in preview.content.decode()
    assert Submission.objects.count() == 2 and not Lead.objects.exists()
    # publish, with the diff shown first
    page = html.unescape(revops.get(f"{url}publish/").content.decode())
    assert '+        "company"' in page  # the diff shows the added alias
    assert revops.post(f"{url}publish/", {"note": "alias for renamed field"}).status_code == 302

    mapping_set.refresh_from_db()
    assert mapping_set.published.number == 3 and mapping_set.published.note == "alias for renamed field"
    # the rejected submissions are reprocessed from the admin and become leads
    answer = revops.post("/admin/ingestion/submission/", {"action": "reprocess", "_selected_action": [r.pk for r in rejected]})
    assert answer.status_code == 302
    assert {s.mapping_version.number for s in Submission.objects.all()} == {3}
    assert sorted(Lead.objects.values_list("company", flat=True)) == ["Acme", "Acme"]


def test_a_broken_rule_is_a_form_error_not_a_crash(revops, source):
    mapping_set = source.mapping_sets.get()
    data = rule_formset(mapping_set, "company_name")
    data["rules-1-transforms"] = '[{"op": "regex_extract", "pattern": "("}]'
    data["rules-0-transforms"] = '[{"op": "shout"}]'

    answer = revops.post(f"/admin/mapping/mappingset/{mapping_set.pk}/change/", data)

    assert answer.status_code == 200  # the form again, with errors
    errors = str(answer.context["inline_admin_formsets"][0].formset.errors)
    assert "shout" in errors and ("regex" in errors.lower() or "pattern" in errors.lower())
    assert mapping_set.rules.get(target="email").transforms == EMAIL_RULE["transforms"]


def test_a_reviewer_can_reprocess_but_cannot_change_or_publish_a_mapping(reviewer, source):
    mapping_set = source.mapping_sets.get()
    rejected = submission_process(submission_id=submission(source=source, payload={"first_name": "Ada"}).pk)

    assert reviewer.post(f"/admin/mapping/mappingset/{mapping_set.pk}/change/",
                         rule_formset(mapping_set, "anything")).status_code == 403
    assert reviewer.post(f"/admin/mapping/mappingset/{mapping_set.pk}/publish/", {"note": "x"}).status_code == 403
    assert mapping_set.rules.get(target="company").source_keys == "company_name"
    listing = reviewer.get("/admin/ingestion/submission/?status__exact=rejected")
    assert listing.status_code == 200 and "is required but missing" in listing.content.decode()
    answer = reviewer.post("/admin/ingestion/submission/", {"action": "reprocess", "_selected_action": [rejected.pk]})
    assert answer.status_code == 302


def test_new_unmapped_fields_are_warned_about_until_acknowledged(revops, source):
    submission_process(submission_id=submission(source=source, payload={"email": "a@b.co", "utm_source": "x"}).pk)
    url = f"/admin/mapping/mappingset/{source.mapping_sets.get().pk}/change/"

    assert "utm_source" in revops.get(url).content.decode()
    UnmappedField.objects.update(acknowledged=True)
    assert "sends fields its mapping does not use" not in revops.get(url).content.decode()


def test_revops_tests_the_draft_on_a_past_submission_picked_from_the_list(revops, source):
    # given a past submission whose company field the draft now maps
    past = submission(source=source, payload={"email": "Grace@Example.com", "company_name": "Navy"})
    mapping_set = source.mapping_sets.get()

    # when RevOps picks it in "Test this mapping"
    answer = revops.post(f"/admin/mapping/mappingset/{mapping_set.pk}/preview/", {"submission": past.pk, "payload": ""})

    # then the preview shows what the draft makes of it
    page = answer.content.decode()
    assert answer.status_code == 200
    assert "Select a valid choice" not in page
    assert "grace@example.com" in page and "Navy" in page
    assert answer.context["preview"].mapped.values == {"email": "grace@example.com", "company": "Navy"}


def test_a_submission_of_another_source_cannot_be_picked_for_the_preview(revops, source):
    other = source_with_mapping(slug="other")
    foreign = submission(source=other, payload={"email": "a@b.co"})
    mapping_set = source.mapping_sets.get()

    answer = revops.post(f"/admin/mapping/mappingset/{mapping_set.pk}/preview/", {"submission": foreign.pk})

    assert answer.status_code == 200 and answer.context["preview"] is None
    assert "Select a valid choice" in answer.content.decode()


def test_the_preview_of_a_corrected_submission_reads_the_reviewers_corrections(revops, source):
    past = submission(source=source, payload={"email": "grace@example", "company_name": "Navy"})
    Submission.objects.filter(pk=past.pk).update(field_overrides={"email": "grace@example.com"})

    answer = revops.post(f"/admin/mapping/mappingset/{source.mapping_sets.get().pk}/preview/", {"submission": past.pk})

    assert answer.context["preview"].mapped.values == {"email": "grace@example.com", "company": "Navy"}


# --- Drift, both ways -------------------------------------------------------------------------


def send(source, count: int, **fields) -> None:
    for _ in range(count):
        submission_process(submission_id=submission(source=source, payload={"email": "ada@example.com", **fields}).pk)


def test_the_new_field_warning_clears_once_the_field_is_mapped_and_published_without_acknowledging(revops, source):
    # given a form that renamed company_name to "Company Name"... and the warning about it
    send(source, 1, **{"Company": "Acme"})
    mapping_set = source.mapping_sets.get()
    url = f"/admin/mapping/mappingset/{mapping_set.pk}/"
    assert "sends fields its mapping does not use: Company" in revops.get(f"{url}change/").content.decode()

    # when RevOps adds it as an alias and publishes
    assert revops.post(f"{url}change/", rule_formset(mapping_set, "company_name, company")).status_code == 302
    assert revops.post(f"{url}publish/", {"note": "alias"}).status_code == 302

    # then the warning is gone, with nothing acknowledged
    assert "sends fields its mapping does not use" not in revops.get(f"{url}change/").content.decode()
    assert not UnmappedField.objects.filter(acknowledged=True).exists()


def test_the_source_page_warns_about_mapped_fields_that_stopped_arriving_and_names_left_out(operator):
    renamed = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "Surname", "target": "last_name"}))
    send(renamed, 20, Surname="Lovelace")
    send(renamed, 5, **{"Last Name": "Lovelace"}, **{f"extra_{i}": "x" for i in range(55)})

    page = html.unescape(operator.get(f"/admin/ingestion/source/{renamed.pk}/change/").content.decode())

    assert "stopped sending fields its mapping uses: Surname" in page
    assert "sends fields its mapping does not use: Last Name, extra_0" in page
    # 56 new names at once: 50 recorded, 6 counted as left out (and recorded with the next submission)
    assert "6 more unmapped field names were not recorded" in page


def test_the_admin_index_lists_the_sources_with_drift(operator):
    renamed = source_with_mapping(slug="renamed-form", rules=(EMAIL_RULE, {"source_keys": "Surname", "target": "last_name"}))
    source_with_mapping(slug="steady-form")
    send(renamed, 20, Surname="Lovelace")
    send(renamed, 5, **{"Last Name": "Lovelace"})

    page = html.unescape(operator.get("/admin/").content.decode())

    assert "Sources with drift" in page
    box = page[page.index("Sources with drift"):]
    assert "Renamed-Form" in box and "Last Name" in box and "Surname" in box
    assert "Steady-Form" not in box


def test_the_drift_box_is_not_shown_to_staff_who_cannot_see_mappings(django_user_model):
    renamed = source_with_mapping(slug="renamed-form")
    send(renamed, 1, colour="green")
    outsider = staff(django_user_model, "support", "leads.view_lead")

    assert "Sources with drift" not in outsider.get("/admin/").content.decode()


def test_a_stopped_field_dismissed_in_the_admin_is_no_longer_warned_about(operator):
    renamed = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "Surname", "target": "last_name"}))
    send(renamed, 20, Surname="Lovelace")
    send(renamed, 5)
    presence = FieldPresence.objects.get(name="Surname")

    answer = operator.post("/admin/mapping/fieldpresence/", {"action": "dismiss", "_selected_action": [presence.pk]})

    assert answer.status_code == 302
    assert "stopped sending" not in operator.get(f"/admin/ingestion/source/{renamed.pk}/change/").content.decode()


# --- Map from a sample ------------------------------------------------------------------------


def test_revops_maps_a_gravity_forms_entry_from_a_sample_then_tests_publishes_and_reprocesses(revops):
    # given a Gravity Forms source whose entries are keyed by field ID: rejected, no email found
    gravity = Source.objects.create(name="Gravity", slug="gravity", kind="gravity_forms")
    mapping_set = mapping_starter_create(source=gravity)
    entry = {"id": "42", "form_id": "3", "1.3": "Ada", "1.6": "Lovelace", "2": "Ada@Example.com", "4": "Engines"}
    rejected = submission_process(submission_id=submission(source=gravity, payload=entry).pk)
    assert rejected.status == Submission.Status.REJECTED
    url = f"/admin/mapping/mappingset/{mapping_set.pk}/from-sample/"

    # when RevOps opens it as a sample: every field, redacted, "ignore" unless chosen
    page = revops.get(url, {"submission": rejected.pk})
    text = html.unescape(page.content.decode())
    assert page.status_code == 200
    assert "Ad… (3 characters)" in text and "…@Example.com" in text and "Ada@Example.com" not in text
    rows = {item.name: field for item, field in page.context["form"].rows()}
    assert rows["2"].value() == "" and rows["2"].field.choices[0] == ("", "ignore")
    names = [item.name for item, _ in page.context["form"].rows()]

    # and chooses targets, keeping the rest ignored
    chosen = {"2": "email", "1.3": "first_name", "1.6": "last_name", "4": "company"}
    form = {f"field_{n}": chosen.get(name, "") for n, name in enumerate(names)}
    answer = revops.post(f"{url}?submission={rejected.pk}", form)

    # then the draft reads them, and the preview of the same submission shows the lead
    assert answer.status_code == 302 and answer.url.endswith(f"/preview/?submission={rejected.pk}")
    preview = revops.post(answer.url, {"submission": rejected.pk})
    assert preview.context["preview"].mapped.values == {
        "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace", "company": "Engines"}
    assert revops.post(f"/admin/mapping/mappingset/{mapping_set.pk}/publish/", {"note": "from a sample"}).status_code == 302
    revops.post("/admin/ingestion/submission/", {"action": "reprocess", "_selected_action": [rejected.pk]})
    assert Lead.objects.get().last_name == "Lovelace"


def test_a_field_name_with_a_comma_is_a_message_on_its_row_and_nothing_is_saved(revops, source):
    sample = submission(source=source, payload={"email": "a@b.co", "Size, colour": "L"})
    url = f"/admin/mapping/mappingset/{source.mapping_sets.get().pk}/from-sample/?submission={sample.pk}"
    names = [item.name for item, _ in revops.get(url).context["form"].rows()]
    before = list(FieldRule.objects.values_list("target", "source_keys"))

    answer = revops.post(url, {f"field_{names.index('Size, colour')}": "attributes.size_colour"})

    assert answer.status_code == 200 and "holds a comma" in answer.content.decode()
    assert list(FieldRule.objects.values_list("target", "source_keys")) == before


def test_choosing_nothing_says_so_and_a_reviewer_cannot_map_from_a_sample(revops, reviewer, source):
    sample = submission(source=source, payload={"email": "a@b.co", "colour": "green"})
    url = f"/admin/mapping/mappingset/{source.mapping_sets.get().pk}/from-sample/?submission={sample.pk}"

    assert "Choose a target for at least one field" in revops.post(url, {}).content.decode()
    assert reviewer.get(url).status_code == 403


def test_the_mapping_page_links_back_to_its_source(operator):
    source = source_with_mapping()
    mapping_set = MappingSet.objects.get(source=source)

    page = operator.get(f"/admin/mapping/mappingset/{mapping_set.pk}/change/").content.decode()

    assert f'href="/admin/ingestion/source/{source.pk}/change/"' in page
