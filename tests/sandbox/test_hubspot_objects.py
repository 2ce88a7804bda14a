"""Companies, updates, batch create/update, v4 associations and OAuth tokens of the sandbox
HubSpot, checked against the request and response models of HubSpot's official Python client."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
import threading
from types import SimpleNamespace

from django.conf import settings
from django.db import connections
from django.http import HttpResponse
from django.test import Client
import pytest

from sandbox.models import SandboxAccessToken, SandboxAssociation, SandboxCompany, SandboxContact

companies_client = pytest.importorskip("hubspot.crm.companies")
contacts_client = pytest.importorskip("hubspot.crm.contacts")
associations_client = pytest.importorskip("hubspot.crm.associations.v4")

pytestmark = [pytest.mark.django_db, pytest.mark.urls("sandbox.tests_urls")]

BASE = "/sandbox/hubspot/crm/v3"
COMPANIES = f"{BASE}/objects/companies"
CONTACTS = f"{BASE}/objects/contacts"
V4 = "/sandbox/hubspot/crm/v4"
TOKEN_URL = "/sandbox/hubspot/oauth/v3/token"
co = companies_client.models
ct = contacts_client.models
av4 = associations_client.models


class HubSpotClient:
    """An integration calling the sandbox as it would call HubSpot, sending the official
    client's request models serialized the way the client serializes them."""

    def __init__(self, client: Client, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params) -> HttpResponse:
        return self.client.get(path, params, headers=self.headers)

    def send(self, method: str, path: str, body) -> HttpResponse:
        data = validating(companies_client).sanitize_for_serialization(body)
        return getattr(self.client, method)(path, data, content_type="application/json", headers=self.headers)

    def post(self, path: str, body) -> HttpResponse:
        return self.send("post", path, body)

    def patch(self, path: str, body) -> HttpResponse:
        return self.send("patch", path, body)

    def put(self, path: str) -> HttpResponse:
        return self.client.put(path, headers=self.headers)


def validating(client_module) -> object:
    """An ApiClient of the official client with its checks on (they are off by default)."""
    configuration = client_module.Configuration()
    configuration.client_side_validation = True
    return client_module.ApiClient(configuration=configuration)


def parse(client_module, answer: HttpResponse, model: str) -> object:
    return validating(client_module).deserialize(SimpleNamespace(data=answer.content), model)


@pytest.fixture
def hubspot(client) -> HubSpotClient:
    return HubSpotClient(client, settings.SANDBOX_HUBSPOT_TOKEN)


def create_companies(hubspot: HubSpotClient, *properties: dict) -> list[str]:
    body = co.BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[co.SimplePublicObjectBatchInputForCreate(properties=p) for p in properties])
    return [r.id for r in parse(companies_client, hubspot.post(f"{COMPANIES}/batch/create", body),
                                "BatchResponseSimplePublicObject").results]


# --- companies --------------------------------------------------------------------------------

def test_companies_are_created_read_listed_and_searched_like_contacts(hubspot):
    created = hubspot.post(COMPANIES, co.SimplePublicObjectInputForCreate(
        properties={"name": "Analytical Engines", "domain": "engines.example", "country": "GB"}))

    assert created.status_code == 201
    company = parse(companies_client, created, "SimplePublicObject")
    assert company.properties["name"] == "Analytical Engines" and company.properties["hs_object_id"] == company.id
    read = parse(companies_client, hubspot.get(f"{COMPANIES}/{company.id}", properties="domain"), "SimplePublicObjectWithAssociations")
    assert read.properties["domain"] == "engines.example" and "name" not in read.properties
    listed = parse(companies_client, hubspot.get(COMPANIES), "CollectionResponseSimplePublicObjectWithAssociationsForwardPaging")
    assert [c.id for c in listed.results] == [company.id]
    search = co.PublicObjectSearchRequest(filter_groups=[co.FilterGroup(filters=[
        co.Filter(property_name="domain", operator="EQ", value="ENGINES.example")])], properties=["name"], limit=10)
    found = parse(companies_client, hubspot.post(f"{COMPANIES}/search", search),
                  "CollectionResponseWithTotalSimplePublicObjectForwardPaging")
    assert found.total == 1 and found.results[0].properties["name"] == "Analytical Engines"
    assert not SandboxContact.objects.exists()


def test_company_properties_are_their_own(hubspot):
    names = {p["name"] for p in hubspot.get(f"{BASE}/properties/companies").json()["results"]}
    created = hubspot.post(f"{BASE}/properties/companies", co.SimplePublicObjectInput(properties={}))  # wrong body

    assert {"name", "domain", "phone", "country", "hs_object_id", "createdate", "lastmodifieddate"} <= names
    assert "email" not in names
    assert created.status_code == 400
    assert hubspot.get(f"{BASE}/properties/companies/email").status_code == 404
    assert hubspot.get(f"{BASE}/properties/contacts/email").status_code == 200


def test_a_company_batch_upsert_by_a_unique_property_creates_then_updates(hubspot):
    properties_client = pytest.importorskip("hubspot.crm.properties")
    definition = properties_client.models.PropertyCreate(name="erp_account", label="ERP account", type="string",
                                                         field_type="text", group_name="companyinformation",
                                                         has_unique_value=True)
    assert hubspot.post(f"{BASE}/properties/companies", definition).status_code == 201
    body = co.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[co.SimplePublicObjectBatchInputUpsert(
        id="ACME-1", id_property="erp_account", properties={"name": "Acme"})])

    first = parse(companies_client, hubspot.post(f"{COMPANIES}/batch/upsert", body), "BatchResponseSimplePublicUpsertObject")
    second = parse(companies_client, hubspot.post(f"{COMPANIES}/batch/upsert", body), "BatchResponseSimplePublicUpsertObject")

    assert (first.results[0].new, second.results[0].new) == (True, False)
    assert first.results[0].id == second.results[0].id
    assert SandboxCompany.objects.count() == 1
    taken = hubspot.post(COMPANIES, co.SimplePublicObjectInputForCreate(properties={"erp_account": "ACME-1"}))
    assert taken.status_code == 409 and taken.json()["category"] == "CONFLICT"


# --- updates ----------------------------------------------------------------------------------

def test_patch_updates_a_contact_by_id_or_unique_property(hubspot):
    created = hubspot.post(CONTACTS, ct.SimplePublicObjectInputForCreate(
        properties={"email": "ada@example.com", "crmsync_external_id": "lead-1"})).json()

    by_id = hubspot.patch(f"{CONTACTS}/{created['id']}", ct.SimplePublicObjectInput(properties={"firstname": "Ada"}))
    by_key = hubspot.patch(f"{CONTACTS}/lead-1?idProperty=crmsync_external_id",
                           ct.SimplePublicObjectInput(properties={"lastname": "Lovelace"}))
    missing = hubspot.patch(f"{CONTACTS}/999", ct.SimplePublicObjectInput(properties={"firstname": "X"}))

    assert (by_id.status_code, by_key.status_code, missing.status_code) == (200, 200, 404)
    contact = parse(contacts_client, by_key, "SimplePublicObject")
    assert (contact.properties["firstname"], contact.properties["lastname"]) == ("Ada", "Lovelace")
    assert contact.id == created["id"]


def test_patch_refuses_an_email_another_contact_has(hubspot):
    first = hubspot.post(CONTACTS, ct.SimplePublicObjectInputForCreate(properties={"email": "ada@example.com"})).json()
    second = hubspot.post(CONTACTS, ct.SimplePublicObjectInputForCreate(properties={"email": "grace@navy.mil"})).json()

    answer = hubspot.patch(f"{CONTACTS}/{second['id']}", ct.SimplePublicObjectInput(properties={"email": "ADA@example.com"}))

    assert answer.status_code == 409
    assert answer.json()["message"] == f"Contact already exists. Existing ID: {first['id']}"


def test_batch_create_answers_201_or_207_with_the_conflicting_input(hubspot):
    body = ct.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        ct.SimplePublicObjectBatchInputForCreate(properties={"email": "ada@example.com"}),
        ct.SimplePublicObjectBatchInputForCreate(properties={"email": "grace@navy.mil"})])
    created = hubspot.post(f"{CONTACTS}/batch/create", body)
    again = hubspot.post(f"{CONTACTS}/batch/create", ct.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        ct.SimplePublicObjectBatchInputForCreate(properties={"email": "alan@example.com"}),
        ct.SimplePublicObjectBatchInputForCreate(properties={"email": "ADA@example.com"})]))

    assert created.status_code == 201
    assert len(parse(contacts_client, created, "BatchResponseSimplePublicObject").results) == 2
    assert again.status_code == 207
    partial = parse(contacts_client, again, "BatchResponseSimplePublicObjectWithErrors")
    assert partial.num_errors == 1 and partial.errors[0].category == "CONFLICT"
    assert [r.properties["email"] for r in partial.results] == ["alan@example.com"]
    assert SandboxContact.objects.count() == 3


def test_batch_create_with_an_invalid_value_writes_nothing(hubspot):
    answer = hubspot.post(f"{COMPANIES}/batch/create", co.BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        co.SimplePublicObjectBatchInputForCreate(properties={"name": "Acme"}),
        co.SimplePublicObjectBatchInputForCreate(properties={"shoe_size": "42"})]))

    assert answer.status_code == 400 and answer.json()["category"] == "VALIDATION_ERROR"
    assert not SandboxCompany.objects.exists()


def test_batch_update_takes_record_ids_and_reports_unknown_ones(hubspot):
    acme, globex = create_companies(hubspot, {"name": "Acme"}, {"name": "Globex"})
    body = co.BatchInputSimplePublicObjectBatchInput(inputs=[
        co.SimplePublicObjectBatchInput(id=acme, properties={"phone": "+1 555 0100"}),
        co.SimplePublicObjectBatchInput(id=globex, properties={"country": "US"})])
    updated = hubspot.post(f"{COMPANIES}/batch/update", body)
    partial = hubspot.post(f"{COMPANIES}/batch/update", co.BatchInputSimplePublicObjectBatchInput(inputs=[
        co.SimplePublicObjectBatchInput(id=acme, properties={"name": "Acme Corp"}),
        co.SimplePublicObjectBatchInput(id="999", properties={"name": "Nobody"})]))

    assert updated.status_code == 200
    results = {r.id: r.properties for r in parse(companies_client, updated, "BatchResponseSimplePublicObject").results}
    assert results[acme]["phone"] == "+1 555 0100" and results[globex]["country"] == "US"
    assert partial.status_code == 207
    parsed = parse(companies_client, partial, "BatchResponseSimplePublicObjectWithErrors")
    assert parsed.errors[0].category == "OBJECT_NOT_FOUND" and parsed.errors[0].context == {"ids": ["999"]}
    assert SandboxCompany.objects.get(pk=acme).properties["name"] == "Acme Corp"


# --- associations -----------------------------------------------------------------------------

def contact_and_company(hubspot: HubSpotClient) -> tuple[str, str]:
    contact = hubspot.post(CONTACTS, ct.SimplePublicObjectInputForCreate(properties={"email": "ada@example.com"})).json()
    [company] = create_companies(hubspot, {"name": "Analytical Engines"})
    return contact["id"], company


def test_a_default_association_is_created_from_both_sides_and_listed(hubspot):
    contact, company = contact_and_company(hubspot)

    answer = hubspot.put(f"{V4}/objects/contact/{contact}/associations/default/company/{company}")
    listed = hubspot.get(f"{V4}/objects/contact/{contact}/associations/company")
    reverse = hubspot.get(f"{V4}/objects/company/{company}/associations/contact")

    assert answer.status_code == 200
    created = parse(associations_client, answer, "BatchResponsePublicDefaultAssociation")
    assert [(r._from.id, r.to.id, r.association_spec.association_type_id) for r in created.results] == [
        (contact, company, 279), (company, contact, 280)]
    page = parse(associations_client, listed, "CollectionResponseMultiAssociatedObjectWithLabelForwardPaging")
    assert [(str(r.to_object_id), [t.type_id for t in r.association_types]) for r in page.results] == [(company, [279])]
    assert page.results[0].association_types[0].category == "HUBSPOT_DEFINED"
    assert str(reverse.json()["results"][0]["toObjectId"]) == contact


def test_batch_association_create_is_idempotent(hubspot):
    contact, company = contact_and_company(hubspot)
    body = av4.BatchInputPublicAssociationMultiPost(inputs=[av4.PublicAssociationMultiPost(
        _from=av4.PublicObjectId(id=contact), to=av4.PublicObjectId(id=company),
        types=[av4.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=279)])])

    answers = [hubspot.post(f"{V4}/associations/contact/company/batch/create", body) for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 201]
    pair = parse(associations_client, answers[1], "BatchResponseLabelsBetweenObjectPair").results[0]
    assert (str(pair.from_object_id), str(pair.to_object_id), pair.from_object_type_id, pair.to_object_type_id) == (
        contact, company, "0-1", "0-2")
    assert pair.labels == []
    assert SandboxAssociation.objects.count() == 2  # one row per direction, not per call


def test_an_association_to_a_missing_record_fails_alone(hubspot):
    contact, company = contact_and_company(hubspot)
    body = av4.BatchInputPublicAssociationMultiPost(inputs=[
        av4.PublicAssociationMultiPost(_from=av4.PublicObjectId(id=contact), to=av4.PublicObjectId(id=company),
                                       types=[av4.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)]),
        av4.PublicAssociationMultiPost(_from=av4.PublicObjectId(id=contact), to=av4.PublicObjectId(id="999"),
                                       types=[av4.AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=279)])])

    answer = hubspot.post(f"{V4}/associations/contact/company/batch/create", body)
    wrong_type = hubspot.post(f"{V4}/associations/contact/company/batch/create", av4.BatchInputPublicAssociationMultiPost(
        inputs=[av4.PublicAssociationMultiPost(_from=av4.PublicObjectId(id=contact), to=av4.PublicObjectId(id=company),
                                               types=[av4.AssociationSpec(association_category="HUBSPOT_DEFINED",
                                                                          association_type_id=280)])]))

    assert answer.status_code == 207
    parsed = parse(associations_client, answer, "BatchResponseLabelsBetweenObjectPairWithErrors")
    assert parsed.num_errors == 1 and parsed.results[0].labels == ["Primary"]
    assert wrong_type.status_code == 400


# --- OAuth ------------------------------------------------------------------------------------

def refresh(client: Client, **overrides) -> HttpResponse:
    form = {"grant_type": "refresh_token", "client_id": settings.SANDBOX_HUBSPOT_CLIENT_ID,
            "client_secret": settings.SANDBOX_HUBSPOT_CLIENT_SECRET, "refresh_token": settings.SANDBOX_HUBSPOT_REFRESH_TOKEN}
    return client.post(TOKEN_URL, {**form, **overrides})


def test_a_refresh_token_gets_an_access_token_every_endpoint_accepts(client):
    answer = refresh(client)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["expires_in"], body["token_type"], body["refresh_token"]) == (1800, "bearer",
                                                                              settings.SANDBOX_HUBSPOT_REFRESH_TOKEN)
    oauth_app = HubSpotClient(client, body["access_token"])
    assert oauth_app.get(CONTACTS).status_code == 200
    assert oauth_app.get(COMPANIES).status_code == 200


def test_a_bad_refresh_token_or_client_secret_is_refused(client):
    for answer in (refresh(client, refresh_token="stale"), refresh(client, client_secret="wrong")):
        assert answer.status_code == 400
        assert answer.json()["status"] == "BAD_REFRESH_TOKEN" and answer.json()["message"]
    assert not SandboxAccessToken.objects.exists()


def test_an_expired_access_token_gets_expired_authentication(client):
    token = refresh(client).json()["access_token"]
    SandboxAccessToken.objects.update(expires_at=SandboxAccessToken.objects.get().issued_at - timedelta(seconds=1))

    answer = HubSpotClient(client, token).get(CONTACTS)

    assert answer.status_code == 401
    error = parse(contacts_client, answer, "Error")
    assert error.category == "EXPIRED_AUTHENTICATION"


# --- concurrency ------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("object_type", ["contacts", "companies"])
def test_a_batch_upsert_on_a_new_unique_value_run_at_once_makes_one_record(object_type):
    # given a unique custom property and several callers upserting the same new value at once
    owner = HubSpotClient(Client(), settings.SANDBOX_HUBSPOT_TOKEN)
    owner.client.post(f"{BASE}/properties/{object_type}", {
        "name": "erp_id", "label": "ERP ID", "type": "string", "fieldType": "text", "groupName": "x",
        "hasUniqueValue": True}, content_type="application/json", headers=owner.headers)
    body = {"inputs": [{"id": "E-1", "idProperty": "erp_id", "properties": {}}]}
    start = threading.Barrier(5)

    def call(_: int) -> int:
        try:
            session = HubSpotClient(Client(), settings.SANDBOX_HUBSPOT_TOKEN)
            start.wait(timeout=10)
            return session.client.post(f"{BASE}/objects/{object_type}/batch/upsert", body, content_type="application/json",
                                       headers=session.headers).status_code
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(pool.map(call, range(5)))

    # then one of them created it
    assert statuses == [200] * 5
    model = SandboxContact if object_type == "contacts" else SandboxCompany
    assert model.objects.count() == 1
