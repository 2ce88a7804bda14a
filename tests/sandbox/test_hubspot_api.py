"""The sandbox CRM as a HubSpot client sees it: HubSpot's paths, bodies, errors and limits."""

from concurrent.futures import ThreadPoolExecutor
import threading
from types import SimpleNamespace
import uuid

from django.conf import settings
from django.db import connection, connections
from django.http import HttpResponse
from django.test import Client
import pytest

from sandbox.hubspot import views
from sandbox.models import SandboxContact, SandboxSettings

pytestmark = [pytest.mark.django_db, pytest.mark.urls("sandbox.tests_urls")]

BASE = "/sandbox/hubspot/crm/v3"
CONTACTS = f"{BASE}/objects/contacts"
UPSERT = f"{CONTACTS}/batch/upsert"
PROPERTIES = f"{BASE}/properties/contacts"
RATE_HEADERS = ("X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining", "X-HubSpot-RateLimit-Interval-Milliseconds",
                "X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining")


class HubSpotClient:
    """An integration calling the sandbox with a private-app token, as it would call HubSpot."""

    def __init__(self, client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params) -> HttpResponse:
        return self.client.get(path, params, headers=self.headers)

    def post(self, path: str, body) -> HttpResponse:
        return self.client.post(path, body, content_type="application/json", headers=self.headers)


@pytest.fixture
def hubspot(client) -> HubSpotClient:
    return HubSpotClient(client, settings.SANDBOX_HUBSPOT_TOKEN)


@pytest.fixture
def outsider(client) -> HubSpotClient:
    return HubSpotClient(client, "not-the-token")


def upsert_input(external_id: str, **properties) -> dict:
    return {"id": external_id, "idProperty": "crmsync_external_id", "properties": properties}


def limits(**values) -> None:
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults=values)


# --- authentication ---------------------------------------------------------------------------

def test_a_call_without_the_token_is_refused_with_hubspots_error(client, outsider):
    for answer in (client.get(CONTACTS), outsider.post(UPSERT, {"inputs": []})):
        assert answer.status_code == 401
        body = answer.json()
        assert (body["status"], body["category"]) == ("error", "INVALID_AUTHENTICATION")
        assert body["message"].startswith("Authentication credentials not found")
        uuid.UUID(body["correlationId"])
        assert "X-HubSpot-RateLimit-Max" not in answer
    assert not SandboxContact.objects.exists()


# --- batch upsert -----------------------------------------------------------------------------

def test_an_upsert_creates_the_contact_then_updates_the_same_one(hubspot):
    first = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="  Ada@Example.COM ", firstname="Ada")]})
    second = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", company="Analytical Engines")]})

    assert (first.status_code, second.status_code) == (200, 200)
    [created], [updated] = first.json()["results"], second.json()["results"]
    assert (created["new"], updated["new"]) == (True, False)
    assert created["id"] == updated["id"] and isinstance(created["id"], str)
    merged = {"email": "ada@example.com", "firstname": "Ada", "company": "Analytical Engines",
              "crmsync_external_id": "lead-1"}
    assert merged.items() <= updated["properties"].items()
    assert updated["properties"]["hs_object_id"] == created["id"]
    assert first.json()["status"] == "COMPLETE" and first.json()["startedAt"].endswith("Z")
    contact = SandboxContact.objects.get()
    assert (str(contact.pk), contact.email) == (created["id"], "ada@example.com")


def test_two_identical_upserts_leave_exactly_one_contact(hubspot):
    body = {"inputs": [upsert_input("lead-1", email="grace@navy.mil", lastname="Hopper")]}

    answers = [hubspot.post(UPSERT, body), hubspot.post(UPSERT, body)]

    assert [a.json()["results"][0]["new"] for a in answers] == [True, False]
    assert SandboxContact.objects.count() == 1


def test_an_unknown_property_refuses_the_whole_batch_and_writes_nothing(hubspot):
    answer = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="a@example.com"),
                                              upsert_input("lead-2", email="b@example.com", foo="bar")]})

    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert body["message"].startswith("Property values were not valid: ")
    assert body["errors"] == [{"message": 'Property "foo" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                               "context": {"propertyName": ["foo"]}}]
    assert not SandboxContact.objects.exists()


def test_an_invalid_email_is_refused_like_hubspot_does(hubspot):
    answer = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="not an email")]})

    assert answer.status_code == 400
    assert answer.json()["errors"][0]["code"] == "INVALID_EMAIL"


def test_an_input_whose_email_belongs_to_another_contact_fails_alone(hubspot):
    hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="ada@example.com")]})

    answer = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-2", email="ADA@example.com"),
                                              upsert_input("lead-3", email="grace@navy.mil")]})

    assert answer.status_code == 207
    body = answer.json()
    assert body["numErrors"] == 1 and body["status"] == "COMPLETE"
    [error] = body["errors"]
    assert (error["status"], error["category"]) == ("error", "CONFLICT")
    assert error["context"]["id"] == ["lead-2"]
    existing = SandboxContact.objects.get(email="ada@example.com")
    assert f"Existing ID: {existing.pk}" in error["message"]
    assert [r["properties"]["crmsync_external_id"] for r in body["results"]] == ["lead-3"]
    assert SandboxContact.objects.count() == 2


def test_an_upsert_keyed_by_email_finds_the_contact_by_email(hubspot):
    hubspot.post(CONTACTS, {"properties": {"email": "ada@example.com"}})

    answer = hubspot.post(UPSERT, {"inputs": [{"id": "Ada@Example.com", "idProperty": "email",
                                               "properties": {"lastname": "Lovelace"}}]})

    [result] = answer.json()["results"]
    assert result["new"] is False and result["properties"]["lastname"] == "Lovelace"
    assert SandboxContact.objects.count() == 1


def test_an_upsert_key_that_is_not_a_unique_property_is_refused(hubspot):
    answer = hubspot.post(UPSERT, {"inputs": [{"id": "Ada", "idProperty": "firstname", "properties": {}}]})

    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert not SandboxContact.objects.exists()


def test_more_than_100_inputs_are_refused(hubspot):
    answer = hubspot.post(UPSERT, {"inputs": [upsert_input(f"lead-{i}") for i in range(101)]})

    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"
    assert not SandboxContact.objects.exists()


def test_the_same_key_twice_in_one_batch_is_refused(hubspot):
    answer = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1"), upsert_input("lead-1")]})

    assert answer.status_code == 400
    assert "Duplicate IDs" in answer.json()["message"]


def test_a_malformed_body_is_a_validation_error(hubspot):
    answer = hubspot.client.post(UPSERT, "{not json", content_type="application/json", headers=hubspot.headers)

    assert answer.status_code == 400
    body = answer.json()
    assert (body["status"], body["category"]) == ("error", "VALIDATION_ERROR")
    assert body["message"].startswith("Invalid input JSON")


# --- single contacts --------------------------------------------------------------------------

def test_create_answers_201_with_a_hubspot_contact(hubspot):
    answer = hubspot.post(CONTACTS, {"properties": {"email": "Ada@Example.com", "firstname": "Ada"}})

    assert answer.status_code == 201
    body = answer.json()
    contact = SandboxContact.objects.get()
    assert body["id"] == str(contact.pk) and body["archived"] is False
    assert body["createdAt"].endswith("Z") and body["updatedAt"].endswith("Z")
    assert body["properties"]["email"] == "ada@example.com"
    assert body["properties"]["hs_object_id"] == body["id"]
    assert body["properties"]["createdate"] == body["createdAt"]


def test_creating_a_contact_with_a_known_email_conflicts_with_the_existing_id(hubspot):
    existing = hubspot.post(CONTACTS, {"properties": {"email": "ada@example.com"}}).json()

    answer = hubspot.post(CONTACTS, {"properties": {"email": "ADA@example.com "}})

    assert answer.status_code == 409
    body = answer.json()
    assert (body["category"], body["message"]) == ("CONFLICT", f"Contact already exists. Existing ID: {existing['id']}")
    assert SandboxContact.objects.count() == 1


def test_a_contact_is_read_by_id_email_or_external_id(hubspot):
    created = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="ada@example.com", firstname="Ada")]})
    contact_id = created.json()["results"][0]["id"]

    by_id = hubspot.get(f"{CONTACTS}/{contact_id}", properties="firstname,phone")
    by_email = hubspot.get(f"{CONTACTS}/ADA@example.com", idProperty="email")
    by_key = hubspot.get(f"{CONTACTS}/lead-1", idProperty="crmsync_external_id")

    assert [a.json()["id"] for a in (by_id, by_email, by_key)] == [contact_id] * 3
    assert by_id.json()["properties"]["firstname"] == "Ada"
    assert by_id.json()["properties"]["phone"] is None  # asked for, not set: null, as HubSpot answers
    assert "email" not in by_id.json()["properties"]  # not asked for


def test_an_unknown_contact_is_not_found(hubspot):
    for answer in (hubspot.get(f"{CONTACTS}/999"), hubspot.get(f"{CONTACTS}/nobody@example.com", idProperty="email")):
        assert answer.status_code == 404
        assert answer.json()["category"] == "OBJECT_NOT_FOUND"


def test_batch_read_returns_what_it_finds_and_reports_the_rest(hubspot):
    hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="a@example.com"),
                                     upsert_input("lead-2", email="b@example.com")]})

    complete = hubspot.post(f"{CONTACTS}/batch/read", {"idProperty": "crmsync_external_id", "properties": ["email"],
                                                       "inputs": [{"id": "lead-1"}, {"id": "lead-2"}]})
    partial = hubspot.post(f"{CONTACTS}/batch/read", {"idProperty": "email", "properties": ["email"],
                                                      "inputs": [{"id": "a@example.com"}, {"id": "x@example.com"}]})

    assert complete.status_code == 200
    assert sorted(r["properties"]["email"] for r in complete.json()["results"]) == ["a@example.com", "b@example.com"]
    assert partial.status_code == 207
    body = partial.json()
    assert [r["properties"]["email"] for r in body["results"]] == ["a@example.com"]
    assert body["numErrors"] == 1
    assert (body["errors"][0]["category"], body["errors"][0]["context"]) == ("OBJECT_NOT_FOUND", {"ids": ["x@example.com"]})


def test_the_list_pages_through_every_contact_in_id_order(hubspot):
    hubspot.post(UPSERT, {"inputs": [upsert_input(f"lead-{i}", email=f"p{i}@example.com") for i in range(3)]})

    first = hubspot.get(CONTACTS, limit=2, properties="email").json()
    second = hubspot.get(CONTACTS, limit=2, properties="email", after=first["paging"]["next"]["after"]).json()

    emails = [c["properties"]["email"] for c in first["results"] + second["results"]]
    assert emails == ["p0@example.com", "p1@example.com", "p2@example.com"]
    assert "after=" in first["paging"]["next"]["link"]
    assert "paging" not in second


# --- search -----------------------------------------------------------------------------------

def search(hubspot: HubSpotClient, *filters: dict, **body) -> HttpResponse:
    return hubspot.post(f"{CONTACTS}/search", {"filterGroups": [{"filters": list(filters)}] if filters else [], **body})


def test_search_finds_a_contact_by_email_whatever_its_case(hubspot):
    hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="ada@example.com"),
                                     upsert_input("lead-2", email="grace@navy.mil")]})

    answer = search(hubspot, {"propertyName": "email", "operator": "EQ", "value": "ADA@example.com"},
                    properties=["email"])

    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 1 and "paging" not in body
    assert body["results"][0]["properties"]["email"] == "ada@example.com"


def test_search_filters_sorts_and_pages(hubspot):
    hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="ada@example.com", company="Engines"),
                                     upsert_input("lead-2", email="grace@navy.mil"),
                                     upsert_input("lead-3", email="alan@example.com", company="Bletchley")]})

    by_domain = search(hubspot, {"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@example.com"},
                       sorts=[{"propertyName": "email", "direction": "DESCENDING"}], properties=["email"], limit=1)
    without_company = search(hubspot, {"propertyName": "company", "operator": "NOT_HAS_PROPERTY"})
    listed = search(hubspot, {"propertyName": "crmsync_external_id", "operator": "IN", "values": ["lead-2", "lead-3"]})

    assert by_domain.json()["total"] == 2
    assert by_domain.json()["results"][0]["properties"]["email"] == "alan@example.com"  # descending
    assert by_domain.json()["paging"]["next"]["after"] == "1"
    assert [r["properties"]["email"] for r in without_company.json()["results"]] == ["grace@navy.mil"]
    assert listed.json()["total"] == 2


def test_search_refuses_a_limit_above_200(hubspot):
    answer = search(hubspot, limit=201)

    assert answer.status_code == 400
    assert answer.json()["category"] == "VALIDATION_ERROR"


# --- properties -------------------------------------------------------------------------------

def test_the_properties_include_the_unique_external_id_key(hubspot):
    answer = hubspot.get(PROPERTIES)

    by_name = {p["name"]: p for p in answer.json()["results"]}
    assert {"email", "firstname", "lastname", "phone", "company", "country", "lifecyclestage"} <= by_name.keys()
    key = by_name["crmsync_external_id"]
    assert (key["type"], key["fieldType"], key["hasUniqueValue"]) == ("string", "text", True)


def test_the_properties_crmsyncs_field_map_writes_take_its_values(hubspot):
    by_name = {p["name"]: p for p in hubspot.get(PROPERTIES).json()["results"]}
    values = {"lifecyclestage": "customer", "hubspot_owner_id": "101", "crmsync_marketing_opt_in": "true",
              "crmsync_consent_at": "2024-05-01T12:00:00Z", "crmsync_consent_text": "Yes, email me.\nTwice a month.",
              "crmsync_consent_source": "website"}

    written = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", **values)]})
    refused = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-2", crmsync_marketing_opt_in="yes")]})

    assert [o["value"] for o in by_name["lifecyclestage"]["options"]] == [
        "subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer", "evangelist",
        "other"]
    assert (by_name["hubspot_owner_id"]["type"], by_name["crmsync_marketing_opt_in"]["type"],
            by_name["crmsync_consent_at"]["type"]) == ("enumeration", "bool", "datetime")
    assert written.status_code == 200
    assert {k: written.json()["results"][0]["properties"][k] for k in values} == values
    assert refused.status_code == 400 and "INVALID_OPTION" in refused.content.decode()


def test_a_created_property_can_be_read_and_written(hubspot):
    definition = {"name": "lead_score", "label": "Lead score", "type": "number", "fieldType": "number",
                  "groupName": "contactinformation"}

    created = hubspot.post(PROPERTIES, definition)
    again = hubspot.post(PROPERTIES, definition)
    read = hubspot.get(f"{PROPERTIES}/lead_score")
    written = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", lead_score=42)]})

    assert (created.status_code, again.status_code, read.status_code) == (201, 409, 200)
    assert read.json()["label"] == "Lead score" and read.json()["hasUniqueValue"] is False
    assert written.json()["results"][0]["properties"]["lead_score"] == "42"  # HubSpot stores strings


def test_a_property_needs_its_required_fields_and_a_missing_one_is_not_found(hubspot):
    incomplete = hubspot.post(PROPERTIES, {"name": "lead_score", "label": "Lead score"})
    missing = hubspot.get(f"{PROPERTIES}/lead_score")

    assert incomplete.status_code == 400 and incomplete.json()["category"] == "VALIDATION_ERROR"
    assert "fieldType" in incomplete.json()["message"]
    assert missing.status_code == 404


def test_a_new_unique_property_can_key_upserts(hubspot):
    hubspot.post(PROPERTIES, {"name": "erp_id", "label": "ERP ID", "type": "string", "fieldType": "text",
                              "groupName": "contactinformation", "hasUniqueValue": True})

    body = {"inputs": [{"id": "E-1", "idProperty": "erp_id", "properties": {"firstname": "Ada"}}]}
    answers = [hubspot.post(UPSERT, body), hubspot.post(UPSERT, body)]

    assert [a.json()["results"][0]["new"] for a in answers] == [True, False]


# --- limits -----------------------------------------------------------------------------------

def test_every_answer_but_a_401_carries_the_rate_limit_headers(hubspot):
    answers = [hubspot.get(CONTACTS), hubspot.get(f"{CONTACTS}/999"), hubspot.post(UPSERT, {"inputs": "x"})]

    assert [a.status_code for a in answers] == [200, 404, 400]
    for answer in answers:
        assert all(name in answer for name in RATE_HEADERS)
    assert answers[0]["X-HubSpot-RateLimit-Max"] == "190"
    assert answers[0]["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert int(answers[1]["X-HubSpot-RateLimit-Remaining"]) == int(answers[0]["X-HubSpot-RateLimit-Remaining"]) - 1


def clear_of_window_edge(interval_s: float = 10.0, margin_s: float = 2.0) -> None:
    """The sandbox counts in fixed windows; requests straddling an edge would count in two."""
    import time

    into = time.time() % interval_s
    if into > interval_s - margin_s:
        time.sleep(interval_s - into + 0.05)


def test_a_client_over_the_ten_second_limit_gets_429_rolling(hubspot):
    limits(rate_limit_max=2)
    clear_of_window_edge()

    answers = [hubspot.get(CONTACTS) for _ in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert [a["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    body = answers[2].json()
    assert (body["status"], body["errorType"], body["category"]) == ("error", "RATE_LIMIT", "RATE_LIMITS")
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."


def test_a_client_over_the_daily_limit_gets_429_daily(hubspot):
    limits(daily_limit=1)

    answers = [hubspot.get(CONTACTS) for _ in range(2)]

    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["policyName"] == "DAILY"
    assert answers[1]["X-HubSpot-RateLimit-Daily-Remaining"] == "0"


def test_a_refused_call_writes_nothing(hubspot):
    limits(rate_limit_max=0)

    answer = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1")]})

    assert answer.status_code == 429
    assert not SandboxContact.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_delayed_reply_comes_after_the_write_is_committed(hubspot, monkeypatch):
    # given a CRM whose replies are slow
    limits(reply_delay_ms=1500)
    seen_while_waiting = []

    def wait(seconds: float) -> None:
        seen_while_waiting.append((seconds, connection.in_atomic_block, SandboxContact.objects.count()))

    monkeypatch.setattr(views.time, "sleep", wait)

    # when a batch is upserted
    answer = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1")]})

    # then the contact was committed before the reply was held back
    assert answer.status_code == 200
    assert seen_while_waiting == [(1.5, False, 1)]


# --- the official client's models as the oracle -------------------------------------------------

def test_the_answers_fit_hubspots_official_client_models(hubspot):
    """HubSpot's own Python client (hubspot-api-client) parses every answer; its models refuse
    missing required fields and unknown enum values."""
    contacts_client = pytest.importorskip("hubspot.crm.contacts")
    properties_client = pytest.importorskip("hubspot.crm.properties")
    hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1", email="ada@example.com")]})
    as_contacts = validating(contacts_client)

    def parse(api_client, answer: HttpResponse, model: str) -> object:
        return api_client.deserialize(SimpleNamespace(data=answer.content), model)

    conflict = hubspot.post(UPSERT, {"inputs": [upsert_input("lead-2", email="ada@example.com")]})
    parse(as_contacts, conflict, "BatchResponseSimplePublicUpsertObjectWithErrors")
    parse(as_contacts, hubspot.post(UPSERT, {"inputs": [upsert_input("lead-1")]}), "BatchResponseSimplePublicUpsertObject")
    parse(as_contacts, hubspot.post(f"{CONTACTS}/batch/read", {"inputs": [{"id": "1"}, {"id": "999"}], "properties": []}),
          "BatchResponseSimplePublicObjectWithErrors")
    parse(as_contacts, hubspot.get(CONTACTS, limit=1), "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
    parse(as_contacts, search(hubspot), "CollectionResponseWithTotalSimplePublicObjectForwardPaging")
    parse(as_contacts, hubspot.get(f"{CONTACTS}/999"), "Error")
    parse(validating(properties_client), hubspot.get(PROPERTIES), "CollectionResponsePropertyNoPaging")


def validating(client_module) -> object:
    """An ApiClient of the official client with its checks on (they are off by default)."""
    configuration = client_module.Configuration()
    configuration.client_side_validation = True
    return client_module.ApiClient(configuration=configuration)


# --- concurrency ------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_same_new_key_upserted_at_once_by_several_callers_makes_one_contact():
    # given several web threads receiving the same upsert at the same moment
    body = {"inputs": [upsert_input("lead-1", email="ada@example.com")]}
    start = threading.Barrier(4)

    def call() -> int:
        try:
            start.wait(timeout=10)
            return HubSpotClient(Client(), settings.SANDBOX_HUBSPOT_TOKEN).post(UPSERT, body).status_code
        finally:
            connections.close_all()  # each thread has its own connection

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda _: call(), range(4)))

    # then one created it and the others updated it
    assert statuses == [200] * 4
    assert SandboxContact.objects.count() == 1
