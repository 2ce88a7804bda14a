"""The sandbox org as a Salesforce REST client sees it: tokens, upserts by external ID, describe,
SOQL, limits and Salesforce's error bodies."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
import json
import threading
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from django.test import Client
import jwt
import pytest
import requests

from sandbox.models import SandboxAccessToken, SandboxSalesforceRecord, SandboxSettings
from sandbox.salesforce.schema import custom_field_create, org_settings

pytestmark = [pytest.mark.django_db, pytest.mark.urls("sandbox.tests_urls")]

TOKEN_URL = "/services/oauth2/token"
DATA = "/services/data/v60.0"
LEADS = f"{DATA}/composite/sobjects/Lead/Crmsync_External_Id__c"
EXT = "Crmsync_External_Id__c"


def client_credentials(client: Client, secret: str | None = None) -> HttpResponse:
    return client.post(TOKEN_URL, {"grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                   "client_secret": secret or settings.SANDBOX_SALESFORCE_CLIENT_SECRET})


class SalesforceClient:
    """An integration user's session, as simple-salesforce would hold it."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params) -> HttpResponse:
        return self.client.get(path, params, headers=self.headers)

    def patch(self, path: str, body, **headers) -> HttpResponse:
        return self.client.patch(path, json.dumps(body), content_type="application/json",
                                 headers={**self.headers, **headers})

    def upsert(self, *records: dict, all_or_none: bool = False, **headers) -> HttpResponse:
        return self.patch(LEADS, {"allOrNone": all_or_none, "records": [lead(**r) for r in records]}, **headers)

    def query(self, soql: str) -> HttpResponse:
        return self.get(f"{DATA}/query", q=soql)


def lead(**fields) -> dict:
    return {"attributes": {"type": "Lead"}, **fields}


def ada(key: str = "lead-1", **fields) -> dict:
    return {EXT: key, "LastName": "Lovelace", "Company": "Analytical Engines", **fields}


@pytest.fixture
def salesforce(client) -> SalesforceClient:
    return SalesforceClient(client, client_credentials(client).json()["access_token"])


# --- tokens -----------------------------------------------------------------------------------

def test_client_credentials_grant_a_token_that_opens_the_api(client):
    answer = client_credentials(client)

    assert answer.status_code == 200
    body = answer.json()
    assert body["instance_url"] == "http://testserver" and body["token_type"] == "Bearer"
    assert body["id"].startswith("http://testserver/id/00D") and body["issued_at"].isdecimal() and body["signature"]
    assert "Sforce-Limit-Info" not in answer
    assert SalesforceClient(client, body["access_token"]).get(f"{DATA}/limits").status_code == 200


def test_a_wrong_secret_or_grant_type_is_refused_like_salesforce(client):
    wrong = client_credentials(client, secret="not-the-secret")
    unsupported = client.post(TOKEN_URL, {"grant_type": "password"})

    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_client")
    assert wrong.json()["error_description"]
    assert (unsupported.status_code, unsupported.json()["error"]) == (400, "unsupported_grant_type")
    assert not SandboxAccessToken.objects.exists()


@pytest.fixture
def rsa_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    org = org_settings()
    org.jwt_public_key = public_pem
    org.save()
    return private


def assertion(private, **claims) -> str:
    body = {"iss": settings.SANDBOX_SALESFORCE_CLIENT_ID, "sub": "integration@example.com",
            "aud": "https://login.salesforce.com", "exp": int(time.time()) + 180, **claims}
    return jwt.encode(body, private, algorithm="RS256")


def jwt_grant(client: Client, token: str) -> HttpResponse:
    return client.post(TOKEN_URL, {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": token})


def test_a_jwt_bearer_assertion_signed_by_the_connected_apps_key_gets_a_token(client, rsa_key):
    answer = jwt_grant(client, assertion(rsa_key))

    assert answer.status_code == 200, answer.content
    assert answer.json()["instance_url"] == "http://testserver"
    assert SalesforceClient(client, answer.json()["access_token"]).get(f"{DATA}/limits").status_code == 200


def test_a_forged_expired_or_foreign_jwt_is_refused(client, rsa_key):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    forged = jwt_grant(client, assertion(stranger))
    expired = jwt_grant(client, assertion(rsa_key, exp=int(time.time()) - 60))
    other_app = jwt_grant(client, assertion(rsa_key, iss="another-app"))
    other_audience = jwt_grant(client, assertion(rsa_key, aud="https://evil.example.com"))

    assert [a.json()["error"] for a in (forged, expired, other_app, other_audience)] == [
        "invalid_grant", "invalid_grant", "invalid_client", "invalid_grant"]
    assert {a.status_code for a in (forged, expired, other_app, other_audience)} == {400}


def test_an_expired_or_unknown_session_gets_invalid_session_id(client, salesforce):
    SandboxAccessToken.objects.update(expires_at=SandboxAccessToken.objects.get().issued_at - timedelta(seconds=1))

    for answer in (salesforce.get(f"{DATA}/limits"), SalesforceClient(client, "made-up").upsert(ada())):
        assert answer.status_code == 401
        assert answer.json() == [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
        assert answer["Sforce-Limit-Info"].startswith("api-usage=")
    assert not SandboxSalesforceRecord.objects.exists()


def test_tokens_expire_after_the_orgs_session_lifetime(client):
    SandboxSettings.objects.filter(crm="salesforce").delete()
    org_settings()
    client_credentials(client)

    token = SandboxAccessToken.objects.get()
    assert token.expires_at - token.issued_at == pytest.approx(timedelta(hours=2), abs=timedelta(seconds=5))


# --- collections upsert -----------------------------------------------------------------------

def test_a_collection_upsert_creates_then_updates_by_external_id(salesforce):
    created = salesforce.upsert(ada(Email="ada@example.com"), ada("lead-2", LastName="Hopper"))
    updated = salesforce.upsert(ada(FirstName="Ada"))

    assert created.status_code == 200
    first, second = created.json()
    assert first["success"] and first["created"] and first["errors"] == []
    assert second["created"] is True and second["id"] != first["id"]
    assert updated.json() == [{"id": first["id"], "success": True, "errors": [], "created": False}]
    record = SandboxSalesforceRecord.objects.get(pk=first["id"])
    assert record.fields | {} == {EXT: "lead-1", "LastName": "Lovelace", "Company": "Analytical Engines",
                                  "Email": "ada@example.com", "FirstName": "Ada", "Status": "Open - Not Contacted",
                                  "OwnerId": record.fields["OwnerId"], "IsConverted": False}
    assert len(record.id) == 18 and record.id.startswith("00Q")


def test_an_external_id_matches_whatever_its_case(salesforce):
    salesforce.upsert(ada("LEAD-1"))

    answer = salesforce.upsert(ada("lead-1", Phone="+44 20 7946 0000"))

    assert answer.json()[0]["created"] is False
    assert SandboxSalesforceRecord.objects.count() == 1


def test_each_invalid_record_fails_alone_with_salesforces_code(salesforce):
    custom_field_create(sobject="Lead", name="Tier__c", label="Tier", type="picklist",
                        picklist_values=["Gold", "Silver"], restricted_picklist=True)
    answer = salesforce.upsert(
        ada("ok"),
        ada("unknown-field", Shoe_Size__c=42),
        {EXT: "missing-required", "LastName": "Hopper"},
        ada("bad-status", Status="Maybe"),
        ada("bad-tier", Tier__c="Bronze"),
        ada("too-long", FirstName="x" * 41),
        ada("bad-email", Email="not an email"),
    )

    assert answer.status_code == 200
    results = answer.json()
    assert results[0]["success"] is True
    errors = [r["errors"][0] for r in results[1:]]
    assert [e["statusCode"] for e in errors] == [
        "INVALID_FIELD", "REQUIRED_FIELD_MISSING", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "STRING_TOO_LONG", "INVALID_EMAIL_ADDRESS"]
    assert errors[0]["message"] == "No such column 'Shoe_Size__c' on sobject of type Lead"
    assert errors[1]["fields"] == ["Company"]
    assert errors[4]["fields"] == ["FirstName"]
    assert all(r["success"] is False and "id" not in r for r in results[1:])
    assert [r.fields[EXT] for r in SandboxSalesforceRecord.objects.all()] == ["ok"]


def test_the_duplicate_rule_blocks_a_lead_with_a_known_email_unless_allowed(salesforce):
    org = org_settings()
    org.duplicate_rule_enabled = True
    org.save()
    salesforce.upsert(ada("lead-1", Email="ada@example.com"))

    blocked = salesforce.upsert(ada("lead-2", Email="ADA@example.com"))
    allowed = salesforce.upsert(ada("lead-2", Email="ada@example.com"), **{"Sforce-Duplicate-Rule-Header": "allowSave=true"})

    assert blocked.json()[0]["errors"][0]["statusCode"] == "DUPLICATES_DETECTED"
    assert allowed.json()[0]["success"] is True
    assert SandboxSalesforceRecord.objects.count() == 2


def test_more_than_200_records_are_refused_as_a_whole(salesforce):
    answer = salesforce.upsert(*[ada(f"lead-{i}") for i in range(201)])

    assert answer.status_code == 400
    assert answer.json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert not SandboxSalesforceRecord.objects.exists()


def test_200_records_are_accepted(salesforce):
    answer = salesforce.upsert(*[ada(f"lead-{i}") for i in range(200)])

    assert answer.status_code == 200 and len(answer.json()) == 200
    assert SandboxSalesforceRecord.objects.count() == 200


def test_all_or_none_rolls_every_record_back_on_one_failure(salesforce):
    answer = salesforce.upsert(ada("lead-1"), ada("lead-2", Email="bad"), all_or_none=True)

    good, bad = answer.json()
    assert good == {"success": False, "errors": [{"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                                                  "message": good["errors"][0]["message"], "fields": []}]}
    assert bad["errors"][0]["statusCode"] == "INVALID_EMAIL_ADDRESS"
    assert not SandboxSalesforceRecord.objects.exists()


def test_the_same_external_id_twice_in_one_collection_fails_both(salesforce):
    answer = salesforce.upsert(ada("lead-1"), ada("LEAD-1"))

    assert [r["errors"][0]["statusCode"] for r in answer.json()] == ["DUPLICATE_VALUE", "DUPLICATE_VALUE"]


def test_a_record_is_created_without_any_key_as_a_person_would(salesforce):
    created = salesforce.client.post(f"{DATA}/sobjects/Lead", json.dumps({"LastName": "Lovelace", "Company": "C"}),
                                     content_type="application/json", headers=salesforce.headers)
    refused = salesforce.client.post(f"{DATA}/sobjects/Lead", json.dumps({"LastName": "Hopper"}),
                                     content_type="application/json", headers=salesforce.headers)

    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "success": True, "errors": []}
    record = SandboxSalesforceRecord.objects.get()
    assert record.id == created.json()["id"] and EXT not in record.fields
    assert (refused.status_code, refused.json()[0]["errorCode"]) == (400, "REQUIRED_FIELD_MISSING")


def test_a_collection_update_writes_by_id_and_fails_unknown_ids_alone(salesforce):
    [created] = salesforce.upsert(ada("lead-1", Email="ada@example.com")).json()

    answer = salesforce.patch(f"{DATA}/composite/sobjects", {"allOrNone": False, "records": [
        lead(Id=created["id"], FirstName="Ada", **{EXT: "lead-9"}),
        lead(Id="00Q5g000000000000AAA", FirstName="Nobody"),
        lead(FirstName="No Id"),
    ]})

    assert answer.status_code == 200
    updated, unknown, no_id = answer.json()
    assert updated == {"id": created["id"], "success": True, "errors": []}  # an update has no `created`
    assert unknown["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    assert no_id["errors"][0]["statusCode"] == "MISSING_ARGUMENT"
    record = SandboxSalesforceRecord.objects.get()
    assert (record.fields["FirstName"], record.fields[EXT], record.fields["Email"]) == ("Ada", "lead-9", "ada@example.com")


def test_a_collection_update_needs_each_records_type(salesforce):
    [created] = salesforce.upsert(ada()).json()

    answer = salesforce.patch(f"{DATA}/composite/sobjects", {"records": [{"Id": created["id"], "FirstName": "Ada"}]})

    assert (answer.status_code, answer.json()[0]["errorCode"]) == (400, "INVALID_TYPE")
    assert "FirstName" not in SandboxSalesforceRecord.objects.get().fields


def test_the_fields_crmsyncs_field_map_writes_take_its_values(salesforce):
    described = {f["name"]: f for f in salesforce.get(f"{DATA}/sobjects/Contact/describe").json()["fields"]}
    values = {"OwnerId": "005000000000001AAA", "Crmsync_Marketing_Opt_In__c": "Yes",
              "Crmsync_Consent_At__c": "2024-05-01T12:00:00.000Z", "Crmsync_Consent_Text__c": "Yes, email me.",
              "Crmsync_Consent_Source__c": "website"}

    answer = salesforce.upsert(ada(**values))
    refused = salesforce.upsert(ada("lead-2", Crmsync_Marketing_Opt_In__c=True))

    assert [described[name]["type"] for name in values] == ["reference", "picklist", "datetime", "textarea", "string"]
    assert described["Crmsync_Marketing_Opt_In__c"]["restrictedPicklist"] is True
    assert answer.json()[0]["success"] is True
    assert {k: SandboxSalesforceRecord.objects.get().fields[k] for k in values} == values
    assert refused.json()[0]["errors"][0]["statusCode"] == "INVALID_TYPE_ON_FIELD_IN_RECORD"


def test_an_unknown_external_id_field_or_object_is_not_found(salesforce):
    by_name = salesforce.patch(f"{DATA}/composite/sobjects/Lead/LastName", {"records": []})
    unknown = salesforce.patch(f"{DATA}/composite/sobjects/Opportunity/{EXT}", {"records": []})

    assert (by_name.status_code, by_name.json()[0]["errorCode"]) == (404, "NOT_FOUND")
    assert (unknown.status_code, unknown.json()[0]["errorCode"]) == (404, "NOT_FOUND")


def test_api_versions_before_46_do_not_exist(salesforce):
    answer = salesforce.get("/services/data/v45.0/limits")

    assert answer.status_code == 404
    assert answer.json() == [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]


# --- single upsert ----------------------------------------------------------------------------

def test_a_single_upsert_answers_201_then_200(salesforce):
    path = f"{DATA}/sobjects/Lead/{EXT}/lead-1"

    created = salesforce.patch(path, {"LastName": "Lovelace", "Company": "Analytical Engines"})
    updated = salesforce.patch(path, {"FirstName": "Ada"})

    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "success": True, "errors": [], "created": True}
    assert (updated.status_code, updated.json()["created"], updated.json()["id"]) == (200, False, created.json()["id"])
    assert SandboxSalesforceRecord.objects.get().fields["FirstName"] == "Ada"


def test_a_refused_single_upsert_answers_400_with_the_error_list(salesforce):
    answer = salesforce.patch(f"{DATA}/sobjects/Lead/{EXT}/lead-1", {"LastName": "Lovelace"})

    assert answer.status_code == 400
    assert answer.json() == [{"message": "Required fields are missing: [Company]", "errorCode": "REQUIRED_FIELD_MISSING",
                              "fields": ["Company"]}]


def test_a_key_matching_several_records_answers_300_and_writes_nothing(salesforce):
    custom_field_create(sobject="Lead", name="Legacy_Id__c", label="Legacy ID", external_id=True, unique=False)
    salesforce.upsert(ada("lead-1", Legacy_Id__c="L-9"), ada("lead-2", Legacy_Id__c="L-9"))

    answer = salesforce.patch(f"{DATA}/sobjects/Lead/Legacy_Id__c/L-9", {"FirstName": "Ada"})

    assert answer.status_code == 300
    assert len(answer.json()) == 2 and all(url.startswith(f"{DATA}/sobjects/Lead/00Q") for url in answer.json())
    assert not SandboxSalesforceRecord.objects.filter(fields__FirstName="Ada").exists()


# --- describe ---------------------------------------------------------------------------------

def test_describe_lists_standard_and_custom_fields_with_picklists(salesforce):
    custom_field_create(sobject="Lead", name="Tier__c", label="Tier", type="picklist",
                        picklist_values=["Gold", "Silver"], restricted_picklist=True)

    answer = salesforce.get(f"{DATA}/sobjects/Lead/describe")

    assert answer.status_code == 200
    body = answer.json()
    assert (body["name"], body["label"]) == ("Lead", "Lead")
    fields = {f["name"]: f for f in body["fields"]}
    assert {"Id", "FirstName", "LastName", "Company", "Email", "Phone", "Country", "Status", "LeadSource", "OwnerId",
            "Description", EXT, "Tier__c"} <= fields.keys()
    status = fields["Status"]
    assert status["restrictedPicklist"] is True and status["custom"] is False
    assert [(v["value"], v["active"], v["defaultValue"]) for v in status["picklistValues"]][0] == (
        "Open - Not Contacted", True, True)
    assert fields["LeadSource"]["restrictedPicklist"] is False
    assert (fields["LastName"]["nillable"], fields["Email"]["type"]) == (False, "email")
    key = fields[EXT]
    assert (key["custom"], key["externalId"], key["unique"], key["length"], key["type"]) == (True, True, True, 64, "string")
    tier = fields["Tier__c"]
    assert [v["value"] for v in tier["picklistValues"]] == ["Gold", "Silver"] and tier["restrictedPicklist"] is True
    for field in body["fields"]:
        assert {"name", "label", "type", "custom", "createable", "updateable", "nillable", "length", "externalId",
                "unique", "picklistValues", "restrictedPicklist"} <= field.keys()


def test_contact_and_account_have_their_seeded_keys(salesforce):
    contact = {f["name"]: f for f in salesforce.get(f"{DATA}/sobjects/Contact/describe").json()["fields"]}
    account = {f["name"]: f for f in salesforce.get(f"{DATA}/sobjects/Account/describe").json()["fields"]}

    assert contact[EXT]["externalId"] and {"AccountId", "MailingCountry", "LeadSource"} <= contact.keys()
    assert account["Crmsync_Domain__c"]["externalId"] and account["Name"]["nillable"] is False


def test_accounts_and_contacts_get_their_key_prefixes(salesforce):
    account = salesforce.patch(f"{DATA}/sobjects/Account/Crmsync_Domain__c/example.com", {"Name": "Example"}).json()
    contact = salesforce.patch(f"{DATA}/sobjects/Contact/{EXT}/c-1", {"LastName": "Lovelace",
                                                                      "AccountId": account["id"]}).json()

    assert account["id"].startswith("001") and contact["id"].startswith("003")


# --- query ------------------------------------------------------------------------------------

def test_soql_selects_filters_and_limits(salesforce):
    salesforce.upsert(ada("lead-1", Email="ada@example.com"), ada("lead-2", LastName="Hopper"), ada("lead-3"))

    by_key = salesforce.query(f"SELECT Id, LastName, Email FROM Lead WHERE {EXT} = 'LEAD-1'")
    by_list = salesforce.query(f"select lastname from lead where {EXT} in ('lead-2', 'lead-3') and LastName != 'Hopper'")
    limited = salesforce.query("SELECT Id FROM Lead LIMIT 2")

    body = by_key.json()
    assert (by_key.status_code, body["totalSize"], body["done"]) == (200, 1, True)
    [record] = body["records"]
    assert record["attributes"] == {"type": "Lead", "url": f"{DATA}/sobjects/Lead/{record['Id']}"}
    assert (record["LastName"], record["Email"]) == ("Lovelace", "ada@example.com")
    assert [r["LastName"] for r in by_list.json()["records"]] == ["Lovelace"]
    assert limited.json()["totalSize"] == 2


def test_a_large_answer_comes_in_batches_behind_a_query_locator(salesforce):
    salesforce.upsert(*[ada(f"lead-{i}") for i in range(200)])
    salesforce.upsert(ada("lead-200"))
    soql = f"SELECT {EXT} FROM Lead"

    first = salesforce.client.get(f"{DATA}/query", {"q": soql}, headers={**salesforce.headers,
                                                                         "Sforce-Query-Options": "batchSize=200"}).json()
    rest = salesforce.get(first["nextRecordsUrl"]).json()
    whole = salesforce.query(soql).json()

    assert (first["totalSize"], first["done"], len(first["records"])) == (201, False, 200)
    assert (rest["totalSize"], rest["done"], "nextRecordsUrl" in rest) == (201, True, False)
    assert [r[EXT] for r in first["records"] + rest["records"]] == [f"lead-{i}" for i in range(201)]
    assert (whole["done"], len(whole["records"])) == (True, 201)  # 2,000 a batch unless asked for fewer
    stale = salesforce.get(f"{DATA}/query/01gunknown-200")
    assert (stale.status_code, stale.json()[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")


def test_a_query_can_leave_converted_leads_out(salesforce):
    salesforce.upsert(ada(Email="ada@example.com"))

    answer = salesforce.query("SELECT Id, IsConverted FROM Lead WHERE Email IN ('ada@example.com') "
                              "AND IsConverted = false")

    assert [r["IsConverted"] for r in answer.json()["records"]] == [False]


def test_a_malformed_query_or_unknown_column_is_refused(salesforce):
    malformed = salesforce.query("SELECT FROM Lead WHERE")
    unknown = salesforce.query("SELECT Shoe__c FROM Lead")

    assert (malformed.status_code, malformed.json()[0]["errorCode"]) == (400, "MALFORMED_QUERY")
    assert (unknown.status_code, unknown.json()[0]["errorCode"]) == (400, "INVALID_FIELD")


# --- limits -----------------------------------------------------------------------------------

def test_every_answer_carries_the_api_usage_header(salesforce):
    answers = [salesforce.get(f"{DATA}/limits"), salesforce.query("bad"), salesforce.get(f"{DATA}/limits")]

    assert [a["Sforce-Limit-Info"] for a in answers] == ["api-usage=1/15000", "api-usage=2/15000", "api-usage=3/15000"]
    assert answers[2].json()["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 3}


def test_calls_over_the_daily_allocation_get_request_limit_exceeded(salesforce):
    org = org_settings()
    org.daily_limit = 2
    org.save()

    answers = [salesforce.upsert(ada(f"lead-{i}")) for i in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 403]
    assert answers[2].json() == [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    assert answers[2]["Sforce-Limit-Info"] == "api-usage=3/2"
    assert SandboxSalesforceRecord.objects.count() == 2


# --- concurrency ------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_same_new_external_id_upserted_at_once_makes_one_record():
    # given several web threads receiving the same collection upsert at the same moment
    token = client_credentials(Client()).json()["access_token"]
    start = threading.Barrier(6)

    def call(_: int) -> dict:
        try:
            session = SalesforceClient(Client(), token)
            start.wait(timeout=10)
            return session.upsert(ada("lead-1", Email="ada@example.com")).json()[0]
        finally:
            connections.close_all()  # each thread has its own connection

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(call, range(6)))

    # then exactly one created it, the others updated that one
    assert SandboxSalesforceRecord.objects.count() == 1
    assert all(r["success"] for r in results), results
    assert sorted(r["created"] for r in results) == [False] * 5 + [True]
    assert {r["id"] for r in results} == {SandboxSalesforceRecord.objects.get().id}


# --- simple-salesforce over real HTTP ---------------------------------------------------------

class PlainHttpSession(requests.Session):
    """simple-salesforce always builds https:// URLs from the instance host; the test server
    speaks plain HTTP (the product's connector does the same rewrite)."""

    def request(self, method, url, *args, **kwargs):
        return super().request(method, url.replace("https://", "http://", 1), *args, **kwargs)


@pytest.mark.e2e
def test_simple_salesforce_upserts_queries_and_describes_against_the_sandbox(stack):
    simple_salesforce = pytest.importorskip("simple_salesforce")
    stack.start_web()
    grant = requests.post(f"{stack.base_url}/services/oauth2/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
        "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET}).json()
    assert grant["instance_url"] == stack.base_url
    sf = simple_salesforce.Salesforce(instance_url=grant["instance_url"], session_id=grant["access_token"],
                                      session=PlainHttpSession(), version="60.0")

    created = sf.Lead.upsert(f"{EXT}/lead-1", {"LastName": "Lovelace", "Company": "Analytical Engines"})
    updated = sf.Lead.upsert(f"{EXT}/lead-1", {"FirstName": "Ada"})
    collection = sf.restful(f"composite/sobjects/Lead/{EXT}", method="PATCH", data=json.dumps(
        {"allOrNone": False, "records": [lead(**ada("lead-2")), lead(**ada("lead-3", Email="bad"))]}))
    found = sf.query(f"SELECT Id, FirstName FROM Lead WHERE {EXT} = 'lead-1'")
    usage = sf.api_usage["api-usage"]  # parsed from Sforce-Limit-Info
    described = sf.Lead.describe()

    assert (created, updated) == (201, 200)
    assert [r["success"] for r in collection] == [True, False]
    assert found["totalSize"] == 1 and found["records"][0]["FirstName"] == "Ada"
    assert EXT in {f["name"] for f in described["fields"]}
    assert (usage.used, usage.total) == (4, 15000)
    with pytest.raises(simple_salesforce.exceptions.SalesforceMalformedRequest) as refused:
        sf.Lead.upsert(f"{EXT}/lead-4", {"LastName": "Hopper"})
    assert refused.value.content[0]["errorCode"] == "REQUIRED_FIELD_MISSING"
