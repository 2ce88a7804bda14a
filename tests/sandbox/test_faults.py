"""Faults the sandbox CRMs inject per run, reproducible from a seed, and the request log that
tests and the delivery benchmark count calls from."""

from datetime import timedelta
import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone
import pytest
import requests

from sandbox import faults
from sandbox.faults import (
    faults_reset,
    faults_set,
    max_requests_in_any_window,
    request_log_count,
    sandbox_reset,
)
from sandbox.models import (
    SandboxAccessToken,
    SandboxContact,
    SandboxFaults,
    SandboxRateWindow,
    SandboxRequestLog,
    SandboxSalesforceRecord,
)
from sandbox.salesforce.records import WriteOptions, records_upsert

pytestmark = [pytest.mark.django_db, pytest.mark.urls("sandbox.tests_urls")]

CONTACTS = "/sandbox/hubspot/crm/v3/objects/contacts"
UPSERT = f"{CONTACTS}/batch/upsert"
LEADS = "/services/data/v60.0/composite/sobjects/Lead/Crmsync_External_Id__c"
HUBSPOT_AUTH = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}


def hubspot_upsert(client: Client, *keys: str) -> HttpResponse:
    body = {"inputs": [{"id": key, "idProperty": "crmsync_external_id", "properties": {}} for key in keys]}
    return client.post(UPSERT, body, content_type="application/json", headers=HUBSPOT_AUTH)


def salesforce_token(client: Client) -> dict[str, str]:
    answer = client.post("/services/oauth2/token", {"grant_type": "client_credentials",
                                                    "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                                    "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def salesforce_upsert(client: Client, auth: dict[str, str], *keys: str) -> HttpResponse:
    records = [{"attributes": {"type": "Lead"}, "Crmsync_External_Id__c": key, "LastName": "L", "Company": "C"}
               for key in keys]
    return client.patch(LEADS, json.dumps({"allOrNone": False, "records": records}), content_type="application/json",
                        headers=auth)


@pytest.fixture
def slept(monkeypatch) -> list[float]:
    """The waits the faults ask for, recorded instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", waits.append)
    return waits


# --- settings ---------------------------------------------------------------------------------

def test_the_management_command_sets_and_resets_a_crms_faults():
    call_command("sandbox_faults", "--crm", "hubspot", "--error-rate", "0.3", "--rate-limit-rate", "0.1",
                 "--lost-reply-rate", "0.05", "--latency-ms", "0", "--timeout-rate", "0", "--timeout-seconds", "30",
                 "--seed", "7")

    row = SandboxFaults.objects.get(crm="hubspot")
    assert (row.error_rate, row.rate_limit_rate, row.lost_reply_rate, row.seed) == (0.3, 0.1, 0.05, 7)
    call_command("sandbox_faults", "--crm", "hubspot", "--reset")
    assert not SandboxFaults.objects.exists()


def test_rates_adding_up_to_more_than_one_are_refused():
    with pytest.raises(ValidationError):
        faults_set(crm="salesforce", error_rate=0.7, timeout_rate=0.5)
    with pytest.raises(CommandError):
        call_command("sandbox_faults", "--crm", "hubspot", "--error-rate", "1.5")
    assert not SandboxFaults.objects.exists()


# --- each kind --------------------------------------------------------------------------------

def test_a_hubspot_error_fault_answers_5xx_with_hubspots_error_and_applies_nothing(client):
    faults_set(crm="hubspot", error_rate=1.0, seed=7)

    answers = [hubspot_upsert(client, f"lead-{i}") for i in range(6)]

    assert {a.status_code for a in answers} <= {500, 502, 503} and len({a.status_code for a in answers}) > 1
    body = answers[0].json()
    assert body["status"] == "error" and body["category"] and body["correlationId"]
    assert not SandboxContact.objects.exists()
    assert request_log_count(crm="hubspot", fault="error") == 6


def test_a_salesforce_error_fault_answers_5xx_with_salesforces_error_list(client):
    auth = salesforce_token(client)
    faults_set(crm="salesforce", error_rate=1.0, seed=7)

    answer = salesforce_upsert(client, auth, "lead-1")

    assert answer.status_code in (500, 502, 503)
    assert answer.json()[0]["errorCode"] in ("UNKNOWN_EXCEPTION", "SERVER_UNAVAILABLE")
    assert answer["Sforce-Limit-Info"] == "api-usage=1/15000"
    assert not SandboxSalesforceRecord.objects.exists()


def test_a_hubspot_rate_limit_fault_answers_429_rolling_with_retry_after(client):
    faults_set(crm="hubspot", rate_limit_rate=1.0)

    answer = hubspot_upsert(client, "lead-1")

    assert answer.status_code == 429 and answer["Retry-After"] == "1"
    body = answer.json()
    assert (body["errorType"], body["policyName"]) == ("RATE_LIMIT", "TEN_SECONDLY_ROLLING")
    assert not SandboxContact.objects.exists()


def test_a_salesforce_rate_limit_fault_answers_403_request_limit_exceeded(client):
    auth = salesforce_token(client)
    faults_set(crm="salesforce", rate_limit_rate=1.0)

    answer = salesforce_upsert(client, auth, "lead-1")

    assert answer.status_code == 403
    assert answer.json()[0]["errorCode"] == "REQUEST_LIMIT_EXCEEDED"
    assert not SandboxSalesforceRecord.objects.exists()


def test_a_hubspot_lock_fault_answers_423(client):
    faults_set(crm="hubspot", lock_rate=1.0)

    answer = hubspot_upsert(client, "lead-1")

    assert answer.status_code == 423 and answer.json()["category"] == "LOCKED"
    assert not SandboxContact.objects.exists()
    assert request_log_count(crm="hubspot", fault="lock") == 1


def test_salesforce_locks_fail_single_records_the_same_way_for_a_seed(client):
    auth = salesforce_token(client)
    keys = [f"lead-{i}" for i in range(20)]

    def run() -> list[bool]:
        SandboxSalesforceRecord.objects.all().delete()
        faults_set(crm="salesforce", lock_rate=0.5, seed=7)
        results = salesforce_upsert(client, auth, *keys).json()
        return [r["success"] for r in results]

    first, second = run(), run()

    assert first == second and 0 < first.count(False) < 20
    failed = salesforce_upsert(client, auth, "x")  # a later request, another draw
    assert failed.status_code == 200
    assert SandboxSalesforceRecord.objects.count() == first.count(True) + failed.json()[0]["success"]
    faults_set(crm="salesforce", lock_rate=1.0)
    assert salesforce_upsert(client, auth, "y").json()[0]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert request_log_count(crm="salesforce", fault="lock") >= 3


def test_a_timeout_fault_waits_before_processing_then_applies_the_write(client, slept):
    faults_set(crm="hubspot", timeout_rate=1.0, timeout_seconds=12.5)

    answer = hubspot_upsert(client, "lead-1")

    assert slept == [12.5]
    assert answer.status_code == 200 and SandboxContact.objects.count() == 1
    assert request_log_count(crm="hubspot", fault="timeout") == 1


def test_latency_is_added_to_every_data_call_but_not_to_token_calls(client, slept):
    faults_set(crm="salesforce", latency_ms=250)

    auth = salesforce_token(client)
    salesforce_upsert(client, auth, "lead-1")

    assert slept == [0.25]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("crm", ["hubspot", "salesforce"])
def test_a_lost_reply_is_committed_and_answered_504_without_a_body_under_the_test_client(crm):
    client = Client()
    auth = salesforce_token(client) if crm == "salesforce" else None
    faults_set(crm=crm, lost_reply_rate=1.0)

    answer = hubspot_upsert(client, "lead-1") if crm == "hubspot" else salesforce_upsert(client, auth, "lead-1")

    assert (answer.status_code, answer.content) == (504, b"")
    model = SandboxContact if crm == "hubspot" else SandboxSalesforceRecord
    assert model.objects.count() == 1
    log = SandboxRequestLog.objects.get(crm=crm)
    assert (log.fault, log.status, log.records) == ("lost_reply", 200, 1)


def test_token_endpoints_are_never_faulted(client):
    faults_set(crm="hubspot", error_rate=1.0)
    faults_set(crm="salesforce", error_rate=1.0)

    salesforce = salesforce_token(client)
    hubspot = client.post("/sandbox/hubspot/oauth/v3/token", {
        "grant_type": "refresh_token", "client_id": settings.SANDBOX_HUBSPOT_CLIENT_ID,
        "client_secret": settings.SANDBOX_HUBSPOT_CLIENT_SECRET, "refresh_token": settings.SANDBOX_HUBSPOT_REFRESH_TOKEN})

    assert salesforce["Authorization"].startswith("Bearer ") and hubspot.status_code == 200
    assert request_log_count() == 0


# --- reproducibility --------------------------------------------------------------------------

def statuses_with_seed(client: Client, seed: int) -> list[int]:
    faults_set(crm="hubspot", error_rate=0.3, rate_limit_rate=0.2, lock_rate=0.1, seed=seed)
    return [hubspot_upsert(client, f"lead-{i}").status_code for i in range(20)]


def test_the_same_seed_replays_the_same_faults_and_another_seed_does_not(client):
    first = statuses_with_seed(client, 7)
    again = statuses_with_seed(client, 7)
    other = statuses_with_seed(client, 8)

    assert first == again
    assert other != first
    assert 200 in first and 429 in first and {500, 502, 503} & set(first)


def test_without_faults_no_request_is_refused(client):
    faults_set(crm="hubspot", error_rate=1.0)
    faults_reset(crm="hubspot")

    assert hubspot_upsert(client, "lead-1").status_code == 200


# --- request log ------------------------------------------------------------------------------

def test_every_data_request_is_logged_with_its_records_and_status(client):
    auth = salesforce_token(client)
    hubspot_upsert(client, "a", "b", "c")
    client.get(CONTACTS, headers=HUBSPOT_AUTH)
    client.get(CONTACTS)  # no token: logged too
    salesforce_upsert(client, auth, "l-1", "l-2")

    rows = list(SandboxRequestLog.objects.order_by("started_at").values_list("crm", "method", "status", "records", "fault"))
    assert rows == [("hubspot", "POST", 200, 3, "none"), ("hubspot", "GET", 200, 0, "none"),
                    ("hubspot", "GET", 401, 0, "none"), ("salesforce", "PATCH", 200, 2, "none")]
    assert (request_log_count(crm="hubspot"), request_log_count(crm="salesforce"), request_log_count()) == (3, 1, 4)
    assert request_log_count(crm="hubspot", method="POST") == 1


def test_the_most_requests_in_any_window_slides_over_the_log():
    start = timezone.now()
    offsets_ms = [0, 100, 9_000, 9_999, 10_000, 10_050, 30_000]
    SandboxRequestLog.objects.bulk_create([
        SandboxRequestLog(crm="hubspot", method="POST", path=UPSERT, status=200, started_at=start + timedelta(milliseconds=ms))
        for ms in offsets_ms])

    # 100, 9000, 9999, 10000, 10050 start within 10 s of each other (less than 10,000 ms apart)
    assert max_requests_in_any_window(crm="hubspot", window_ms=10_000) == 5
    assert max_requests_in_any_window(crm="hubspot", window_ms=1) == 1
    assert max_requests_in_any_window(crm="salesforce", window_ms=10_000) == 0


def test_sandbox_reset_clears_records_tokens_logs_counters_and_faults(client):
    auth = salesforce_token(client)
    hubspot_upsert(client, "a")
    salesforce_upsert(client, auth, "l-1")
    faults_set(crm="hubspot", latency_ms=1)

    sandbox_reset()

    for model in (SandboxContact, SandboxSalesforceRecord, SandboxAccessToken, SandboxRequestLog, SandboxRateWindow,
                  SandboxFaults):
        assert not model.objects.exists(), model
    assert hubspot_upsert(client, "a").json()["results"][0]["new"] is True


# --- over real HTTP ---------------------------------------------------------------------------

@pytest.mark.e2e
def test_a_lost_reply_drops_the_connection_after_the_write_under_gunicorn(stack):
    stack.start_web()
    faults_set(crm="hubspot", lost_reply_rate=1.0)
    body = {"inputs": [{"id": "lead-1", "idProperty": "crmsync_external_id", "properties": {"firstname": "Ada"}}]}

    with pytest.raises(requests.ConnectionError):
        requests.post(f"{stack.sandbox_url}/crm/v3/objects/contacts/batch/upsert", json=body, headers=HUBSPOT_AUTH,
                      timeout=30)

    assert SandboxContact.objects.get().properties["firstname"] == "Ada"
    assert SandboxRequestLog.objects.get().fault == "lost_reply"
    faults_reset()
    again = requests.post(f"{stack.sandbox_url}/crm/v3/objects/contacts/batch/upsert", json=body, headers=HUBSPOT_AUTH,
                          timeout=30)
    assert again.status_code == 200 and again.json()["results"][0]["new"] is False


# --- admin ------------------------------------------------------------------------------------

@pytest.mark.urls("crmsync.urls")
def test_an_operator_edits_faults_in_the_admin_and_reads_the_log_and_records(operator):
    records_upsert(sobject_name="Lead", key_name="Crmsync_External_Id__c", options=WriteOptions(),
                   body={"records": [{"Crmsync_External_Id__c": "l-1", "LastName": "L", "Company": "C"}]})
    SandboxRequestLog.objects.create(crm="salesforce", method="PATCH", path=LEADS, status=200, records=1)

    changed = operator.post("/admin/sandbox/sandboxfaults/add/", {
        "crm": "salesforce", "seed": "7", "error_rate": "0.2", "rate_limit_rate": "0", "lock_rate": "0.1",
        "timeout_rate": "0", "timeout_seconds": "30", "lost_reply_rate": "0", "latency_ms": "0"})
    too_much = operator.post("/admin/sandbox/sandboxfaults/add/", {
        "crm": "hubspot", "seed": "0", "error_rate": "0.8", "rate_limit_rate": "0.5", "lock_rate": "0",
        "timeout_rate": "0", "timeout_seconds": "30", "lost_reply_rate": "0", "latency_ms": "0"})

    assert changed.status_code == 302 and SandboxFaults.objects.get().error_rate == 0.2
    assert too_much.status_code == 200 and SandboxFaults.objects.count() == 1  # the form shows the error
    for page in ("sandboxrequestlog", "sandboxsalesforcerecord", "sandboxsalesforcefield", "sandboxcompany",
                 "sandboxassociation", "sandboxaccesstoken", "sandboxsettings"):
        assert operator.get(f"/admin/sandbox/{page}/").status_code == 200, page
    record = SandboxSalesforceRecord.objects.get()
    assert operator.get(f"/admin/sandbox/sandboxsalesforcerecord/{record.pk}/change/").status_code == 200
    assert operator.get("/admin/sandbox/sandboxrequestlog/add/").status_code == 403
