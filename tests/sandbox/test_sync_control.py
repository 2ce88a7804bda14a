"""The sandbox's controls for sync tests, over real HTTP: the CRMs' clocks (and one Date header
under gunicorn), signed HubSpot webhooks and subscriptions, person edits in the sandbox admin."""

import base64
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
import hashlib
import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import queue
import threading

from django.conf import settings
import pytest
import requests

from sandbox.models import SandboxContact, SandboxSalesforceRecord
from tests import sandbox_control as sandbox

pytestmark = pytest.mark.django_db(transaction=True)

HEADERS = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}
SECRET = "app-client-secret"


@pytest.fixture
def base_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def receiver():
    """A webhook receiver of our own: what it got, as (path, headers, body bytes)."""
    got: queue.Queue = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            got.put((self.path, dict(self.headers), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", got
    server.shutdown()


def signature(method: str, url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature, computed here independently of the sandbox."""
    digest = hmac.new(SECRET.encode(), f"{method}{url}".encode() + body + timestamp.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def date_of(answer: requests.Response) -> datetime:
    return parsedate_to_datetime(answer.headers["Date"])


# --- clocks -----------------------------------------------------------------------------------

def test_a_hubspot_clock_five_minutes_ahead_stamps_records_and_dates_answers_in_its_time(base_url):
    sandbox.clock_offset_set(base_url, "hubspot", 300)

    created = sandbox.hubspot_create(base_url, {"email": "ada@example.com"})
    answer = requests.get(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts", headers=HEADERS, timeout=30)
    history = sandbox.hubspot_read(base_url, created["id"], history=["email"])["propertiesWithHistory"]["email"]

    now = datetime.now(timezone.utc)
    ahead = (datetime.fromisoformat(created["updatedAt"]) - now).total_seconds()
    assert 240 < ahead < 310
    assert 240 < (date_of(answer) - now).total_seconds() < 310
    assert history[0]["timestamp"] == created["updatedAt"]
    assert sandbox.clock_offset_set(base_url, "hubspot", 0)["offset_seconds"] == 0


def test_a_salesforce_clock_five_minutes_behind_stamps_systemmodstamp_and_dates_answers(base_url):
    sandbox.clock_offset_set(base_url, "salesforce", -300)

    lead_id = sandbox.salesforce_create(base_url, "Lead", {"LastName": "Lovelace", "Company": "AE"})
    answer = requests.get(f"{base_url}/services/data/v62.0/sobjects/Lead/{lead_id}",
                          headers={"Authorization": f"Bearer {sandbox.salesforce_token(base_url)}"}, timeout=30)

    now = datetime.now(timezone.utc)
    stamp = datetime.strptime(answer.json()["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert -310 < (stamp - now).total_seconds() < -240
    assert -310 < (date_of(answer) - now).total_seconds() < -240


def test_a_bad_clock_offset_or_crm_is_refused(base_url):
    url = f"{base_url}/sandbox/_control/clock"
    assert requests.put(f"{url}/hubspot", json={"offset_seconds": "5"}, timeout=30).status_code == 400
    assert requests.put(f"{url}/hubspot", json={"offset_seconds": 10**9}, timeout=30).status_code == 400
    assert requests.put(f"{url}/pipedrive", json={"offset_seconds": 5}, timeout=30).status_code == 404


def test_under_gunicorn_an_answer_carries_exactly_one_date_header_in_the_crms_clock(stack):
    stack.start_web()
    sandbox.clock_offset_set(stack.base_url, "hubspot", -600)

    answer = requests.get(f"{stack.sandbox_url}/crm/v3/objects/contacts", headers=HEADERS, timeout=30)
    product = requests.get(f"{stack.base_url}/healthz", timeout=30)

    assert answer.status_code == 200
    assert len(answer.raw.headers.getlist("Date")) == 1
    assert -610 < (date_of(answer) - datetime.now(timezone.utc)).total_seconds() < -590
    assert len(product.raw.headers.getlist("Date")) == 1  # gunicorn's own, for everything else
    assert abs((date_of(product) - datetime.now(timezone.utc)).total_seconds()) < 60


# --- webhooks ---------------------------------------------------------------------------------

def test_sent_webhooks_are_a_json_array_signed_v3_over_method_uri_body_and_timestamp(base_url, receiver):
    url, got = receiver
    target = f"{url}/api/crm-webhooks/hubspot/7?x=1"

    result = sandbox.hubspot_webhook_send(base_url, url=target, client_secret=SECRET, events=[
        {"subscriptionType": "contact.propertyChange", "objectId": 101, "propertyName": "phone",
         "propertyValue": "+442", "changeSource": "CRM_UI"}])

    path, headers, body = got.get(timeout=10)
    assert result["delivered"] is True and path == "/api/crm-webhooks/hubspot/7?x=1"
    timestamp = headers["X-HubSpot-Request-Timestamp"]
    assert headers["X-HubSpot-Signature-v3"] == signature("POST", target, body, timestamp)
    assert abs(int(timestamp) / 1000 - datetime.now(timezone.utc).timestamp()) < 60
    [event] = json.loads(body)
    assert {"eventId", "subscriptionId", "portalId", "appId", "occurredAt", "attemptNumber"} <= set(event)
    assert (event["objectId"], event["propertyName"], event["propertyValue"]) == (101, "phone", "+442")


def test_a_stale_timestamp_can_be_sent_on_purpose(base_url, receiver):
    url, got = receiver
    stale = int(datetime.now(timezone.utc).timestamp() * 1000) - 10 * 60 * 1000

    sandbox.hubspot_webhook_send(base_url, url=url + "/hook", client_secret=SECRET, timestamp_ms=stale,
                                 events=[{"subscriptionType": "contact.deletion", "objectId": 5}])

    _, headers, body = got.get(timeout=10)
    assert headers["X-HubSpot-Request-Timestamp"] == str(stale)
    assert headers["X-HubSpot-Signature-v3"] == signature("POST", url + "/hook", body, str(stale))


def test_a_webhook_without_url_secret_or_events_is_refused(base_url):
    answer = requests.post(f"{base_url}/sandbox/_control/hubspot/webhooks/send", timeout=30,
                           json={"url": "ftp://x", "client_secret": SECRET, "events": []})
    assert answer.status_code == 400 and "url" in answer.json()["error"]


def test_a_subscription_sends_person_edits_deletions_and_merges_but_not_the_integrations_edits(base_url, receiver):
    url, got = receiver
    sandbox.hubspot_webhook_subscribe(base_url, target_url=url + "/hook", client_secret=SECRET)
    first = sandbox.hubspot_create(base_url, {"email": "ada@example.com"})
    second = sandbox.hubspot_create(base_url, {"email": "grace@example.com"})

    requests.patch(f"{base_url}/sandbox/hubspot/crm/v3/objects/contacts/{first['id']}", headers=HEADERS, timeout=30,
                   json={"properties": {"phone": "+440"}}).raise_for_status()  # the integration's: no event
    sandbox.hubspot_person_edit(base_url, first["id"], {"phone": "+441"}, person="ann")
    edit = json.loads(got.get(timeout=10)[2])
    sandbox.hubspot_merge(base_url, first["id"], second["id"], person="ann")
    merge = json.loads(got.get(timeout=10)[2])
    sandbox.hubspot_archive(base_url, first["id"], person="ann")
    deletion = json.loads(got.get(timeout=10)[2])

    assert [(e["subscriptionType"], e["objectId"], e["propertyName"], e["propertyValue"]) for e in edit] == [
        ("contact.propertyChange", int(first["id"]), "phone", "+441")]
    assert merge[0]["subscriptionType"] == "contact.merge" and merge[0]["mergedObjectIds"] == [int(second["id"])]
    assert (deletion[0]["subscriptionType"], deletion[0]["objectId"]) == ("contact.deletion", int(first["id"]))
    assert got.empty()


# --- bulk -------------------------------------------------------------------------------------

def test_bulk_create_refuses_a_taken_or_repeated_unique_value_and_writes_nothing(base_url):
    sandbox.hubspot_create(base_url, {"email": "u1@example.com"})
    with pytest.raises(requests.HTTPError) as taken:
        sandbox.hubspot_bulk_create(base_url, count=3, template={"email": "u{i}@example.com"})
    with pytest.raises(requests.HTTPError) as repeated:
        sandbox.hubspot_bulk_create(base_url, records=[{"email": "x@example.com"}, {"email": "x@example.com"}])
    with pytest.raises(requests.HTTPError) as invalid:
        sandbox.hubspot_bulk_create(base_url, records=[{"email": "not an email"}])
    assert [e.value.response.status_code for e in (taken, repeated, invalid)] == [409, 400, 400]
    assert SandboxContact.objects.count() == 1


def test_bulk_created_records_are_a_persons_when_a_person_is_named(base_url):
    [contact_id] = sandbox.hubspot_bulk_create(base_url, records=[{"email": "ada@example.com", "phone": "1"}],
                                               person="ann")
    history = sandbox.hubspot_read(base_url, contact_id, history=["phone"])["propertiesWithHistory"]["phone"]
    assert [(h["sourceType"], h["sourceId"]) for h in history] == [("CRM_UI", "ann")]


# --- the sandbox admin ------------------------------------------------------------------------

def test_saving_a_contact_in_the_sandbox_admin_is_a_person_edit_by_the_admin_user(base_url, operator):
    created = sandbox.hubspot_create(base_url, {"email": "ada@example.com", "phone": "+441"})

    answer = operator.post(f"/admin/sandbox/sandboxcontact/{created['id']}/change/",
                           {"values": json.dumps({"email": "ada@example.com", "phone": "+449"})})

    assert answer.status_code == 302
    read = sandbox.hubspot_read(base_url, created["id"], properties=["phone"], history=["phone"])
    assert read["properties"]["phone"] == "+449"
    assert (read["propertiesWithHistory"]["phone"][0]["sourceType"],
            read["propertiesWithHistory"]["phone"][0]["sourceId"]) == ("CRM_UI", "ops")
    assert read["updatedAt"] > created["updatedAt"] or read["updatedAt"] == created["updatedAt"]


def test_the_sandbox_admin_archives_and_merges_contacts_as_a_person(base_url, operator):
    ada = sandbox.hubspot_create(base_url, {"email": "ada@example.com"})
    grace = sandbox.hubspot_create(base_url, {"email": "grace@example.com"})
    hopper = sandbox.hubspot_create(base_url, {"email": "hopper@example.com"})

    operator.post("/admin/sandbox/sandboxcontact/", {"action": "merge_selected", "_selected_action": [ada["id"], grace["id"]]})
    operator.post("/admin/sandbox/sandboxcontact/", {"action": "archive_selected", "_selected_action": [hopper["id"]]})

    survivor = sandbox.hubspot_read(base_url, grace["id"], properties=["hs_merged_object_ids"])
    assert survivor["id"] == ada["id"] and survivor["properties"]["hs_merged_object_ids"] == grace["id"]
    assert SandboxContact.objects.get(pk=hopper["id"]).archived is True


def test_saving_a_salesforce_lead_in_the_sandbox_admin_names_a_person_as_last_modifier(base_url, operator):
    lead_id = sandbox.salesforce_create(base_url, "Lead", {"LastName": "Lovelace", "Company": "AE"})
    record = SandboxSalesforceRecord.objects.get(pk=lead_id)

    answer = operator.post(f"/admin/sandbox/sandboxsalesforcerecord/{lead_id}/change/",
                           {"values": json.dumps({**record.fields, "Phone": "+449"})})
    operator.post("/admin/sandbox/sandboxsalesforcerecord/", {"action": "delete_softly", "_selected_action": [lead_id]})

    assert answer.status_code == 302
    [row] = sandbox.salesforce_query(base_url, "SELECT Phone, LastModifiedById, IsDeleted FROM Lead", all_rows=True)["records"]
    assert row["Phone"] == "+449" and row["IsDeleted"] is True
    assert row["LastModifiedById"] != "0055g00000sandbAAA" and row["LastModifiedById"].startswith("005")
