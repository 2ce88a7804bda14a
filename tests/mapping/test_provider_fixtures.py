"""Every provider payload in tests/fixtures/webhooks/ becomes the lead it should: posted
through the real intake (signed as the provider signs), then mapped by the kind's starter
mapping (plus the aliases a RevOps person adds for their own form)."""

import json

import pytest

from crmsync.pipeline import submission_process
from ingestion import signatures
from ingestion.credentials import source_secret_add
from ingestion.models import Source, SourceSecret, Submission
from leads.models import Lead
from mapping.services import mapping_publish
from mapping.starters import mapping_starter_create
from sandbox.meta.graph import meta_lead_create
from tests.fixtures import WEBHOOKS

pytestmark = pytest.mark.django_db(transaction=True)
FIXTURES = WEBHOOKS
SECRET = "provider-secret"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def source_of(kind: str, **fields) -> tuple[Source, str]:
    source = Source.objects.create(name=kind, slug=kind.replace("_", "-"), kind=kind, **fields)
    purpose = SourceSecret.Purpose.URL_TOKEN if source.auth_method == "url_token" else SourceSecret.Purpose.SIGNING
    _, secret = source_secret_add(source=source, purpose=purpose, value="" if purpose == "url_token" else SECRET)
    mapping_starter_create(source=source)
    return source, secret


def post_signed(client, source: Source, scheme: str, body: bytes) -> Submission:
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signatures.sign(scheme, secret=SECRET, body=body).items()}
    answer = client.post(source.intake_path, body, content_type="application/json", **headers)
    assert answer.status_code == 202, answer.json()
    return submission_process(submission_id=answer.json()["id"])


def add_aliases(source: Source, aliases: dict[str, str]) -> None:
    mapping_set = source.mapping_sets.get()
    for target, key in aliases.items():
        rule = mapping_set.rules.get(target=target)
        rule.source_keys = f"{rule.source_keys}, {key}"
        rule.save()
    mapping_publish(mapping_set=mapping_set, note="aliases for our form")


@pytest.mark.parametrize("name", ["stripe-checkout.session.completed.json",
                                  "stripe-checkout.session.completed.payment_mode.json"])
def test_a_stripe_checkout_becomes_a_lead_with_the_customers_email(client, name):
    source, _ = source_of("stripe")
    event = json.loads(fixture(name))

    sub = post_signed(client, source, "stripe", fixture(name))

    assert sub.status == Submission.Status.PROCESSED, sub.reasons
    assert sub.idempotency_key == event["id"]
    assert sub.lead.email == event["data"]["object"]["customer_details"]["email"].lower()


@pytest.mark.parametrize("name", ["stripe-customer.created.json", "stripe-openapi-fixture.event.plan.created.json"])
def test_a_stripe_event_without_an_email_is_rejected_with_the_reason(client, name):
    source, _ = source_of("stripe")

    sub = post_signed(client, source, "stripe", fixture(name))

    assert sub.status == Submission.Status.REJECTED
    assert "is required but missing or empty" in sub.reasons[0]["message"]
    assert not Lead.objects.exists()


@pytest.mark.parametrize("name, object_type", [("stripe-openapi-fixture.checkout.session.object.json", "checkout.session.completed"),
                                               ("stripe-openapi-fixture.customer.object.json", "customer.created")])
def test_stripe_objects_from_the_api_reference_map_inside_their_event(client, name, object_type):
    source, _ = source_of("stripe")
    obj = json.loads(fixture(name))
    body = json.dumps({"id": f"evt_{obj['id']}", "object": "event", "type": object_type, "data": {"object": obj}}).encode()
    expected = (obj.get("customer_details") or {}).get("email") or obj.get("customer_email") or obj.get("email")

    sub = post_signed(client, source, "stripe", body)

    if expected:
        assert (sub.status, sub.lead.email) == (Submission.Status.PROCESSED, expected.lower())
    else:
        assert sub.status == Submission.Status.REJECTED and not Lead.objects.exists()


def test_a_typeform_responses_email_answer_maps_with_no_alias(client):
    source, _ = source_of("typeform")

    sub = post_signed(client, source, "typeform", fixture("typeform-form_response.json"))

    assert sub.status == Submission.Status.PROCESSED, sub.reasons
    assert sub.lead.email == "laura@example.com"


def test_a_typeform_response_becomes_a_lead_once_the_forms_refs_are_aliased(client):
    source, _ = source_of("typeform")
    add_aliases(source, {"first_name": "readable_ref_short_text"})

    sub = post_signed(client, source, "typeform", fixture("typeform-form_response.json"))

    assert sub.status == Submission.Status.PROCESSED, sub.reasons
    assert (sub.lead.email, sub.lead.first_name) == ("laura@example.com", "Laura")
    assert sub.idempotency_key == json.loads(fixture("typeform-form_response.json"))["event_id"]


def test_a_meta_lead_ad_notification_becomes_the_lead_fetched_from_the_graph_api(client, live_server):
    source, _ = source_of("meta_lead_ads", graph_base_url=f"{live_server.url}/sandbox/graph/v19.0")
    source_secret_add(source=source, purpose=SourceSecret.Purpose.META_PAGE_TOKEN, value="page-token")
    notification = json.loads(fixture("meta-leadgen-webhook.fbsamples.json"))
    leadgen_id = notification["entry"][0]["changes"][0]["value"]["leadgen_id"]
    meta_lead_create(leadgen_id=leadgen_id, access_token="page-token", field_data=[
        {"name": "email", "values": ["Grace@Example.com"]}, {"name": "full_name", "values": ["Grace Hopper"]},
        {"name": "phone_number", "values": ["+1 202 555 0143"]}, {"name": "country", "values": ["United States"]}])

    sub = post_signed(client, source, "meta", fixture("meta-leadgen-webhook.fbsamples.json"))

    assert sub.status == Submission.Status.PROCESSED, sub.reasons
    lead = sub.lead
    assert (lead.email, lead.phone, lead.country) == ("grace@example.com", "+12025550143", "US")
    assert lead.attributes["full_name"] == "Grace Hopper"


def test_the_unbounce_fixture_has_no_email_and_is_kept_as_rejected_with_its_fields_recorded(client):
    source, token = source_of("unbounce")
    captured = json.loads(fixture("unbounce-form_submit.urlencoded.json"))

    answer = client.post(f"{source.intake_path}?token={token}", captured["raw_body"],
                         content_type="application/x-www-form-urlencoded")
    sub = submission_process(submission_id=answer.json()["id"])

    assert sub.status == Submission.Status.REJECTED
    assert "is required but missing or empty" in sub.reasons[0]["message"]
    assert source.unmapped_fields.filter(name="userfield1").exists()
