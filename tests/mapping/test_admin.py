"""RevOps edit, test and publish mappings in the admin; reviewers reprocess but cannot edit."""

import html
import json

from django.contrib.auth.models import Permission
from django.test import Client
import pytest

from crmsync.pipeline import submission_process
from ingestion.models import Submission
from leads.models import Lead
from mapping.models import MappingSet, UnmappedField
from mapping.services import mapping_publish
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
