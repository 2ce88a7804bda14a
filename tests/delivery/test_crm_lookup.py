"""Before the first push of a lead, the CRM is asked for a record with its email (typed in by
hand, imported); a found one is updated and keyed instead of a duplicate being created. Leads go
through the outbox and the dispatcher to the sandbox CRMs over real HTTP."""

from datetime import timedelta
import json
from types import SimpleNamespace

from django.conf import settings
from django.utils import timezone
import pytest
import requests

from delivery import services
from delivery.connectors.base import PushRecord
from delivery.connectors.hubspot import HubSpotConnector
from delivery.connectors.salesforce import QUERY_URL_BUDGET, SalesforceConnector
from delivery.fieldmap import fields_default_ensure
from delivery.models import Destination, DestinationField, LeadDelivery, PushJob
from delivery.preflight import destination_fields_create
from delivery.session import DestinationSession
from leads.models import Lead, LeadDecision
from sandbox.faults import request_log_count
from sandbox.models import SandboxAssociation, SandboxContact, SandboxSalesforceRecord
from sandbox.salesforce import records as sandbox_salesforce
from sandbox.salesforce.schema import SANDBOX_USER_ID
from tests.factories import deliver, hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db(transaction=True)

HUBSPOT_READS = "/crm/v3/objects/contacts/batch/read"
SALESFORCE_QUERIES = "/query"
KEY = "Crmsync_External_Id__c"


# --- people typed into the CRMs by hand ---------------------------------------------------------

def hubspot_by_hand(base_url: str, **properties) -> str:
    """A contact created the way a person or an import creates it: no key of ours."""
    answer = requests.post(f"{base_url}/crm/v3/objects/contacts", json={"properties": properties}, timeout=10,
                           headers={"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def salesforce_by_hand(base_url: str, sobject: str, **fields) -> str:
    token = requests.post(f"{base_url}/services/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
        "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET}).json()["access_token"]
    answer = requests.post(f"{base_url}/services/data/v62.0/sobjects/{sobject}", json=fields, timeout=10,
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def salesforce_destination(base_url: str, object_model: str = Destination.ObjectModel.LEAD, **fields) -> Destination:
    destination = Destination(name="Salesforce", kind=Destination.Kind.SALESFORCE, base_url=base_url,
                              auth_method=Destination.Auth.CLIENT_CREDENTIALS, object_model=object_model,
                              upsert_property=KEY, company_upsert_property="Crmsync_Domain__c", batch_wait_seconds=0,
                              **fields)
    destination.set_credentials({"client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                 "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    destination.save()
    fields_default_ensure(destination=destination)
    return destination


def adoptions(lead: Lead) -> list[str]:
    return list(LeadDecision.objects.filter(lead=lead, action=LeadDecision.Action.CRM_MATCHED, matched_by="email")
                .values_list("detail", flat=True))


def deliver_all(leads: list[Lead]) -> list[PushJob]:
    for lead in leads:
        services.push_jobs_enqueue(lead=lead)
    services.push_dispatch_due()
    return list(PushJob.objects.filter(lead__in=leads).order_by("lead_id"))


@pytest.fixture
def server_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def hubspot_url(server_url) -> str:
    return f"{server_url}/sandbox/hubspot"


# --- HubSpot ------------------------------------------------------------------------------------

def test_a_hubspot_contact_typed_in_by_hand_is_found_by_email_and_becomes_the_leads(hubspot_url):
    # given: a RevOps user typed Ada into HubSpot before the form ever sent her
    hubspot_destination(base_url=hubspot_url)
    typed_id = hubspot_by_hand(hubspot_url, email="ada@example.com", firstname="Augusta", jobtitle="Countess")
    lead = make_lead(email="ada@example.com", first_name="Ada", last_name="Lovelace")

    # when
    job = deliver(lead)

    # then: her contact is updated and keyed, not refused or duplicated
    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)
    [contact] = SandboxContact.objects.filter(email="ada@example.com")
    assert str(contact.pk) == typed_id
    assert contact.properties["crmsync_external_id"] == lead.external_id
    assert (contact.properties["firstname"], contact.properties["lastname"]) == ("Ada", "Lovelace")
    assert contact.properties["jobtitle"] == "Countess"  # what we do not send stays
    assert adoptions(lead) == [f"HubSpot: HubSpot contact {typed_id} found by email"]
    assert request_log_count(path_endswith=HUBSPOT_READS) == 1


def test_a_second_push_of_an_adopted_lead_upserts_by_our_key_without_a_lookup(hubspot_url):
    hubspot_destination(base_url=hubspot_url)
    typed_id = hubspot_by_hand(hubspot_url, email="ada@example.com")
    lead = make_lead(email="ada@example.com", first_name="Ada")
    deliver(lead)

    lead.last_name = "King"
    lead.save()
    second = deliver(lead)

    assert (second.status, second.crm_record_id) == (PushJob.Status.SUCCEEDED, typed_id)
    assert request_log_count(path_endswith=HUBSPOT_READS) == 1  # the first push's only
    assert request_log_count(path_endswith="/contacts/batch/upsert") == 1
    assert SandboxContact.objects.get().properties["lastname"] == "King"
    assert len(adoptions(lead)) == 1


def test_a_retry_after_a_failed_create_does_not_ask_again(hubspot_url):
    # given: HubSpot had no contact with the email, then refused our create (a field map mistake)
    destination = hubspot_destination(base_url=hubspot_url)
    DestinationField.objects.filter(destination=destination, target="company").update(target="company_name")
    job = deliver(make_lead(company="Analytical Engines"))
    assert job.status == PushJob.Status.REVIEW and LeadDelivery.objects.get().looked_up_at is not None

    # when: the field map is fixed and the job replayed
    DestinationField.objects.filter(destination=destination, target="company_name").update(target="company")
    services.push_jobs_retry(jobs=PushJob.objects.filter(pk=job.pk))
    services.push_dispatch_due()

    # then
    job.refresh_from_db()
    assert (job.status, job.operation) == (PushJob.Status.SUCCEEDED, "create")
    assert request_log_count(path_endswith=HUBSPOT_READS) == 1


def test_a_retry_after_a_failed_adoption_asks_again_and_adopts(hubspot_url):
    # given: the contact was found, but HubSpot refused our update of it
    destination = hubspot_destination(base_url=hubspot_url)
    typed_id = hubspot_by_hand(hubspot_url, email="ada@example.com")
    DestinationField.objects.filter(destination=destination, target="company").update(target="company_name")
    job = deliver(make_lead(email="ada@example.com", company="Analytical Engines"))
    assert job.status == PushJob.Status.REVIEW and LeadDelivery.objects.filter(looked_up_at__isnull=False).count() == 0

    DestinationField.objects.filter(destination=destination, target="company_name").update(target="company")
    services.push_jobs_retry(jobs=PushJob.objects.filter(pk=job.pk))
    services.push_dispatch_due()

    # then: found again and adopted, not refused for its email by an upsert on our key
    job.refresh_from_db()
    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)
    assert request_log_count(path_endswith=HUBSPOT_READS) == 2
    assert SandboxContact.objects.count() == 1


def test_150_new_leads_are_looked_up_in_two_reads(hubspot_url):
    hubspot_destination(base_url=hubspot_url)
    leads = [make_lead(email=f"person{i}@example.org", first_name=f"P{i}") for i in range(150)]

    jobs = deliver_all(leads)

    assert {(job.status, job.operation) for job in jobs} == {(PushJob.Status.SUCCEEDED, "create")}
    assert request_log_count(path_endswith=HUBSPOT_READS) == 2
    assert request_log_count(path_endswith="/contacts/batch/upsert") == 2
    assert SandboxContact.objects.count() == 150
    assert not LeadDecision.objects.filter(action=LeadDecision.Action.CRM_MATCHED).exists()


def test_a_batch_adopts_the_contacts_hubspot_has_and_creates_the_others(hubspot_url):
    hubspot_destination(base_url=hubspot_url)
    typed_id = hubspot_by_hand(hubspot_url, email="grace@example.com")
    grace, ada = make_lead(email="grace@example.com", first_name="Grace"), make_lead(email="ada@example.com")

    jobs = deliver_all([grace, ada])

    assert [(job.lead_id, job.operation) for job in jobs] == [(grace.pk, "update"), (ada.pk, "create")]
    assert jobs[0].crm_record_id == typed_id
    assert SandboxContact.objects.count() == 2
    assert (len(adoptions(grace)), len(adoptions(ada))) == (1, 0)


def test_a_contact_whose_key_names_another_lead_waits_for_review_untouched(hubspot_url):
    hubspot_destination(base_url=hubspot_url)
    other = requests.post(f"{hubspot_url}/crm/v3/objects/contacts/batch/upsert", timeout=10,
                          headers={"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"},
                          json={"inputs": [{"id": "another-lead", "idProperty": "crmsync_external_id",
                                            "properties": {"email": "ada@example.com", "firstname": "Other"}}]})
    contact_id = other.json()["results"][0]["id"]
    lead = make_lead(email="ada@example.com", first_name="Ada")

    job = deliver(lead)

    assert (job.status, job.last_error_code) == (PushJob.Status.REVIEW, "EMAIL_BELONGS_TO_OTHER_LEAD")
    assert f"HubSpot contact {contact_id} has this email but belongs to another lead" in job.last_error
    assert "another-lead" in job.last_error
    contact = SandboxContact.objects.get()
    assert (contact.properties["crmsync_external_id"], contact.properties["firstname"]) == ("another-lead", "Other")
    assert request_log_count(path_endswith="/contacts/batch/upsert") == 1  # ours only: nothing sent for Ada
    assert adoptions(lead) == []


def test_without_lookup_no_read_is_made_and_hubspot_refuses_the_known_email(hubspot_url):
    hubspot_destination(base_url=hubspot_url, lookup_existing=False)
    hubspot_by_hand(hubspot_url, email="ada@example.com")

    job = deliver(make_lead(email="ada@example.com"))

    assert request_log_count(path_endswith=HUBSPOT_READS) == 0
    assert job.status == PushJob.Status.REVIEW and "Contact already exists" in job.last_error
    assert SandboxContact.objects.count() == 1


def test_an_adopted_contact_is_associated_to_the_leads_company(hubspot_url):
    destination = hubspot_destination(base_url=hubspot_url, object_model=Destination.ObjectModel.CONTACT_COMPANY)
    destination_fields_create(destination=destination)  # the company's unique domain property
    typed_id = hubspot_by_hand(hubspot_url, email="ada@engines.example")

    job = deliver(make_lead(email="ada@engines.example", company="Analytical Engines"))

    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)
    [association] = SandboxAssociation.objects.filter(from_type="contacts", from_id=int(typed_id))
    assert association.to_type == "companies"


def test_a_customer_found_in_hubspot_makes_the_lead_a_customer(hubspot_url):
    hubspot_destination(base_url=hubspot_url)
    typed_id = hubspot_by_hand(hubspot_url, email="ada@example.com", lifecyclestage="customer")
    lead = make_lead(email="ada@example.com")

    deliver(lead)
    services.push_dispatch_due()  # the push the customer decision queued

    lead.refresh_from_db()
    assert lead.lifecycle_stage == Lead.Stage.CUSTOMER
    assert SandboxContact.objects.get(pk=typed_id).properties["lifecyclestage"] == "customer"


def test_the_lookup_reports_the_crms_lifecycle_stage_and_fits_hubspots_models(hubspot_url):
    contacts_client = pytest.importorskip("hubspot.crm.contacts")
    destination = hubspot_destination(base_url=hubspot_url)
    hubspot_by_hand(hubspot_url, email="ada@example.com", lifecyclestage="customer")
    exchanges = []
    session = DestinationSession(destination)
    session.hooks["response"].append(lambda response, *a, **k: exchanges.append(response))
    records = [PushRecord(lead=make_lead(email=email), fields={"email": email}, lookup_email=email)
               for email in ("ada@example.com", "grace@example.com")]

    adopted, created = HubSpotConnector(destination, session).upsert(records)

    assert (adopted.outcome, adopted.crm_lifecycle) == ("update", "customer")
    assert (created.outcome, created.crm_lifecycle, created.adopted) == ("create", "", "")
    models = {HUBSPOT_READS: ("BatchReadInputSimplePublicObjectId", "BatchResponseSimplePublicObjectWithErrors"),
              "/contacts/batch/update": ("BatchInputSimplePublicObjectBatchInput", "BatchResponseSimplePublicObject")}
    checked = set()
    for response in exchanges:
        path = next((p for p in models if response.request.path_url.endswith(p)), None)
        if path:
            request_model, answer_model = models[path]
            sent = validating(contacts_client).deserialize(SimpleNamespace(data=response.request.body), request_model)
            # nothing we sent may be a key the model does not know (it would drop it)
            assert _known(validating(contacts_client).sanitize_for_serialization(sent)) == _known(
                json.loads(response.request.body)), request_model
            validating(contacts_client).deserialize(SimpleNamespace(data=response.content), answer_model)
            checked.add(path)
    assert checked == set(models)


def validating(client_module):
    configuration = client_module.Configuration()
    configuration.client_side_validation = True
    return client_module.ApiClient(configuration=configuration)


def _known(value):
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


# --- Salesforce ---------------------------------------------------------------------------------

def test_a_salesforce_lead_typed_in_by_hand_is_found_by_email_and_becomes_the_leads(server_url):
    salesforce_destination(server_url)
    typed_id = salesforce_by_hand(server_url, "Lead", Email="Ada@Example.com", LastName="Lovelace", Company="Hand Typed Ltd")
    lead = make_lead(email="ada@example.com", first_name="Ada", last_name="Lovelace", company="Analytical Engines")

    job = deliver(lead)

    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)
    [record] = SandboxSalesforceRecord.objects.filter(sobject="Lead")
    assert record.id == typed_id
    assert (record.fields[KEY], record.fields["FirstName"], record.fields["Company"]) == (
        lead.external_id, "Ada", "Analytical Engines")
    assert adoptions(lead) == [f"Salesforce: Salesforce Lead {typed_id} found by email"]


def test_a_second_push_of_an_adopted_salesforce_lead_makes_no_query(server_url):
    salesforce_destination(server_url)
    salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Lovelace", Company="Hand Typed Ltd")
    lead = make_lead(email="ada@example.com", last_name="Lovelace")
    deliver(lead)

    lead.first_name = "Augusta"
    lead.save()
    second = deliver(lead)

    assert (second.status, second.operation) == (PushJob.Status.SUCCEEDED, "update")
    assert request_log_count(crm="salesforce", method="GET", path_endswith=SALESFORCE_QUERIES) == 1
    assert SandboxSalesforceRecord.objects.get().fields["FirstName"] == "Augusta"


def test_of_several_salesforce_leads_with_the_email_the_oldest_is_adopted(server_url):
    salesforce_destination(server_url)
    oldest = salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Lovelace", Company="First")
    salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Lovelace", Company="Second")
    lead = make_lead(email="ada@example.com")

    job = deliver(lead)

    assert (job.operation, job.crm_record_id) == ("update", oldest)
    assert SandboxSalesforceRecord.objects.filter(sobject="Lead").count() == 2
    [detail] = adoptions(lead)
    assert f"Lead {oldest} found by email (the oldest of 2 Lead records" in detail


def test_a_salesforce_contact_typed_in_by_hand_is_adopted_under_the_leads_account(server_url):
    salesforce_destination(server_url, object_model=Destination.ObjectModel.CONTACT_ACCOUNT)
    typed_id = salesforce_by_hand(server_url, "Contact", Email="ada@engines.example", LastName="Lovelace")
    lead = make_lead(email="ada@engines.example", first_name="Ada", company="Analytical Engines")

    job = deliver(lead)

    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)
    [contact] = SandboxSalesforceRecord.objects.filter(sobject="Contact")
    account = SandboxSalesforceRecord.objects.get(sobject="Account")
    assert (contact.id, contact.fields[KEY], contact.fields["AccountId"]) == (typed_id, lead.external_id, account.id)
    assert adoptions(lead) == [f"Salesforce: Salesforce Contact {typed_id} found by email"]


def test_a_salesforce_lead_whose_key_names_another_lead_waits_for_review(server_url):
    salesforce_destination(server_url)
    other = salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Other", Company="C",
                               **{KEY: "another-lead"})

    job = deliver(make_lead(email="ada@example.com"))

    assert (job.status, job.last_error_code) == (PushJob.Status.REVIEW, "EMAIL_BELONGS_TO_OTHER_LEAD")
    assert f"Salesforce Lead {other} has this email but belongs to another lead" in job.last_error
    assert SandboxSalesforceRecord.objects.get().fields["LastName"] == "Other"


def test_a_salesforce_retry_after_a_failed_adoption_asks_again_instead_of_duplicating(server_url):
    destination = salesforce_destination(server_url)
    typed_id = salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Lovelace", Company="C")
    DestinationField.objects.filter(destination=destination, target="Country").update(target="Shoe_Size__c")
    job = deliver(make_lead(email="ada@example.com", country="GB"))
    assert (job.status, job.last_error_code) == (PushJob.Status.REVIEW, "INVALID_FIELD")

    DestinationField.objects.filter(destination=destination, target="Shoe_Size__c").update(target="Country")
    services.push_jobs_retry(jobs=PushJob.objects.filter(pk=job.pk))
    services.push_dispatch_due()

    job.refresh_from_db()
    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)
    assert request_log_count(crm="salesforce", method="GET", path_endswith=SALESFORCE_QUERIES) == 2
    assert SandboxSalesforceRecord.objects.filter(sobject="Lead").count() == 1


def test_a_quote_in_an_email_is_escaped_in_the_query(server_url):
    salesforce_destination(server_url)
    typed_id = salesforce_by_hand(server_url, "Lead", Email="o'hara+news@example.com", LastName="O'Hara", Company="C")

    job = deliver(make_lead(email="o'hara+news@example.com"))

    assert (job.status, job.operation, job.crm_record_id) == (PushJob.Status.SUCCEEDED, "update", typed_id)


def test_without_lookup_salesforce_gets_no_query(server_url):
    salesforce_destination(server_url, lookup_existing=False)
    salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Lovelace", Company="C")

    job = deliver(make_lead(email="ada@example.com"))

    assert (job.status, job.operation) == (PushJob.Status.SUCCEEDED, "create")
    assert request_log_count(crm="salesforce", path_endswith=SALESFORCE_QUERIES) == 0
    assert SandboxSalesforceRecord.objects.filter(sobject="Lead").count() == 2  # the duplicate a lookup prevents


def test_lookup_queries_stay_within_the_url_budget(server_url):
    destination = salesforce_destination(server_url)
    # 200 long addresses: more than one query's worth
    emails = [f"someone.with.a.rather.long.name.{i:03d}@subsidiary.example.com" for i in range(200)]
    typed_id = salesforce_by_hand(server_url, "Lead", Email=emails[-1], LastName="Last", Company="C")
    urls = []
    session = DestinationSession(destination)
    session.hooks["response"].append(lambda response, *a, **k: urls.append(response.request.url))
    records = [PushRecord(lead=make_lead(email=email), fields={"LastName": "L", "Company": "C", "Email": email},
                          lookup_email=email) for email in emails]

    results = SalesforceConnector(destination, session).upsert(records)

    queries = [url for url in urls if "/query?" in url]
    assert len(queries) > 1
    assert all(len(url.split("/services/data/", 1)[1]) <= QUERY_URL_BUDGET for url in queries)
    assert [r.outcome for r in results] == ["create"] * 199 + ["update"]
    assert results[-1].crm_record_id == typed_id


def test_a_lookup_follows_the_query_past_its_first_batch(server_url, monkeypatch):
    # given: more Leads with one email than a query answers at once, and the other email's Lead
    # on the second batch
    monkeypatch.setattr(sandbox_salesforce, "QUERY_BATCH", sandbox_salesforce.QUERY_BATCH_MIN)
    destination = salesforce_destination(server_url)
    imported = timezone.now() - timedelta(days=1)
    SandboxSalesforceRecord.objects.bulk_create(
        SandboxSalesforceRecord(id=sandbox_salesforce.new_id("00Q"), sobject="Lead", created_at=imported,
                                updated_at=imported, fields={"Email": "info@example.com", "LastName": f"Info {i}",
                                                             "Company": "C", "Status": "Open - Not Contacted",
                                                             "OwnerId": SANDBOX_USER_ID})
        for i in range(sandbox_salesforce.QUERY_BATCH_MIN))
    grace_id = salesforce_by_hand(server_url, "Lead", Email="grace@example.com", LastName="Hopper", Company="C")
    records = [PushRecord(lead=make_lead(email=email), fields={"Email": email}, lookup_email=email)
               for email in ("info@example.com", "grace@example.com")]

    info, grace = SalesforceConnector(destination, DestinationSession(destination)).upsert(records)

    assert (grace.outcome, grace.crm_record_id) == ("update", grace_id), grace.error_message
    assert info.outcome == "update" and "oldest of 200" in info.adopted, info.error_message
    assert request_log_count(crm="salesforce", method="GET", path_endswith=SALESFORCE_QUERIES) == 1
    assert request_log_count(crm="salesforce", method="GET") == 2  # the query and its next batch


# --- what the CRM decided for a person it knew first ------------------------------------------

def test_an_adopted_hubspot_contact_keeps_its_owner_and_stage_and_gets_ours_where_it_had_none(hubspot_url):
    from leads.models import Owner, Team

    hubspot_destination(base_url=hubspot_url)
    owner = Owner.objects.create(team=Team.objects.create(name="Sales"), name="Ann", hubspot_owner_id="101")
    owned = hubspot_by_hand(hubspot_url, email="ada@example.com", hubspot_owner_id="999", lifecyclestage="opportunity")
    unowned = hubspot_by_hand(hubspot_url, email="bob@example.com")
    ada = make_lead(email="ada@example.com", owner=owner, lifecycle_stage="mql")
    bob = make_lead(email="bob@example.com", owner=owner, lifecycle_stage="mql")

    deliver_all([ada, bob])

    kept = SandboxContact.objects.get(pk=owned).properties
    assert (kept["hubspot_owner_id"], kept["lifecyclestage"]) == ("999", "opportunity")
    assert kept["crmsync_external_id"] == ada.external_id
    filled = SandboxContact.objects.get(pk=unowned).properties
    assert (filled["hubspot_owner_id"], filled["lifecyclestage"]) == ("101", "marketingqualifiedlead")


def test_an_adopted_salesforce_lead_keeps_its_owner(server_url):
    from leads.models import Owner, Team

    salesforce_destination(server_url)
    owner = Owner.objects.create(team=Team.objects.create(name="Sales"), name="Ann", salesforce_user_id="005000000000001AAA")
    typed = salesforce_by_hand(server_url, "Lead", Email="ada@example.com", LastName="Lovelace", Company="AE",
                               OwnerId="005000000000999AAA")
    created = make_lead(email="new@example.com", last_name="New", owner=owner)
    adopted = make_lead(email="ada@example.com", last_name="Lovelace", owner=owner)

    jobs = deliver_all([adopted, created])

    assert {job.status for job in jobs} == {PushJob.Status.SUCCEEDED}
    assert SandboxSalesforceRecord.objects.get(pk=typed).fields["OwnerId"] == "005000000000999AAA"
    new_id = PushJob.objects.get(lead=created).crm_record_id
    assert SandboxSalesforceRecord.objects.get(pk=new_id).fields["OwnerId"] == "005000000000001AAA"
