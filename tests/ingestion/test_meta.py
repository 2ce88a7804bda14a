"""Meta Lead Ads end to end within the process: a signed IDs-only notification, then the
worker's fetch from the (sandbox) Graph API over real HTTP, then the mapping."""

import json

import pytest

from crmsync.pipeline import submission_process
from ingestion import signatures
from ingestion.credentials import source_secret_add
from ingestion.models import SourceSecret, Submission
from leads.models import Lead
from mapping.models import FieldRule, MappingSet
from mapping.services import mapping_publish
from sandbox.meta.graph import meta_lead_create, meta_webhook_body
from tests.factories import source_with_secret

pytestmark = pytest.mark.django_db(transaction=True)
APP_SECRET = "meta-app-secret"
PAGE_TOKEN = "EAAB-page-token"


@pytest.fixture
def meta_source(live_server):
    source, _ = source_with_secret(kind="meta_lead_ads", secret=APP_SECRET,
                                   graph_base_url=f"{live_server.url}/sandbox/graph/v19.0")
    source_secret_add(source=source, purpose=SourceSecret.Purpose.META_PAGE_TOKEN, value=PAGE_TOKEN)
    mapping_set = MappingSet.objects.create(source=source, name="meta")
    FieldRule.objects.create(mapping_set=mapping_set, source_keys="email", target="email",
                             transforms=[{"op": "trim"}, {"op": "lower"}], required=True)
    FieldRule.objects.create(mapping_set=mapping_set, source_keys="full_name", target="attributes.full_name")
    mapping_publish(mapping_set=mapping_set)
    return source


def post(client, source, body: bytes):
    headers = signatures.sign("meta", secret=APP_SECRET, body=body)
    return client.post(source.intake_path, body, content_type="application/json",
                       HTTP_X_HUB_SIGNATURE_256=headers["X-Hub-Signature-256"])


def notify(client, source, leads) -> Submission:
    answer = post(client, source, json.dumps(meta_webhook_body(leads=leads)).encode())
    assert answer.status_code == 202
    return Submission.objects.get(pk=answer.json()["id"])


def lead_with_email(leadgen_id: str, email: str, page_id: str = "1"):
    return meta_lead_create(leadgen_id=leadgen_id, access_token=PAGE_TOKEN, page_id=page_id, form_id="2",
                            field_data=[{"name": "email", "values": [email]}])


def test_a_notification_naming_two_leads_becomes_two_leads(client, meta_source):
    ada, grace = lead_with_email("101", "ada@example.com"), lead_with_email("202", "grace@example.com", page_id="9")
    answer = post(client, meta_source, json.dumps(meta_webhook_body(leads=[ada, grace])).encode())
    assert answer.status_code == 202
    ids = answer.json()["ids"]

    processed = [submission_process(submission_id=submission_id) for submission_id in ids]

    assert [s.status for s in processed] == [Submission.Status.PROCESSED] * 2, [s.reasons for s in processed]
    assert [s.idempotency_key for s in processed] == ["101", "202"]
    assert sorted(Lead.objects.values_list("email", flat=True)) == ["ada@example.com", "grace@example.com"]
    assert {s.lead.email for s in processed} == {"ada@example.com", "grace@example.com"}


def test_a_redelivered_notification_stores_nothing_again_and_answers_the_same_ids(client, meta_source):
    body = json.dumps(meta_webhook_body(leads=[lead_with_email("101", "a@b.co"), lead_with_email("202", "c@d.co")])).encode()
    first = post(client, meta_source, body)

    again = post(client, meta_source, body)

    assert (again.status_code, again.json()) == (202, first.json())
    assert Submission.objects.count() == 2
    assert meta_source.counters.get(outcome="duplicate").count == 2


def test_a_later_notification_naming_a_lead_already_received_stores_only_the_new_one(client, meta_source):
    ada, grace = lead_with_email("101", "a@b.co"), lead_with_email("202", "c@d.co")
    [ada_id] = post(client, meta_source, json.dumps(meta_webhook_body(leads=[ada])).encode()).json()["ids"]

    answer = post(client, meta_source, json.dumps(meta_webhook_body(leads=[ada, grace])).encode())

    assert answer.json()["ids"][0] == ada_id
    assert sorted(Submission.objects.values_list("idempotency_key", flat=True)) == ["101", "202"]


def test_the_worker_fetches_the_lead_from_the_graph_api_and_maps_it(client, meta_source):
    lead = meta_lead_create(leadgen_id="444444444444", access_token=PAGE_TOKEN, page_id="1", form_id="2",
                            field_data=[{"name": "email", "values": ["Ada@Example.com"]},
                                        {"name": "full_name", "values": ["Ada Lovelace"]}])
    submission = notify(client, meta_source, [lead])
    assert submission.idempotency_key == "444444444444"

    submission = submission_process(submission_id=submission.pk)

    assert submission.status == Submission.Status.PROCESSED, submission.reasons
    assert submission.enrichment["leads"][0]["id"] == "444444444444"
    assert (Lead.objects.get().email, Lead.objects.get().attributes) == ("ada@example.com", {"full_name": "Ada Lovelace"})


def test_an_unreachable_graph_api_is_retried_later_not_rejected(client, meta_source):
    lead = meta_lead_create(leadgen_id="555", access_token=PAGE_TOKEN, field_data=[{"name": "email", "values": ["a@b.co"]}])
    submission = notify(client, meta_source, [lead])
    meta_source.graph_base_url = "http://127.0.0.1:9/v19.0"
    meta_source.save()

    submission = submission_process(submission_id=submission.pk)

    assert submission.status == Submission.Status.RECEIVED
    assert submission.fetch_attempts == 1 and submission.next_attempt_at is not None
    assert "unreachable" in submission.notes[-1]
    assert submission_process(submission_id=submission.pk).fetch_attempts == 1  # not due yet: untouched


def test_a_refused_page_token_rejects_with_metas_message(client, meta_source):
    lead = meta_lead_create(leadgen_id="666", access_token="another-pages-token", field_data=[{"name": "email", "values": ["a@b.co"]}])
    submission = notify(client, meta_source, [lead])

    submission = submission_process(submission_id=submission.pk)

    assert submission.status == Submission.Status.REJECTED
    assert "Graph API 400" in submission.reasons[0]["message"]
    assert not Lead.objects.exists()
