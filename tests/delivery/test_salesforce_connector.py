"""The Salesforce connector against the sandbox's Salesforce API over real HTTP (live_server)."""

import re
import socket
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
import pytest

from core import secrets
from delivery.connectors.base import ConnectorError, Outcome, PushRecord
from delivery.connectors.salesforce import SalesforceConnector, jwt_audience
from delivery.models import Destination
from delivery.session import DestinationSession
from leads.models import Lead
from sandbox.faults import faults_set
from sandbox.models import SandboxSalesforceRecord
from sandbox.salesforce.schema import custom_field_create, org_settings

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "Crmsync_External_Id__c"
DOMAIN_KEY = "Crmsync_Domain__c"


def salesforce_destination(base_url: str, *, object_model: str = Destination.ObjectModel.LEAD,
                           credentials: dict | None = None, **fields) -> Destination:
    destination = Destination(
        name="Salesforce", kind=Destination.Kind.SALESFORCE, base_url=base_url,
        auth_method=fields.pop("auth_method", Destination.Auth.CLIENT_CREDENTIALS), object_model=object_model,
        **{"upsert_property": KEY, "company_upsert_property": DOMAIN_KEY, **fields})
    destination.set_credentials(credentials if credentials is not None else {
        "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID, "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    destination.save()
    return destination


@pytest.fixture
def sandbox_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def leads_destination(sandbox_url) -> Destination:
    return salesforce_destination(sandbox_url)


def connector(destination: Destination) -> SalesforceConnector:
    return SalesforceConnector(destination, DestinationSession(destination))


def push(destination: Destination, records: list[PushRecord]):
    return connector(destination).upsert(records)


def lead_record(email: str, **fields) -> PushRecord:
    lead = Lead.objects.create(email=email, first_name="Ada", last_name="Lovelace", company="Analytical Engines")
    return PushRecord(lead=lead, fields={"FirstName": lead.first_name, "LastName": lead.last_name,
                                         "Company": lead.company, "Email": lead.email, **fields})


def contact_record(email: str, company: dict | None, **fields) -> PushRecord:
    lead = Lead.objects.create(email=email, first_name="Ada", last_name="Lovelace")
    return PushRecord(lead=lead, fields={"FirstName": "Ada", "LastName": "Lovelace", "Email": email, **fields},
                      company=company)


def stored(record_id: str) -> dict:
    return SandboxSalesforceRecord.objects.get(pk=record_id).fields


# --- Leads ---------------------------------------------------------------------------------


def test_it_creates_the_lead_then_updates_the_same_one(leads_destination):
    record = lead_record("ada@example.com")

    [first] = push(leads_destination, [record])
    record.fields = {"Company": "Babbage & Co"}  # changed fields only
    [second] = push(leads_destination, [record])

    assert (first.outcome, second.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert first.crm_record_id.startswith("00Q") and second.crm_record_id == first.crm_record_id
    assert (first.http_status, second.http_status) == (200, 200)
    assert first.request == {"attributes": {"type": "Lead"}, "FirstName": "Ada", "LastName": "Lovelace",
                             "Company": "Analytical Engines", "Email": "ada@example.com", KEY: record.external_id}
    assert first.response["success"] is True and first.response["created"] is True
    assert stored(first.crm_record_id)["Company"] == "Babbage & Co"
    assert stored(first.crm_record_id)["LastName"] == "Lovelace"


def test_refused_records_get_the_crms_code_and_message_beside_successes(leads_destination):
    good = lead_record("ada@example.com")
    bad_email = lead_record("grace@example.com", Email="not-an-email")
    bad_status = lead_record("alan@example.com", Status="Hot")
    too_long = lead_record("edsger@example.com", FirstName="E" * 41)
    unknown = lead_record("barbara@example.com", Shoe_Size__c=42)

    results = push(leads_destination, [good, bad_email, bad_status, too_long, unknown])

    assert [r.lead for r in results] == [good.lead, bad_email.lead, bad_status.lead, too_long.lead, unknown.lead]
    assert results[0].outcome == Outcome.CREATED
    refused = [(r.outcome, r.error_code) for r in results[1:]]
    assert refused == [
        (Outcome.PERMANENT, "INVALID_EMAIL_ADDRESS"),
        (Outcome.PERMANENT, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"),
        (Outcome.PERMANENT, "STRING_TOO_LONG"),
        (Outcome.PERMANENT, "INVALID_FIELD"),
    ]
    assert "not-an-email" in results[1].error_message
    assert "Hot" in results[2].error_message
    assert all(r.response["success"] is False and r.request[KEY] == rec.external_id
               for r, rec in zip(results[1:], [bad_email, bad_status, too_long, unknown]))
    assert SandboxSalesforceRecord.objects.filter(sobject="Lead").count() == 1


def test_a_new_lead_without_its_required_fields_is_refused(leads_destination):
    record = lead_record("ada@example.com")
    del record.fields["LastName"], record.fields["Company"]

    [result] = push(leads_destination, [record])

    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "REQUIRED_FIELD_MISSING")
    assert "LastName" in result.error_message and "Company" in result.error_message


def test_a_duplicate_rule_block_is_permanent(leads_destination):
    org = org_settings()
    org.duplicate_rule_enabled = True
    org.save()
    [first] = push(leads_destination, [lead_record("ada@example.com")])
    twin = lead_record("ada.twin@example.com", Email="ada@example.com")

    [result] = push(leads_destination, [twin])

    assert first.outcome == Outcome.CREATED
    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "DUPLICATES_DETECTED")


# --- Contacts with Accounts ------------------------------------------------------------------


def test_contacts_share_one_account_per_domain(sandbox_url):
    destination = salesforce_destination(sandbox_url, object_model=Destination.ObjectModel.CONTACT_ACCOUNT)
    acme = {"Name": "Acme", "Website": "acme.example", DOMAIN_KEY: "acme.example"}
    ada = contact_record("ada@acme.example", acme)
    grace = contact_record("grace@acme.example", {**acme, "Phone": "+441234567890"})
    alan = contact_record("alan@gmail.com", None)

    results = push(destination, [ada, grace, alan])

    assert [r.outcome for r in results] == [Outcome.CREATED] * 3
    assert all(r.crm_record_id.startswith("003") for r in results)
    accounts = SandboxSalesforceRecord.objects.filter(sobject="Account")
    [account] = accounts
    assert account.fields[DOMAIN_KEY] == "acme.example" and account.fields["Phone"] == "+441234567890"
    assert results[0].company_crm_id == results[1].company_crm_id == account.pk
    assert stored(results[0].crm_record_id)["AccountId"] == stored(results[1].crm_record_id)["AccountId"] == account.pk
    assert "AccountId" not in stored(results[2].crm_record_id) and results[2].company_crm_id == ""
    assert results[0].request["Contact"]["AccountId"] == account.pk
    assert results[0].request["Account"][DOMAIN_KEY] == "acme.example"


def test_a_contact_whose_account_fails_gets_the_accounts_outcome(sandbox_url):
    destination = salesforce_destination(sandbox_url, object_model=Destination.ObjectModel.CONTACT_ACCOUNT)
    nameless = contact_record("ada@nameless.example", {DOMAIN_KEY: "nameless.example"})  # Account needs Name
    fine = contact_record("grace@acme.example", {"Name": "Acme", DOMAIN_KEY: "acme.example"})

    nameless_result, fine_result = push(destination, [nameless, fine])

    assert (nameless_result.outcome, nameless_result.error_code) == (Outcome.PERMANENT, "REQUIRED_FIELD_MISSING")
    assert nameless_result.error_message.startswith("Account: ")
    assert "Contact" not in nameless_result.request  # the Contact was not sent
    assert fine_result.outcome == Outcome.CREATED and fine_result.company_crm_id.startswith("001")
    assert SandboxSalesforceRecord.objects.filter(sobject="Contact").count() == 1


def test_the_second_push_updates_contact_and_account(sandbox_url):
    destination = salesforce_destination(sandbox_url, object_model=Destination.ObjectModel.CONTACT_ACCOUNT)
    record = contact_record("ada@acme.example", {"Name": "Acme", DOMAIN_KEY: "acme.example"})

    [first] = push(destination, [record])
    record.company = {"Name": "Acme Ltd", DOMAIN_KEY: "acme.example"}
    [second] = push(destination, [record])

    assert (first.outcome, second.outcome) == (Outcome.CREATED, Outcome.UPDATED)
    assert (second.crm_record_id, second.company_crm_id) == (first.crm_record_id, first.company_crm_id)
    assert stored(first.company_crm_id)["Name"] == "Acme Ltd"


# --- Tokens ----------------------------------------------------------------------------------


def test_a_refused_token_is_replaced_once_and_the_call_retried(leads_destination, sandbox_url):
    # given a token the org no longer accepts, cached for every worker
    Destination.objects.filter(pk=leads_destination.pk).update(
        access_token_encrypted=secrets.encrypt("00D000000000000!revoked"), instance_url=sandbox_url)
    session = DestinationSession(leads_destination)

    # when
    [result] = SalesforceConnector(leads_destination, session).upsert([lead_record("ada@example.com")])

    # then: the PATCH refused, a token grant, the PATCH again
    assert result.outcome == Outcome.CREATED
    assert session.calls == 3
    leads_destination.refresh_from_db()
    assert secrets.decrypt(leads_destination.access_token_encrypted) != "00D000000000000!revoked"


def test_the_token_is_shared_through_the_destination_row(leads_destination):
    push(leads_destination, [lead_record("ada@example.com")])
    session = DestinationSession(leads_destination)

    SalesforceConnector(Destination.objects.get(pk=leads_destination.pk), session).upsert([lead_record("grace@example.com")])

    assert session.calls == 1  # no token request


def test_a_token_refused_twice_is_an_auth_failure(leads_destination):
    org = org_settings()
    org.token_lifetime_seconds = 0  # every token the org issues is already expired
    org.save()
    records = [lead_record("ada@example.com"), lead_record("grace@example.com")]
    session = DestinationSession(leads_destination)

    results = SalesforceConnector(leads_destination, session).upsert(records)

    assert [(r.outcome, r.error_code, r.http_status) for r in results] == [(Outcome.AUTH, "INVALID_SESSION_ID", 401)] * 2
    assert session.calls == 4  # token, PATCH, token, PATCH: one refresh only


def test_a_wrong_client_secret_is_an_auth_failure_with_salesforces_reason(sandbox_url):
    destination = salesforce_destination(sandbox_url, credentials={
        "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID, "client_secret": "wrong"})

    [result] = push(destination, [lead_record("ada@example.com")])

    assert (result.outcome, result.error_code, result.http_status) == (Outcome.AUTH, "invalid_client", 400)
    assert result.error_message == "Token refused: invalid client credentials"
    assert not SandboxSalesforceRecord.objects.exists()


def test_missing_credentials_are_an_auth_failure(sandbox_url, monkeypatch):
    monkeypatch.delenv("CRMSYNC_TEST_SF_CREDENTIALS", raising=False)
    destination = salesforce_destination(sandbox_url, credentials_env="CRMSYNC_TEST_SF_CREDENTIALS")

    [result] = push(destination, [lead_record("ada@example.com")])

    assert (result.outcome, result.error_code) == (Outcome.AUTH, "NO_CREDENTIALS")


def test_the_jwt_bearer_flow_gets_a_token(sandbox_url):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    org = org_settings()
    org.jwt_public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    org.save()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    destination = salesforce_destination(sandbox_url, auth_method=Destination.Auth.JWT_BEARER, credentials={
        "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID, "username": "ops@example.com", "private_key": pem})

    [result] = push(destination, [lead_record("ada@example.com")])

    assert result.outcome == Outcome.CREATED


def test_a_jwt_signed_by_another_key_is_an_auth_failure(sandbox_url):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    org = org_settings()
    org.jwt_public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    org.save()
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    destination = salesforce_destination(sandbox_url, auth_method=Destination.Auth.JWT_BEARER, credentials={
        "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID, "username": "ops@example.com", "private_key": pem})

    [result] = push(destination, [lead_record("ada@example.com")])

    assert (result.outcome, result.error_code) == (Outcome.AUTH, "invalid_grant")


@pytest.mark.parametrize(("base_url", "audience"), [
    ("https://login.salesforce.com", "https://login.salesforce.com"),
    ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
    ("https://test.salesforce.com", "https://test.salesforce.com"),
    ("https://acme--uat.sandbox.my.salesforce.com", "https://test.salesforce.com"),
    ("http://localhost:8000/", "http://localhost:8000"),
])
def test_the_jwt_audience_follows_the_login_server(base_url, audience):
    assert jwt_audience(base_url) == audience


# --- Whole-call failures ---------------------------------------------------------------------


def test_a_server_error_is_transient_for_every_record(leads_destination):
    faults_set(crm="salesforce", error_rate=1.0)
    records = [lead_record("ada@example.com"), lead_record("grace@example.com")]

    results = push(leads_destination, records)

    assert [r.outcome for r in results] == [Outcome.TRANSIENT] * 2
    assert all(r.http_status >= 500 for r in results)
    assert not SandboxSalesforceRecord.objects.exists()


def test_the_daily_limit_is_rate_limited_for_every_record(leads_destination):
    faults_set(crm="salesforce", rate_limit_rate=1.0)

    results = push(leads_destination, [lead_record("ada@example.com"), lead_record("grace@example.com")])

    assert [(r.outcome, r.error_code, r.http_status, r.retry_after) for r in results] == [
        (Outcome.RATE_LIMITED, "REQUEST_LIMIT_EXCEEDED", 403, 60.0)] * 2


def test_a_locked_row_is_transient_for_that_record(leads_destination):
    faults_set(crm="salesforce", lock_rate=1.0)

    [result] = push(leads_destination, [lead_record("ada@example.com")])

    assert (result.outcome, result.error_code) == (Outcome.TRANSIENT, "UNABLE_TO_LOCK_ROW")


def test_a_lost_reply_is_transient_and_the_retry_updates_the_record_written(leads_destination):
    # given an org that applies the write but whose answer never arrives (504 under live_server)
    faults_set(crm="salesforce", lost_reply_rate=1.0)
    record = lead_record("ada@example.com")
    [lost] = push(leads_destination, [record])
    faults_set(crm="salesforce")

    # when the dispatcher sends it again
    [retried] = push(leads_destination, [record])

    # then the upsert by external ID finds the record the lost call wrote: no duplicate
    assert (lost.outcome, retried.outcome) == (Outcome.TRANSIENT, Outcome.UPDATED)
    [written] = SandboxSalesforceRecord.objects.filter(sobject="Lead")
    assert retried.crm_record_id == written.pk


def test_an_unreachable_org_is_transient():
    destination = salesforce_destination(closed_port_url())

    [result] = push(destination, [lead_record("ada@example.com")])

    assert (result.outcome, result.error_code, result.http_status) == (Outcome.TRANSIENT, "NETWORK", None)


def test_a_dropped_connection_is_transient(leads_destination, hang_up_url):
    # given a cached token for an instance that hangs up on every request
    Destination.objects.filter(pk=leads_destination.pk).update(
        access_token_encrypted=secrets.encrypt("00D000000000000!token"), instance_url=hang_up_url)
    leads_destination.refresh_from_db()

    [result] = push(leads_destination, [lead_record("ada@example.com")])

    assert (result.outcome, result.error_code) == (Outcome.TRANSIENT, "NETWORK")
    assert "ConnectionError" in result.error_message


def test_a_whole_request_refusal_is_permanent_for_every_record(sandbox_url):
    destination = salesforce_destination(sandbox_url, upsert_property="No_Such_Field__c")

    results = push(destination, [lead_record("ada@example.com"), lead_record("grace@example.com")])

    assert [r.outcome for r in results] == [Outcome.PERMANENT] * 2
    assert results[0].http_status in (400, 404) and results[0].error_code
    assert "No_Such_Field__c" in results[0].error_message


# --- Connection check and schema --------------------------------------------------------------


def test_connection_reports_the_instance_and_the_api_requests_left(leads_destination, sandbox_url):
    text = connector(leads_destination).test_connection()

    host = sandbox_url.split("://", 1)[1]
    assert re.fullmatch(rf"Connected to {re.escape(host)}: [\d,]+ of [\d,]+ daily API requests left", text)


def test_connection_fails_with_salesforces_reason(sandbox_url):
    destination = salesforce_destination(sandbox_url, credentials={
        "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID, "client_secret": "wrong"})

    with pytest.raises(ConnectorError, match="invalid client credentials"):
        connector(destination).test_connection()


def test_the_schema_of_leads_reports_custom_fields_picklists_and_keys(leads_destination):
    custom_field_create(sobject="Lead", name="Tier__c", label="Tier", type="picklist",
                        picklist_values=["Gold", "Silver"], restricted_picklist=True)

    schema = connector(leads_destination).schema()

    fields = schema.primary
    assert fields[KEY].unique and not fields["Email"].unique
    assert fields["LastName"].required and fields["Company"].required
    assert not fields["Status"].required  # it has a default
    assert not fields["Id"].required  # not createable
    assert (fields["Tier__c"].options, fields["Tier__c"].restricted) == (("Gold", "Silver"), True)
    assert fields["Status"].restricted and "Open - Not Contacted" in fields["Status"].options
    assert fields["LeadSource"].options and not fields["LeadSource"].restricted
    assert schema.company == {}


def test_the_schema_of_contacts_includes_the_account(sandbox_url):
    destination = salesforce_destination(sandbox_url, object_model=Destination.ObjectModel.CONTACT_ACCOUNT)

    schema = connector(destination).schema()

    assert schema.primary[KEY].unique and schema.primary["LastName"].required
    assert schema.company[DOMAIN_KEY].unique and schema.company["Name"].required


def test_fields_are_created_in_setup_not_through_the_api(leads_destination):
    with pytest.raises(NotImplementedError, match="Setup"):
        connector(leads_destination).create_fields([])


# --- helpers ---------------------------------------------------------------------------------


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more: refused


@pytest.fixture
def hang_up_url():
    """A server that reads each request and closes the connection without an answer."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:  # closed at teardown
                return
            with connection:
                connection.recv(65536)

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        listener.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    listener.close()
