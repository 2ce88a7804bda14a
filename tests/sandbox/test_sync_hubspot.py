"""The sandbox HubSpot as a two-way sync poller sees it, over real HTTP: person edits and their
history, search on the modification date, archives and merges, faults on reads."""

from datetime import datetime

from django.conf import settings
import pytest
import requests

from sandbox.models import SandboxContact, SandboxSettings
from tests import sandbox_control as sandbox

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}


@pytest.fixture
def base_url(live_server) -> str:
    # The poll pages fast; HubSpot's 5 searches a second would refuse a test that reads 60 pages.
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"search_limit_per_second": 10_000})
    return live_server.url


def search(base_url: str, body: dict, object_type: str = "contacts") -> requests.Response:
    return requests.post(f"{base_url}/sandbox/hubspot/crm/v3/objects/{object_type}/search", json=body,
                         headers=HEADERS, timeout=30)


def modified_since(ms: int, *, after: int = 0, limit: int = 200, prop: str = "lastmodifieddate") -> dict:
    """The poller's query: one GTE filter on the modification date, ascending."""
    return {"filterGroups": [{"filters": [{"propertyName": prop, "operator": "GTE", "value": str(ms)}]}],
            "sorts": [{"propertyName": prop, "direction": "ASCENDING"}], "properties": ["email", "phone"],
            "limit": limit, "after": after}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def upsert(base_url: str, external_id: str, **properties) -> dict:
    body = {"inputs": [{"id": external_id, "idProperty": "crmsync_external_id", "properties": properties}]}
    answer = requests.post(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/batch/upsert", json=body,
                           headers=HEADERS, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["results"][0]


# --- person edits and history -----------------------------------------------------------------

def test_a_person_edit_moves_the_modification_time_and_is_told_apart_from_the_integrations_in_history(base_url):
    # given a contact our integration created
    created = upsert(base_url, "lead-1", email="ada@example.com", phone="+441")

    # when a person changes its phone in HubSpot
    edited = sandbox.hubspot_person_edit(base_url, created["id"], {"phone": "+442"}, person="ann")

    # then its modification time moved and each value's history says who set it, newest first
    assert ms(edited["updatedAt"]) >= ms(created["updatedAt"])
    assert edited["properties"]["lastmodifieddate"] == edited["updatedAt"]
    read = sandbox.hubspot_read(base_url, created["id"], properties=["phone"], history=["phone", "email"])
    phone = read["propertiesWithHistory"]["phone"]
    assert [(h["value"], h["sourceType"], h["sourceId"]) for h in phone] == [
        ("+442", "CRM_UI", "ann"), ("+441", "INTEGRATION", phone[1]["sourceId"])]
    assert phone[0]["timestamp"] == edited["updatedAt"]
    assert [h["sourceType"] for h in read["propertiesWithHistory"]["email"]] == ["INTEGRATION"]


def test_a_batch_read_returns_history_for_at_most_50_records(base_url):
    created = upsert(base_url, "lead-1", email="ada@example.com", phone="+441")
    sandbox.hubspot_person_edit(base_url, created["id"], {"phone": ""}, person="bob")
    url = f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/batch/read"

    answer = requests.post(url, headers=HEADERS, timeout=30, json={
        "inputs": [{"id": created["id"]}], "properties": ["phone"], "propertiesWithHistory": ["phone"]})
    too_many = requests.post(url, headers=HEADERS, timeout=30, json={
        "inputs": [{"id": str(i)} for i in range(1, 52)], "properties": [], "propertiesWithHistory": ["phone"]})

    [record] = answer.json()["results"]
    assert record["properties"]["phone"] is None
    assert [(h["value"], h["sourceId"]) for h in record["propertiesWithHistory"]["phone"]][0] == ("", "bob")
    assert too_many.status_code == 400 and "50" in too_many.json()["message"]


def test_an_actor_header_that_is_not_a_person_is_refused(base_url):
    created = upsert(base_url, "lead-1", email="ada@example.com")
    answer = requests.patch(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/{created['id']}", timeout=30,
                            json={"properties": {"phone": "1"}}, headers={**HEADERS, "X-Sandbox-Actor": "robot"})
    assert answer.status_code == 400 and "person:<name>" in answer.json()["message"]


# --- search on the modification date ----------------------------------------------------------

def test_search_filters_and_sorts_on_the_modification_date_and_pages(base_url):
    ids = sandbox.hubspot_bulk_create(base_url, count=5, template={"email": "u{i}@example.com"})
    times = {c.pk: c.updated_at for c in SandboxContact.objects.all()}
    third = int(times[int(ids[2])].timestamp() * 1000)

    first = search(base_url, modified_since(third, limit=2)).json()
    second = search(base_url, modified_since(third, limit=2, after=int(first["paging"]["next"]["after"]))).json()
    strictly_after = search(base_url, {**modified_since(third), "filterGroups": [{"filters": [
        {"propertyName": "lastmodifieddate", "operator": "GT", "value": str(third)}]}]}).json()
    newest_first = search(base_url, {**modified_since(0), "sorts": [{"propertyName": "lastmodifieddate",
                                                                     "direction": "DESCENDING"}]}).json()

    assert first["total"] == 3 and [r["id"] for r in first["results"]] == ids[2:4]
    assert [r["id"] for r in second["results"]] == ids[4:] and "paging" not in second
    assert [r["id"] for r in strictly_after["results"]] == ids[3:]
    assert [r["id"] for r in newest_first["results"]] == ids[::-1]
    assert set(first["results"][0]["properties"]) >= {"email", "phone", "lastmodifieddate", "hs_object_id"}


def test_a_query_past_10000_results_is_refused_and_a_poll_restarting_from_the_last_time_reads_all_12000(base_url):
    # given 12,000 contacts changed one millisecond apart
    ids = sandbox.hubspot_bulk_create(base_url, count=12_000, template={"email": "u{i}@example.com"})

    # when a poller pages through, restarting from the last time seen when HubSpot's cap ends a query
    seen, since, after, calls = [], 0, 0, 0
    while True:
        page = search(base_url, modified_since(since, after=after)).json()
        calls += 1
        seen += [r["id"] for r in page["results"]]
        if "paging" in page:
            after = int(page["paging"]["next"]["after"])
        elif after + 200 >= 10_000:  # capped, not finished
            since, after = ms(page["results"][-1]["updatedAt"]), 0
        else:
            break

    # then every contact was read, in order, and HubSpot's cap was never crossed
    assert list(dict.fromkeys(seen)) == ids
    assert calls < 70
    refused = search(base_url, modified_since(0, after=9_900, limit=200))
    assert refused.status_code == 400 and "10000" in refused.json()["message"].replace(",", "")


def test_companies_are_searched_on_hs_lastmodifieddate(base_url):
    created = sandbox.hubspot_create(base_url, {"name": "Analytical Engines"}, object_type="companies")

    found = search(base_url, modified_since(ms(created["updatedAt"]), prop="hs_lastmodifieddate"), "companies").json()
    wrong = search(base_url, modified_since(0), "contacts")

    assert [r["id"] for r in found["results"]] == [created["id"]]
    assert found["results"][0]["properties"]["hs_lastmodifieddate"] == created["updatedAt"]
    assert wrong.status_code == 200


# --- archive and merge ------------------------------------------------------------------------

def test_an_archived_contact_leaves_search_is_listed_as_archived_and_an_upsert_makes_a_new_one(base_url):
    created = upsert(base_url, "lead-1", email="ada@example.com")

    sandbox.hubspot_archive(base_url, created["id"], person="ann")

    assert search(base_url, modified_since(0)).json()["total"] == 0
    archived = requests.get(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts", params={"archived": "true"},
                            headers=HEADERS, timeout=30).json()["results"]
    assert [(r["id"], r["archived"]) for r in archived] == [(created["id"], True)]
    assert archived[0]["archivedAt"] >= created["updatedAt"]
    gone = requests.get(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/{created['id']}", headers=HEADERS,
                        timeout=30)
    assert gone.status_code == 404
    # a push keyed on the deleted contact's external ID creates another contact (the engine must hold it)
    again = upsert(base_url, "lead-1", email="ada@example.com")
    assert again["new"] is True and again["id"] != created["id"]


def test_a_merge_leaves_the_survivor_listing_the_merged_id_and_reads_of_the_merged_id_answer_with_it(base_url):
    primary = upsert(base_url, "lead-1", email="ada@example.com")
    merged = upsert(base_url, "lead-2", email="ada.l@example.com", phone="+441")

    survivor = sandbox.hubspot_merge(base_url, primary["id"], merged["id"], person="ann")

    assert survivor["id"] == primary["id"]
    assert survivor["properties"]["hs_merged_object_ids"] == merged["id"]
    assert survivor["properties"]["phone"] == "+441"  # a value only the merged record had
    assert ms(survivor["updatedAt"]) >= ms(merged["updatedAt"])
    assert [r["id"] for r in search(base_url, modified_since(0)).json()["results"]] == [primary["id"]]
    by_old_id = sandbox.hubspot_read(base_url, merged["id"], properties=["hs_merged_object_ids"])
    assert by_old_id["id"] == primary["id"] and by_old_id["properties"]["hs_merged_object_ids"] == merged["id"]
    batch = requests.post(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/batch/read", headers=HEADERS, timeout=30,
                          json={"inputs": [{"id": merged["id"]}], "properties": ["hs_merged_object_ids"]}).json()
    assert [r["id"] for r in batch["results"]] == [primary["id"]]


def test_a_merge_of_a_record_with_itself_or_a_missing_one_is_refused(base_url):
    created = upsert(base_url, "lead-1", email="ada@example.com")
    with pytest.raises(requests.HTTPError) as itself:
        sandbox.hubspot_merge(base_url, created["id"], created["id"])
    with pytest.raises(requests.HTTPError) as missing:
        sandbox.hubspot_merge(base_url, created["id"], "999999")
    assert itself.value.response.status_code == 400 and missing.value.response.status_code == 404


# --- faults on reads --------------------------------------------------------------------------

def test_faults_apply_to_search_and_reads(base_url):
    created = upsert(base_url, "lead-1", email="ada@example.com")
    sandbox.faults_set(base_url, "hubspot", error_rate=1.0)

    searched = search(base_url, modified_since(0))
    read = requests.get(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/{created['id']}", headers=HEADERS,
                        timeout=30)
    sandbox.faults_reset(base_url, "hubspot")

    assert searched.status_code in (500, 502, 503) and read.status_code in (500, 502, 503)
    assert search(base_url, modified_since(0)).status_code == 200

