"""What the CRM receives for owner, lifecycle stage, company and consent, asked of the sandbox
HubSpot over HTTP after real pushes."""

import pytest

from audit.models import SyncLog
from delivery import services
from delivery.models import Destination, PushJob
from delivery.preflight import destination_fields_create
from leads.models import Lead, Owner, ScoringRule, StageThreshold, Team
from sandbox.models import SandboxAssociation, SandboxCompany, SandboxContact
from tests.factories import hubspot_destination
from tests.leads.helpers import submit

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hubspot(live_server) -> Destination:
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot",
                                      object_model=Destination.ObjectModel.CONTACT_COMPANY)
    destination_fields_create(destination=destination)  # the company's unique domain property
    return destination


def pushed(lead: Lead) -> dict:
    """The contact's properties as the sandbox CRM stores them, after pushing everything due."""
    services.push_dispatch_due()
    job = PushJob.objects.filter(lead=lead).latest("id")
    assert job.status == PushJob.Status.SUCCEEDED, job.last_error
    return SandboxContact.objects.get(pk=job.crm_record_id).properties


def test_consent_absent_from_the_payload_is_absent_from_what_the_crm_receives(web, hubspot):
    lead = submit(web, email="ada@example.com", first_name="Ada")

    properties = pushed(lead)

    consent = {"crmsync_marketing_opt_in", "crmsync_consent_at", "crmsync_consent_text", "crmsync_consent_source"}
    assert not consent & set(properties)
    sent = SyncLog.objects.get(lead_external_id=lead.external_id).request["properties"]
    assert not consent & set(sent)


def test_an_explicit_no_reaches_the_crm_as_false_with_when_what_and_where(web, hubspot):
    lead = submit(web, email="ada@example.com", marketing_opt_in="no", consent_text="newsletter-v3",
                  consent_at="2026-11-01T10:00:00+01:00")

    properties = pushed(lead)

    assert properties["crmsync_marketing_opt_in"] == "false"
    assert properties["crmsync_consent_text"] == "newsletter-v3"
    assert properties["crmsync_consent_source"] == "website"
    assert properties["crmsync_consent_at"] == "2026-11-01T09:00:00.000Z"


def test_the_assigned_owner_and_the_lifecycle_stage_reach_the_crm(web, hubspot):
    team = Team.objects.create(name="Sales", is_default=True)
    Owner.objects.create(team=team, name="Ann", hubspot_owner_id="101")
    ScoringRule.objects.create(field="company", operator="present", points=20)
    StageThreshold.objects.create(stage="mql", min_score=20)

    lead = submit(web, email="ada@acme.com", company="ACME")
    properties = pushed(lead)

    assert properties["hubspot_owner_id"] == "101"
    assert properties["lifecyclestage"] == "marketingqualifiedlead"


def test_two_people_of_one_company_are_associated_with_one_crm_company(web, hubspot):
    ada = submit(web, email="ada@acme.com", company="ACME")
    bob = submit(web, email="bob@acme.com")
    free = submit(web, email="carol@gmail.com", company="Carol's Cakes")
    for lead in (ada, bob, free):
        pushed(lead)

    [company] = SandboxCompany.objects.all()
    assert (company.properties["domain"], company.properties["name"]) == ("acme.com", "ACME")
    contacts = {a.from_id for a in SandboxAssociation.objects.filter(to_id=company.pk)}
    assert contacts == {int(PushJob.objects.get(lead=lead).crm_record_id) for lead in (ada, bob)}


@pytest.fixture
def salesforce(live_server) -> Destination:
    from django.conf import settings

    from delivery.fieldmap import fields_default_ensure

    destination = Destination(name="Salesforce", kind=Destination.Kind.SALESFORCE, base_url=live_server.url,
                              auth_method=Destination.Auth.CLIENT_CREDENTIALS, object_model=Destination.ObjectModel.LEAD,
                              upsert_property="Crmsync_External_Id__c", batch_wait_seconds=0)
    destination.set_credentials({"client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                 "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    destination.save()
    fields_default_ensure(destination=destination)
    return destination


def salesforce_lead(lead: Lead) -> tuple[dict, dict]:
    """(the Lead as the sandbox Salesforce stores it, what was sent for it)."""
    from sandbox.models import SandboxSalesforceRecord

    services.push_dispatch_due()
    job = PushJob.objects.filter(lead=lead).latest("id")
    assert job.status == PushJob.Status.SUCCEEDED, job.last_error
    sent = SyncLog.objects.filter(lead_external_id=lead.external_id).latest("id").request
    return SandboxSalesforceRecord.objects.get(pk=job.crm_record_id).fields, sent


def test_salesforce_receives_the_owner_and_explicit_consent_but_nothing_for_an_unasked_person(web, salesforce):
    team = Team.objects.create(name="Sales", is_default=True)
    Owner.objects.create(team=team, name="Ann", salesforce_user_id="005000000000001AAA")

    asked = submit(web, email="ada@example.com", last_name="Lovelace", company="Analytical Engines",
                   marketing_opt_in="yes", consent_text="newsletter-v3")
    unasked = submit(web, email="bob@example.org", last_name="Babbage")

    stored, sent = salesforce_lead(asked)
    assert stored["OwnerId"] == "005000000000001AAA"
    assert (stored["Crmsync_Marketing_Opt_In__c"], stored["Crmsync_Consent_Text__c"]) == ("Yes", "newsletter-v3")
    assert stored["Crmsync_Consent_Source__c"] == "website"
    stored, sent = salesforce_lead(unasked)
    consent = {"Crmsync_Marketing_Opt_In__c", "Crmsync_Consent_At__c", "Crmsync_Consent_Text__c", "Crmsync_Consent_Source__c"}
    assert not consent & set(sent) and not any(stored.get(name) for name in consent)
    assert stored["Company"] == "example.org"  # no company given: the company's domain, not "[not provided]"


def test_two_leads_of_one_company_in_one_batch_write_the_company_fields_either_carries(hubspot):
    from delivery.models import DestinationField

    DestinationField.objects.filter(destination=hubspot, object="company", target="name").update(source="company")
    with_name = Lead.objects.create(email="ada@acme.com", company="ACME")
    without = Lead.objects.create(email="bob@acme.com")
    for lead in (with_name, without):
        services.push_jobs_enqueue(lead=lead)

    assert services.push_dispatch_due() == 2
    [company] = SandboxCompany.objects.all()
    assert company.properties["name"] == "ACME"
