"""One person, one record, over the real product: the web server takes the posts, the worker
maps, resolves and pushes, and the sandbox HubSpot is asked what it holds."""

from concurrent.futures import ThreadPoolExecutor
import copy
import json
import threading

from django.conf import settings
from django.db import connection
import pytest
import requests

from crmsync.demo import demo_load
from crmsync.pipeline import submission_process
from delivery.models import PushJob
from ingestion import signatures
from ingestion.credentials import source_secret_add
from ingestion.models import SourceSecret, Submission
from leads.models import Lead, LeadDecision, LeadIdentity
from mapping.starters import mapping_starter_create
from sandbox.meta.graph import meta_lead_create, meta_webhook_body
from tests.factories import source_with_secret, submission
from tests.fixtures import WEBHOOKS
from tests.stack import wait_for

FIXTURES = WEBHOOKS
AUTH = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}
STRIPE_SECRET = "whsec_one_person"
META_SECRET = "meta-app-secret"
PAGE_TOKEN = "EAAB-page-token"


def sandbox_contacts_with(stack, email: str) -> list[dict]:
    """What the sandbox HubSpot's search API finds for an email."""
    body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
            "properties": ["email", "company", "firstname", "lastname", "phone", "crmsync_external_id", "hubspot_owner_id",
                           "crmsync_marketing_opt_in", "lifecyclestage"]}
    answer = requests.post(f"{stack.sandbox_url}/crm/v3/objects/contacts/search", json=body, headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"]


def settled(count: int):
    def check() -> bool:
        jobs = PushJob.objects.all()
        return jobs.count() >= count and not jobs.exclude(status=PushJob.Status.SUCCEEDED).exists()
    return check


@pytest.mark.e2e
def test_one_person_from_a_web_form_stripe_and_a_meta_lead_ad_is_one_lead_and_one_crm_contact(stack):
    demo_load(sandbox_base_url=stack.sandbox_url)
    stripe, _ = source_with_secret(kind="stripe", secret=STRIPE_SECRET)
    mapping_starter_create(source=stripe)
    meta, _ = source_with_secret(kind="meta_lead_ads", secret=META_SECRET,
                                 graph_base_url=f"{stack.base_url}/sandbox/graph/v19.0")
    source_secret_add(source=meta, purpose=SourceSecret.Purpose.META_PAGE_TOKEN, value=PAGE_TOKEN)
    mapping_starter_create(source=meta)
    stack.start_web()
    stack.start_worker()

    # a web form: mixed-case email, a phone number with spaces
    form = requests.post(f"{stack.base_url}/api/v1/sources/demo-form/submissions", timeout=10, json={
        "email": "Ada.Lovelace@Example.COM", "first_name": "Ada", "phone": "+44 20 7946 0958", "country": "GB"})
    assert form.status_code == 202, form.text
    wait_for(settled(1), timeout=60, what="the web form lead to reach the CRM")

    # a Stripe checkout by the same person
    event = json.loads((FIXTURES / "stripe-checkout.session.completed.json").read_text())
    event["id"] = "evt_one_person"
    event["data"]["object"].update(customer="cus_ADA", customer_details={
        "email": "ada.lovelace@example.com", "name": "Ada Lovelace", "phone": None})
    body = json.dumps(event).encode()
    answer = requests.post(f"{stack.base_url}{stripe.intake_path}", data=body, timeout=10, headers={
        **signatures.sign("stripe", secret=STRIPE_SECRET, body=body), "Content-Type": "application/json"})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: Submission.objects.filter(source=stripe, status="processed").exists(), what="the checkout")

    # and a Meta lead ad, fetched by the worker from the Graph API
    ad_lead = meta_lead_create(leadgen_id="777000777", access_token=PAGE_TOKEN, field_data=[
        {"name": "email", "values": ["ADA.LOVELACE@example.com"]}, {"name": "full_name", "values": ["Ada King"]},
        {"name": "company_name", "values": ["Analytical Engines"]}])
    body = json.dumps(meta_webhook_body(leads=[ad_lead])).encode()
    answer = requests.post(f"{stack.base_url}{meta.intake_path}", data=body, timeout=10, headers={
        **signatures.sign("meta", secret=META_SECRET, body=body), "Content-Type": "application/json"})
    assert answer.status_code == 202, answer.text
    wait_for(lambda: Submission.objects.filter(source=meta, status="processed").exists(), what="the lead ad")
    wait_for(lambda: settled(2)() and Lead.objects.get().company == "Analytical Engines", what="the last push")
    wait_for(settled(2), timeout=60, what="every push")

    # one lead, known by both sources' record IDs, with each match decision logged
    lead = Lead.objects.get()
    assert (lead.email, lead.phone, lead.company) == ("ada.lovelace@example.com", "+442079460958", "Analytical Engines")
    assert set(LeadIdentity.objects.filter(lead=lead).values_list("value", flat=True)) == {
        "stripe:cus_ADA", "meta-lead-ads:777000777"}
    log = [(d.action, d.matched_by, d.submission.source.slug) for d in lead.decisions.order_by("id")
           if d.action in (LeadDecision.Action.CREATED, LeadDecision.Action.MATCHED)]
    assert log == [("created", "", "demo-form"), ("matched", "email", "stripe"), ("matched", "email", "meta-lead-ads")]
    # and one CRM contact, holding what all three said
    [contact] = sandbox_contacts_with(stack, "ada.lovelace@example.com")
    assert contact["properties"]["crmsync_external_id"] == lead.external_id
    assert contact["properties"]["phone"] == "+442079460958"
    assert contact["properties"]["company"] == "Analytical Engines"
    assert {job.crm_record_id for job in PushJob.objects.all()} == {contact["id"]}


def process_at_once(submission_ids: list[int]) -> list[str]:
    """Process every submission at the same moment, each in its own thread, transaction and
    database connection, as that many workers would; returns their statuses."""
    start = threading.Barrier(len(submission_ids))

    def process(submission_id: int) -> str:
        try:
            start.wait(timeout=30)
            return submission_process(submission_id=submission_id).status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(submission_ids)) as pool:
        return list(pool.map(process, submission_ids))


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_submissions_for_one_new_email_make_one_lead(web):
    """On PostgreSQL the fifty run truly at once, each in its own transaction and connection;
    the unique email constraint, not timing, keeps them to one lead."""
    ids = [submission(source=web, payload={"email": "Grace@Navy.mil", "first_name": f"Grace{i}"}).pk for i in range(50)]

    assert process_at_once(ids) == ["processed"] * 50
    lead = Lead.objects.get()
    assert lead.email == "grace@navy.mil"
    assert set(Submission.objects.values_list("lead_id", flat=True)) == {lead.pk}
    actions = list(lead.decisions.filter(action__in=["created", "matched"]).values_list("action", flat=True))
    assert sorted(actions) == ["created"] + ["matched"] * 49


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_with_one_source_record_id_and_no_email_make_one_lead(db):
    stripe, _ = source_with_secret(kind="stripe", secret=STRIPE_SECRET)
    mapping_starter_create(source=stripe)
    for rule in stripe.mapping_sets.get().rules.filter(target="email"):
        rule.required = False
        rule.save()
    from mapping.services import mapping_publish

    mapping_publish(mapping_set=stripe.mapping_sets.get())
    payload = {"type": "customer.updated", "data": {"object": {"id": "cus_NOEMAIL", "name": "Nobody"}}}
    ids = [submission(source=stripe, payload=copy.deepcopy(payload)).pk for _ in range(20)]

    assert process_at_once(ids) == ["processed"] * 20
    assert Lead.objects.count() == 1
    assert LeadIdentity.objects.get().value == "stripe:cus_NOEMAIL"
