"""Every body the HubSpot connector sends, and every answer it reads, checked against the
models of HubSpot's official Python client (hubspot-api-client): the test oracle named in
docs/wire-contracts.md. The connector talks to the sandbox over real HTTP; a response hook on its
session records each exchange."""

import json
from types import SimpleNamespace

import pytest

from delivery.connectors.base import PushRecord
from delivery.connectors.hubspot import HubSpotConnector
from delivery.fieldmap import render
from delivery.models import Destination
from delivery.preflight import destination_fields_create
from delivery.session import DestinationSession
from tests.factories import hubspot_destination
from tests.factories import lead as make_lead

contacts_client = pytest.importorskip("hubspot.crm.contacts")
companies_client = pytest.importorskip("hubspot.crm.companies")
associations_client = pytest.importorskip("hubspot.crm.associations.v4")

pytestmark = pytest.mark.django_db(transaction=True)

# path suffix -> (client module, request model, answer model)
MODELS = {
    "/crm/v3/objects/contacts/batch/upsert": (contacts_client, "BatchInputSimplePublicObjectBatchInputUpsert",
                                              "BatchResponseSimplePublicUpsertObject"),
    "/crm/v3/objects/companies/batch/upsert": (companies_client, "BatchInputSimplePublicObjectBatchInputUpsert",
                                               "BatchResponseSimplePublicUpsertObject"),
    "/crm/v4/associations/contact/company/batch/create": (associations_client, "BatchInputPublicAssociationMultiPost",
                                                          "BatchResponseLabelsBetweenObjectPair"),
}


def validating(client_module):
    configuration = client_module.Configuration()
    configuration.client_side_validation = True
    return client_module.ApiClient(configuration=configuration)


def as_model(client_module, payload: bytes | str, model: str):
    """Deserialize strictly: the model must exist, its required fields be present, and nothing
    we sent may be a key the model does not know (to_dict() would drop it)."""
    api = validating(client_module)
    parsed = api.deserialize(SimpleNamespace(data=payload), model)
    sent = json.loads(payload)
    assert _without_nulls(api.sanitize_for_serialization(parsed)) == _without_nulls(sent), model
    return parsed


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def test_every_request_and_answer_of_a_contact_and_company_push_fits_the_official_models(live_server):
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot",
                                      object_model=Destination.ObjectModel.CONTACT_COMPANY)
    from delivery.fieldmap import fields_default_ensure

    destination.fields.all().delete()
    fields_default_ensure(destination=destination)
    destination_fields_create(destination=destination)  # the company's unique domain property
    exchanges = []
    session = DestinationSession(destination)
    session.hooks["response"].append(lambda response, *a, **k: exchanges.append(response))
    leads = [make_lead(email="ada@engines.example", first_name="Ada", company="Analytical Engines", country="GB"),
             make_lead(email="charles@engines.example", last_name="Babbage", company="Analytical Engines")]
    fields = list(destination.fields.all())
    records = []
    for lead in leads:
        primary, company = render(lead, fields, company_key=destination.company_upsert_property)
        records.append(PushRecord(lead=lead, fields=primary, company=company))

    results = HubSpotConnector(destination, session).upsert(records)

    assert [r.outcome for r in results] == ["create", "create"], [r.error_message for r in results]
    assert results[0].company_crm_id and results[0].company_crm_id == results[1].company_crm_id
    checked = set()
    for response in exchanges:
        path = next((p for p in MODELS if response.request.path_url.endswith(p)), None)
        if path is None:
            continue
        client_module, request_model, answer_model = MODELS[path]
        as_model(client_module, response.request.body, request_model)
        assert response.status_code in (200, 201), response.text
        answer = validating(client_module).deserialize(SimpleNamespace(data=response.content), answer_model)
        assert answer.status == "COMPLETE"
        checked.add(path)
    assert checked == set(MODELS)  # companies, contacts and associations were all sent


def test_the_contacts_the_connector_created_read_back_through_the_official_models(live_server):
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot")
    session = DestinationSession(destination)
    lead = make_lead(email="grace@navy.example", first_name="Grace")
    [result] = HubSpotConnector(destination, session).upsert([PushRecord(lead=lead, fields={"email": lead.email})])

    answer = session.get(f"{destination.base_url}/crm/v3/objects/contacts/{result.crm_record_id}",
                         params={"properties": "email,crmsync_external_id"},
                         headers={"Authorization": f"Bearer {destination.get_token()}"})
    contact = validating(contacts_client).deserialize(SimpleNamespace(data=answer.content), "SimplePublicObjectWithAssociations")
    assert contact.properties["crmsync_external_id"] == lead.external_id
    assert contact.properties["email"] == "grace@navy.example"
