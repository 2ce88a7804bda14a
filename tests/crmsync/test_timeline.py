"""A lead's timeline in the admin: every submission, decision, push job and CRM call, in order."""

import json
import re

from django.contrib.auth.models import Permission
from django.utils import timezone
import pytest

from crmsync.pipeline import submission_process
from crmsync.timeline import Entry, Source, lead_timeline
from delivery.models import Conflict, Destination, PushJob
from delivery.services import push_dispatch_due
from ingestion.models import Submission
from leads.models import Lead
from tests.factories import hubspot_destination, source_with_mapping

NAME_RULE = {"source_keys": "first_name", "target": "first_name", "transforms": [{"op": "trim"}]}


def submission(*, source, payload: dict) -> Submission:
    """A submission as the intake stores it: the raw body is the JSON that was posted."""
    return Submission.objects.create(source=source, raw_body=json.dumps(payload).encode(),
                                     content_type="application/json", payload=payload)


def kinds_and_ids(html: str) -> list[tuple[str, str]]:
    """(kind, correlation ID) of each timeline entry, in page order."""
    return re.findall(r'data-kind="(\w+)" data-correlation-id="([^"]*)"', html)


def first_of_each(entries: list[tuple[str, str]]) -> list[str]:
    return list(dict.fromkeys(kind for kind, _ in entries))


@pytest.fixture
def sandbox_url(live_server) -> str:
    return f"{live_server.url}/sandbox/hubspot"


def ada_processed(*, crm_url: str) -> Submission:
    """Ada's form post, processed into a lead with a push job for the HubSpot at crm_url."""
    source = source_with_mapping(rules=({"source_keys": "email", "target": "email", "transforms": [{"op": "lower"}],
                                         "required": True}, NAME_RULE))
    hubspot_destination(base_url=crm_url)
    first = submission(source=source, payload={"email": "Ada@Example.com", "first_name": "Ada"})
    submission_process(submission_id=first.pk)
    first.refresh_from_db()
    return first


@pytest.fixture
def delivered(sandbox_url):
    """Ada's lead, pushed to the sandbox HubSpot."""
    first = ada_processed(crm_url=sandbox_url)
    assert push_dispatch_due() == 1
    return first


@pytest.fixture
def processed(db):
    """Ada's lead, its push job waiting (nothing needs the CRM)."""
    return ada_processed(crm_url="http://127.0.0.1:9/not-called")


def test_a_reviewer_sees_the_whole_path_of_a_lead_in_time_order(operator, delivered):
    lead = delivered.lead

    # when the reviewer opens the lead's timeline from the lead's page
    lead_page = operator.get(f"/admin/leads/lead/{lead.pk}/change/")
    assert f"/admin/leads/lead/{lead.pk}/timeline/" in lead_page.content.decode()
    page = operator.get(f"/admin/leads/lead/{lead.pk}/timeline/")

    # then it lists the submission, the decisions, the push job and its CRM call, in that order
    assert page.status_code == 200
    html = page.content.decode()
    entries = kinds_and_ids(html)
    assert first_of_each(entries) == ["submission", "decision", "push", "call"]
    # all of them caused by the one submission
    assert {cid for _, cid in entries} == {delivered.correlation_id}
    # with the raw body, the mapped values and their mapping version, and the call's request and answer
    assert "Ada@Example.com" in html and "&quot;email&quot;: &quot;ada@example.com&quot;" in html
    assert f"with {delivered.mapping_version}" in html
    assert f"Attempt 1 of push job {PushJob.objects.get().pk} → HubSpot: create (" in html
    assert "&quot;properties&quot;" in html  # what was sent to the CRM


def test_a_submissions_timeline_highlights_its_own_entries_among_the_leads(operator, processed):
    # given the same person writes again, with a new first name
    again = submission(source=processed.source, payload={"email": "ada@example.com", "first_name": "Augusta"})
    submission_process(submission_id=again.pk)
    again.refresh_from_db()
    assert again.correlation_id and again.correlation_id != processed.correlation_id

    # when the reviewer opens the second submission's timeline (linked from its page)
    assert f"/admin/ingestion/submission/{again.pk}/timeline/" in operator.get(
        f"/admin/ingestion/submission/{again.pk}/change/").content.decode()
    html = operator.get(f"/admin/ingestion/submission/{again.pk}/timeline/").content.decode()

    # then it shows the lead's whole history, with the second submission's entries highlighted
    entries = kinds_and_ids(html)
    assert {cid for _, cid in entries} == {processed.correlation_id, again.correlation_id}
    focused = re.findall(r'<li class="(\w+) focused" data-kind="\w+" data-correlation-id="([^"]*)"', html)
    assert {cid for _, cid in focused} == {again.correlation_id}
    # (the push job still waiting, queued for the first one, now sends the second one's change too)
    assert sorted(first_of_each(focused)) == ["decision", "push", "submission"]
    assert PushJob.objects.get(status=PushJob.Status.PENDING).correlation_id == again.correlation_id


def test_a_rejected_submission_has_a_timeline_of_its_own(operator, processed):
    rejected = submission(source=processed.source, payload={"first_name": "No email"})
    submission_process(submission_id=rejected.pk)
    rejected.refresh_from_db()
    assert rejected.status == Submission.Status.REJECTED

    html = operator.get(f"/admin/ingestion/submission/{rejected.pk}/timeline/").content.decode()

    assert [kind for kind, _ in kinds_and_ids(html)] == ["submission", "submission"]
    assert f"Submission {rejected.pk} rejected" in html and "No email" in html


def test_a_correlation_id_leads_to_its_submissions_timeline(operator, processed):
    answer = operator.get(f"/admin/ingestion/submission/correlation/{processed.correlation_id}/")
    assert answer.status_code == 302
    assert answer["Location"] == f"/admin/ingestion/submission/{processed.pk}/timeline/"
    assert operator.get("/admin/ingestion/submission/correlation/no-such-id/").status_code == 404


def test_a_user_sees_only_the_entries_their_permissions_allow(client, django_user_model, processed):
    # given a sales rep who may view leads, but not submissions or the sync log
    rep = django_user_model.objects.create_user("rep", password="pw-rep-123", is_staff=True)
    rep.user_permissions.add(*Permission.objects.filter(codename__in=["view_lead", "view_leaddecision", "view_pushjob"]))
    client.force_login(rep)

    html = client.get(f"/admin/leads/lead/{processed.lead.pk}/timeline/").content.decode()

    assert first_of_each(kinds_and_ids(html)) == ["decision", "push"]
    assert "Ada@Example.com" not in html  # the raw body is the submission's
    assert "ingestion.view_submission" in html and "audit.view_synclog" in html  # it says what is left out


def test_another_kind_of_event_is_one_more_source(processed):
    # a later stage (two-way sync's polls, say) adds its events as one more source
    def polls(lead_ids: list[int]):
        yield Entry(processed.received_at, "poll", "Read back from the CRM", {"lastmodifieddate": "..."})

    entries = lead_timeline(lead=Lead.objects.get(), sources=[Source("leads.view_lead", polls)])

    assert [(e.kind, e.title) for e in entries] == [("poll", "Read back from the CRM")]


def test_a_two_way_sync_conflict_shows_when_it_opened_and_how_it_was_settled(operator, processed):
    Conflict.objects.create(lead=processed.lead, destination=Destination.objects.get(), target="firstname",
                            source="first_name", ours="Ada", theirs="Augusta", status=Conflict.Status.RESOLVED,
                            resolution=Conflict.Resolution.TAKE_CRM, resolved_value="Augusta", resolved_at=timezone.now())

    html = operator.get(f"/admin/leads/lead/{processed.lead.pk}/timeline/").content.decode()

    assert [kind for kind, _ in kinds_and_ids(html)][-2:] == ["conflict", "conflict"]
    assert "Conflict at HubSpot: firstname</a>" in html and "Conflict at HubSpot: firstname, took the crm&#x27;s" in html
