"""The sandbox Meta Lead Ads as the product's worker sees it: Graph API's Lead node, its errors,
and the leadgen webhook that announces a lead."""

from datetime import datetime
from datetime import timezone as dt_timezone
import json
import re

from django.http import HttpResponse
import pytest

from sandbox.meta.graph import meta_lead_create, meta_webhook_body
from sandbox.models import SandboxMetaLead
from tests.fixtures import WEBHOOKS

pytestmark = [pytest.mark.django_db, pytest.mark.urls("sandbox.tests_urls")]

GRAPH = "/sandbox/graph/v19.0"
PAGE_TOKEN = "EAAsandbox-page-token"
# The fbsamples capture, shared with the ingestion tests (see SOURCES.json next to it).
FIXTURE = WEBHOOKS / "meta-leadgen-webhook.fbsamples.json"
ADA_FIELDS = [{"name": "email", "values": ["ada@example.com"]}, {"name": "full_name", "values": ["Ada Lovelace"]}]


@pytest.fixture
def ada() -> SandboxMetaLead:
    """A lead left by a form submission on an ad of the page the token belongs to."""
    lead = meta_lead_create(leadgen_id="233370042045345", field_data=ADA_FIELDS, access_token=PAGE_TOKEN,
                            page_id="138124712925158", form_id="172036835026334", ad_id="23851234567890")
    SandboxMetaLead.objects.filter(pk=lead.pk).update(created_time=datetime(2026, 11, 23, 12, 0, tzinfo=dt_timezone.utc))
    lead.refresh_from_db()
    return lead


def graph_error(answer: HttpResponse, status: int = 400) -> dict:
    assert answer.status_code == status
    assert answer["Content-Type"] == "application/json"
    error = answer.json()["error"]
    assert re.fullmatch(r"[A-Za-z0-9]+", error.pop("fbtrace_id"))
    return error


# --- reading a lead ---------------------------------------------------------------------------

def test_the_page_token_reads_the_lead_as_graph_serves_it(client, ada):
    answer = client.get(f"{GRAPH}/{ada.leadgen_id}", {"access_token": PAGE_TOKEN})

    assert answer.status_code == 200
    assert answer.json() == {"id": "233370042045345", "created_time": "2026-11-23T12:00:00+0000",
                             "ad_id": "23851234567890", "form_id": "172036835026334", "field_data": ADA_FIELDS}


def test_fields_narrows_the_answer_to_those_fields_and_the_id(client, ada):
    answer = client.get(f"{GRAPH}/{ada.leadgen_id}", {"access_token": PAGE_TOKEN, "fields": "field_data, created_time"})

    assert answer.json() == {"id": ada.leadgen_id, "field_data": ADA_FIELDS, "created_time": "2026-11-23T12:00:00+0000"}


def test_an_organic_lead_has_no_ad_id_rather_than_an_empty_one(client):
    meta_lead_create(leadgen_id="444", field_data=ADA_FIELDS, access_token=PAGE_TOKEN, form_id="172036835026334")

    body = client.get(f"{GRAPH}/444", {"access_token": PAGE_TOKEN}).json()

    assert "ad_id" not in body and body["form_id"] == "172036835026334"


def test_any_graph_version_serves_the_lead(client, ada):
    for version in ("v2.12", "v21.0"):
        assert client.get(f"/sandbox/graph/{version}/{ada.leadgen_id}", {"access_token": PAGE_TOKEN}).status_code == 200


# --- errors -----------------------------------------------------------------------------------

def test_a_request_without_a_token_is_refused_with_code_104(client, ada):
    error = graph_error(client.get(f"{GRAPH}/{ada.leadgen_id}"))

    assert error == {"message": "An access token is required to request this resource.", "type": "OAuthException",
                     "code": 104}


def test_a_token_meta_never_issued_is_refused_with_code_190(client, ada):
    for leadgen_id in (ada.leadgen_id, "999"):  # checked before the lead is looked up
        error = graph_error(client.get(f"{GRAPH}/{leadgen_id}", {"access_token": "EAAforged"}))

        assert error == {"message": "Invalid OAuth access token - Cannot parse access token",
                         "type": "OAuthException", "code": 190}


def test_an_unknown_lead_is_refused_with_code_100_subcode_33(client, ada):
    error = graph_error(client.get(f"{GRAPH}/999", {"access_token": PAGE_TOKEN}))

    assert error == {"message": "Unsupported get request. Object with ID '999' does not exist, cannot be loaded due "
                                "to missing permissions, or does not support this operation.",
                     "type": "GraphMethodException", "code": 100, "error_subcode": 33}


def test_another_pages_token_cannot_tell_the_lead_exists(client, ada):
    meta_lead_create(leadgen_id="555", field_data=[], access_token="EAAother-page-token")

    error = graph_error(client.get(f"{GRAPH}/{ada.leadgen_id}", {"access_token": "EAAother-page-token"}))

    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert f"Object with ID '{ada.leadgen_id}' does not exist" in error["message"]


def test_a_write_is_refused_with_405_in_graphs_error_shape(client, ada):
    answer = client.post(f"{GRAPH}/{ada.leadgen_id}?access_token={PAGE_TOKEN}", {})

    error = graph_error(answer, status=405)
    assert answer["Allow"] == "GET"
    assert (error["type"], error["code"], error["error_subcode"]) == ("GraphMethodException", 100, 33)
    assert error["message"].startswith("Unsupported post request.")
    assert SandboxMetaLead.objects.get().field_data == ADA_FIELDS


def test_a_path_graph_has_not_answers_in_graphs_error_json(client, ada):
    error = graph_error(client.get(f"{GRAPH}/{ada.leadgen_id}/comments", {"access_token": PAGE_TOKEN}))

    assert error == {"message": f"Unknown path components: /v19.0/{ada.leadgen_id}/comments",
                     "type": "OAuthException", "code": 2500}


# --- creating leads and their webhook ---------------------------------------------------------

def test_a_lead_with_malformed_field_data_is_not_created():
    with pytest.raises(ValueError):
        meta_lead_create(leadgen_id="1", field_data=[{"name": "email", "values": "ada@example.com"}],
                         access_token=PAGE_TOKEN)

    assert not SandboxMetaLead.objects.exists()


def shape(value):
    """Keys and value types, recursively: what a webhook parser relies on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def test_the_webhook_for_a_lead_without_an_ad_has_the_shape_meta_sends():
    lead = meta_lead_create(leadgen_id="233370042045345", field_data=ADA_FIELDS, access_token=PAGE_TOKEN,
                            page_id="138124712925158", form_id="172036835026334")

    body = meta_webhook_body(leads=[lead])

    assert shape(body) == shape(json.loads(FIXTURE.read_text()))
    [change] = body["entry"][0]["changes"]
    assert change["value"]["created_time"] == int(lead.created_time.timestamp())
    assert (body["entry"][0]["id"], change["value"]["leadgen_id"]) == ("138124712925158", "233370042045345")


def test_the_webhook_for_an_ad_lead_adds_the_ad_under_both_names(ada):
    body = meta_webhook_body(leads=[ada])

    value = body["entry"][0]["changes"][0]["value"]
    expected = shape(json.loads(FIXTURE.read_text())["entry"][0]["changes"][0]["value"])
    assert shape(value) == {**expected, "ad_id": "str", "adgroup_id": "str"}
    assert value["ad_id"] == value["adgroup_id"] == "23851234567890"
    assert value["created_time"] == 1795435200  # 2026-11-23T12:00:00Z


def test_the_webhook_groups_leads_by_page(ada):
    second = meta_lead_create(leadgen_id="2", field_data=[], access_token=PAGE_TOKEN, page_id=ada.page_id)
    other_page = meta_lead_create(leadgen_id="3", field_data=[], access_token="EAAother", page_id="777")

    body = meta_webhook_body(leads=[ada, second, other_page])

    assert [entry["id"] for entry in body["entry"]] == [ada.page_id, "777"]
    assert [[c["value"]["leadgen_id"] for c in entry["changes"]] for entry in body["entry"]] == [[ada.leadgen_id, "2"], ["3"]]

