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


def notify(client, source, leads) -> Submission:
    body = json.dumps(meta_webhook_body(leads=leads)).encode()
    headers = signatures.sign("meta", secret=APP_SECRET, body=body)
    answer = client.post(source.intake_path, body, content_type="application/json",
                         HTTP_X_HUB_SIGNATURE_256=headers["X-Hub-Signature-256"])
    assert answer.status_code == 202
    return Submission.objects.get(pk=answer.json()["id"])


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
