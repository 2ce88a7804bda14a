"""HubSpot's webhooks as HubSpot (and an impostor) sends them: signature v3 and its 5-minute
window decide, every refusal is JSON, and a believed call only names records to poll."""

import base64
import hashlib
import hmac
import json
import time

from django.test import Client
import pytest
import requests

from delivery.models import Destination, SyncCursor
from delivery.webhooks import WebhookRefused, hints_from_events, signature_v3, signature_v3_verify
from tests.factories import destination_form, hubspot_destination

SECRET = "3b7e2f0a-hubspot-app-client-secret"
MINUTE_MS = 60 * 1000
EVENTS = [
    {"eventId": 1, "subscriptionType": "contact.propertyChange", "objectId": 101, "propertyName": "phone",
     "propertyValue": "+44 20 7946 0000", "changeSource": "CRM_UI", "occurredAt": 1796000000000, "portalId": 62515},
    {"eventId": 2, "subscriptionType": "contact.propertyChange", "objectId": 102, "propertyName": "company",
     "propertyValue": "Analytical Engines", "changeSource": "CRM_UI", "occurredAt": 1796000000100, "portalId": 62515},
]


def hubspot_signs(*, method: str, uri: str, body: bytes, timestamp: str, secret: str = SECRET) -> str:
    """HubSpot's documented v3 recipe, written out here apart from the code under test: a UTF-8
    string method + URI + body + timestamp, HMAC-SHA256 with the client secret, base64."""
    source = f"{method}{uri}{body.decode()}{timestamp}".encode()
    return base64.b64encode(hmac.new(secret.encode(), source, hashlib.sha256).digest()).decode()


def now_ms() -> int:
    return int(time.time() * 1000)


# --- the signature itself ---------------------------------------------------------------------------


def test_a_signature_made_by_hubspots_recipe_is_accepted_for_a_url_with_a_query_and_escapes():
    # HubSpot decodes %3A %2C %28 %29 (among others) before signing, and leaves %20 as sent.
    sent = "https://crm.example.com/api/crm-webhooks/hubspot/7?portal=62515&note=a%3Ab%2Cc%28d%29%20e"
    as_signed = "https://crm.example.com/api/crm-webhooks/hubspot/7?portal=62515&note=a:b,c(d)%20e"
    body, timestamp = json.dumps(EVENTS).encode(), str(now_ms())
    signature = hubspot_signs(method="POST", uri=as_signed, body=body, timestamp=timestamp)

    assert signature_v3(secret=SECRET, method="POST", uri=sent, body=body, timestamp=timestamp) == signature
    signature_v3_verify(secret=SECRET, method="POST", uris=[sent], body=body, signature=signature, timestamp=timestamp)


def test_a_signature_over_the_undecoded_url_or_another_secret_is_refused():
    sent = "https://crm.example.com/api/crm-webhooks/hubspot/7?note=a%3Ab"
    body, timestamp = b"[]", str(now_ms())
    for signature in (hubspot_signs(method="POST", uri=sent, body=body, timestamp=timestamp),
                      hubspot_signs(method="POST", uri=sent.replace("%3A", ":"), body=body, timestamp=timestamp,
                                    secret="another-app")):
        with pytest.raises(WebhookRefused) as refused:
            signature_v3_verify(secret=SECRET, method="POST", uris=[sent], body=body, signature=signature,
                                timestamp=timestamp)
        assert (refused.value.status, refused.value.code) == (401, "bad_signature")


@pytest.mark.parametrize("offset_minutes, code", [(-6, "stale_timestamp"), (6, "future_timestamp")])
def test_a_correct_signature_outside_the_five_minute_window_is_refused(offset_minutes, code):
    uri, body = "https://crm.example.com/api/crm-webhooks/hubspot/7", b"[]"
    timestamp = str(now_ms() + offset_minutes * MINUTE_MS)
    signature = hubspot_signs(method="POST", uri=uri, body=body, timestamp=timestamp)

    with pytest.raises(WebhookRefused) as refused:
        signature_v3_verify(secret=SECRET, method="POST", uris=[uri], body=body, signature=signature, timestamp=timestamp)
    assert (refused.value.status, refused.value.code) == (401, code)


def test_four_minutes_of_clock_skew_either_way_is_accepted():
    uri, body = "https://crm.example.com/api/crm-webhooks/hubspot/7", b"[]"
    for offset in (-4 * MINUTE_MS, 4 * MINUTE_MS):
        timestamp = str(now_ms() + offset)
        signature = hubspot_signs(method="POST", uri=uri, body=body, timestamp=timestamp)
        signature_v3_verify(secret=SECRET, method="POST", uris=[uri], body=body, signature=signature, timestamp=timestamp)


# --- events to the records to poll ------------------------------------------------------------------


def test_events_are_grouped_by_object_each_record_once_and_what_we_do_not_sync_is_skipped():
    events = [
        *EVENTS,
        {"subscriptionType": "contact.propertyChange", "objectId": 101, "propertyName": "lifecyclestage"},
        {"subscriptionType": "company.propertyChange", "objectId": 9},
        {"subscriptionType": "object.propertyChange", "objectTypeId": "0-2", "objectId": "10"},
        {"subscriptionType": "contact.merge", "objectId": 103, "primaryObjectId": 103, "mergedObjectIds": [104, 105]},
        {"subscriptionType": "deal.propertyChange", "objectId": 55},
        {"subscriptionType": "contact.associationChange", "fromObjectId": 101, "toObjectId": 9},
        "not an event",
    ]

    hints, ignored = hints_from_events(events, companies=True)
    assert hints == {"primary": ["101", "102", "103", "104", "105"], "company": ["9", "10"]}
    assert ignored == 3

    hints, ignored = hints_from_events(events, companies=False)  # a contact-only destination
    assert hints == {"primary": ["101", "102", "103", "104", "105"]}
    assert ignored == 5


# --- the receiver over HTTP -------------------------------------------------------------------------


@pytest.fixture
def hubspot(db) -> Destination:
    destination = hubspot_destination(base_url="https://api.hubapi.com", object_model=Destination.ObjectModel.CONTACT_COMPANY)
    destination.set_credentials({"webhook_client_secret": SECRET})
    destination.save()
    return destination


@pytest.fixture
def hubspot_client() -> Client:
    # HubSpot sends no CSRF token: the receiver must not need one.
    return Client(enforce_csrf_checks=True)


def path_of(destination: Destination) -> str:
    return f"/api/crm-webhooks/hubspot/{destination.pk}"


def send(client: Client, path: str, body: bytes, *, timestamp: int | None = None, signature: str | None = None,
         headers: dict | None = None, signed_path: str = ""):
    """POST as HubSpot does: the signature covers the URL the test client addresses (`signed_path`:
    the path and query as HubSpot signs them, when they hold escapes it decodes)."""
    stamp = str(now_ms() if timestamp is None else timestamp)
    if signature is None:
        signature = hubspot_signs(method="POST", uri=f"http://testserver{signed_path or path}", body=body, timestamp=stamp)
    if headers is None:
        headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    return client.post(path, body, content_type="application/json", headers=headers)


def test_a_forged_signature_is_refused_with_401_and_a_json_reason(hubspot, hubspot_client):
    body = json.dumps(EVENTS).encode()
    forged = hubspot_signs(method="POST", uri=f"http://testserver{path_of(hubspot)}", body=body,
                           timestamp=str(now_ms()), secret="guessed-secret")

    answer = send(hubspot_client, path_of(hubspot), body, signature=forged)

    assert answer.status_code == 401
    assert answer.json()["error"] == "bad_signature"


def test_a_body_changed_after_signing_is_refused(hubspot, hubspot_client):
    stamp = now_ms()
    signed = hubspot_signs(method="POST", uri=f"http://testserver{path_of(hubspot)}", body=json.dumps(EVENTS).encode(),
                           timestamp=str(stamp))

    answer = send(hubspot_client, path_of(hubspot), json.dumps(EVENTS[:1]).encode(), timestamp=stamp, signature=signed)

    assert (answer.status_code, answer.json()["error"]) == (401, "bad_signature")


@pytest.mark.parametrize("offset_minutes, code", [(-6, "stale_timestamp"), (6, "future_timestamp")])
def test_a_replayed_or_future_dated_call_is_refused_with_401(hubspot, hubspot_client, offset_minutes, code):
    answer = send(hubspot_client, path_of(hubspot), json.dumps(EVENTS).encode(),
                  timestamp=now_ms() + offset_minutes * MINUTE_MS)

    assert answer.status_code == 401
    assert answer.json()["error"] == code
    assert "5 minutes" in answer.json()["detail"]


@pytest.mark.parametrize("headers", [
    {},
    {"X-HubSpot-Request-Timestamp": "1796000000000"},
    {"X-HubSpot-Signature-v3": "c2lnbmF0dXJl"},
])
def test_a_call_without_the_signature_headers_is_refused_with_401(hubspot, hubspot_client, headers):
    answer = send(hubspot_client, path_of(hubspot), json.dumps(EVENTS).encode(), headers=headers)

    assert answer.status_code == 401
    assert answer.json()["error"] == "missing_signature"


def test_a_malformed_timestamp_is_refused_with_401(hubspot, hubspot_client):
    answer = send(hubspot_client, path_of(hubspot), b"[]",
                  headers={"X-HubSpot-Signature-v3": "c2lnbmF0dXJl", "X-HubSpot-Request-Timestamp": "yesterday"})

    assert (answer.status_code, answer.json()["error"]) == (401, "malformed_timestamp")


def test_a_destination_that_does_not_take_hubspot_webhooks_answers_404(hubspot, hubspot_client):
    salesforce = Destination.objects.create(name="Salesforce", kind=Destination.Kind.SALESFORCE,
                                            auth_method=Destination.Auth.CLIENT_CREDENTIALS,
                                            object_model=Destination.ObjectModel.LEAD, base_url="https://acme.my.salesforce.com")
    salesforce.set_credentials({"webhook_client_secret": SECRET})
    salesforce.save()
    no_secret = hubspot_destination(base_url="https://api.hubapi.com", name="HubSpot without webhooks")
    body = json.dumps(EVENTS).encode()

    for path in (f"/api/crm-webhooks/hubspot/{hubspot.pk + 1000}", path_of(salesforce), path_of(no_secret)):
        answer = send(hubspot_client, path, body)
        assert answer.status_code == 404, path
        assert answer.json()["error"] == "not_found"


@pytest.mark.parametrize("body, code", [(b"[{not json", "malformed_json"), (b'{"objectId": 1}', "invalid_payload")])
def test_a_signed_body_that_is_not_a_json_array_is_refused_with_400(hubspot, hubspot_client, body, code):
    answer = send(hubspot_client, path_of(hubspot), body)

    assert answer.status_code == 400
    assert answer.json()["error"] == code


def test_a_body_over_the_request_size_limit_is_refused_with_413_before_it_is_read(hubspot, hubspot_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    answer = send(hubspot_client, path_of(hubspot), json.dumps(EVENTS * 20).encode())

    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


def test_other_methods_answer_405_in_json(hubspot, hubspot_client):
    answer = hubspot_client.get(path_of(hubspot))

    assert answer.status_code == 405
    assert answer["Allow"] == "POST"
    assert answer.json()["error"] == "method_not_allowed"


# --- a believed call --------------------------------------------------------------------------------


def test_a_valid_call_answers_200_and_marks_its_contacts_to_poll_now(hubspot, hubspot_client):
    events = [*EVENTS, {"subscriptionType": "company.propertyChange", "objectId": 9, "propertyName": "name"},
              {"subscriptionType": "deal.creation", "objectId": 77}]
    path = f"{path_of(hubspot)}?portal=62515&tag=a%3Ab"

    answer = send(hubspot_client, path, json.dumps(events).encode(), signed_path=path.replace("%3A", ":"))

    assert answer.status_code == 200, answer.content
    assert answer.json() == {"status": "accepted", "records": {"primary": 2, "company": 1}, "ignored": 1}
    cursor = SyncCursor.objects.get(destination=hubspot, object=SyncCursor.Object.PRIMARY)
    assert cursor.hinted_ids == ["101", "102"]
    assert cursor.poll_requested_at is not None


def test_a_refused_call_marks_nothing_to_poll(hubspot, hubspot_client):
    body = json.dumps(EVENTS).encode()

    send(hubspot_client, path_of(hubspot), body, timestamp=now_ms() - 6 * MINUTE_MS)
    send(hubspot_client, path_of(hubspot), body, signature="Zm9yZ2Vk")

    assert [cursor.hinted_ids for cursor in SyncCursor.objects.filter(destination=hubspot)] in ([], [[]])


# --- the sandbox HubSpot's signed webhooks, over real HTTP ----------------------------------------


def sandbox_sends(live_server, destination: Destination, *, secret: str = SECRET, **extra) -> dict:
    """Ask the sandbox HubSpot to POST signed events to the receiver, as HubSpot would."""
    target = f"{live_server.url}{path_of(destination)}?portal=2026000&tag=a%3Ab"
    answer = requests.post(f"{live_server.url}/sandbox/_control/hubspot/webhooks/send", timeout=30, json={
        "url": target, "client_secret": secret, **extra,
        "events": [{"subscriptionType": "contact.propertyChange", "objectId": 501, "propertyName": "phone"},
                   {"subscriptionType": "contact.merge", "objectId": 502, "primaryObjectId": 502, "mergedObjectIds": [503]}]})
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.mark.django_db(transaction=True)
def test_the_sandboxs_signed_webhook_is_believed_over_real_http(live_server):
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot")
    destination.set_credentials({"webhook_client_secret": SECRET})
    destination.save()

    sent = sandbox_sends(live_server, destination)

    assert (sent["delivered"], sent["status"]) == (True, 200), sent
    assert json.loads(sent["body"])["records"] == {"primary": 3}
    cursor = SyncCursor.objects.get(destination=destination, object=SyncCursor.Object.PRIMARY)
    assert cursor.hinted_ids == ["501", "502", "503"]


@pytest.mark.django_db(transaction=True)
def test_the_sandboxs_webhook_signed_with_another_secret_or_replayed_is_refused_over_real_http(live_server):
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot")
    destination.set_credentials({"webhook_client_secret": SECRET})
    destination.save()

    forged = sandbox_sends(live_server, destination, secret="not-the-apps-secret")
    replayed = sandbox_sends(live_server, destination, timestamp_ms=now_ms() - 6 * MINUTE_MS)

    assert (forged["status"], json.loads(forged["body"])["error"]) == (401, "bad_signature")
    assert (replayed["status"], json.loads(replayed["body"])["error"]) == (401, "stale_timestamp")
    assert [cursor.hinted_ids for cursor in SyncCursor.objects.filter(destination=destination)] in ([], [[]])


# --- the admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_revops_stores_the_webhook_secret_write_only_and_sees_the_receiver_url(operator):
    answer = operator.post("/admin/delivery/destination/add/",
                           destination_form(token="pat-secret", webhook_client_secret=SECRET))
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    destination = Destination.objects.get()
    assert destination.credentials() == {"token": "pat-secret", "webhook_client_secret": SECRET}

    page = operator.get(f"/admin/delivery/destination/{destination.pk}/change/").content.decode()

    assert f"http://testserver/api/crm-webhooks/hubspot/{destination.pk}" in page
    assert SECRET not in page
