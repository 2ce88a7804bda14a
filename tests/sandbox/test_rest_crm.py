"""The sandbox's generic REST CRM over real HTTP, as the REST recipe connector meets it: leads by
ID and email, batches, the behaviour switches, every auth method, faults and the request log."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
import threading
from typing import Any

from django.utils import timezone
import pytest
import requests

from sandbox.faults import faults_reset, faults_set, sandbox_reset
from sandbox.models import SandboxAccessToken, SandboxRequestLog, SandboxRestRecord, SandboxRestSettings
from tests.stack import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("sandbox.tests_urls")]

TOKEN = {"Authorization": "Bearer sandbox-rest-token"}  # the default auth: bearer
CLIENT = {"client_id": "sandbox-rest-client", "client_secret": "sandbox-rest-secret"}
DEFAULTS = {"create_status": 201, "duplicate_status": 400, "errors_as_200": False, "nested_ids": False,
            "auth": "bearer", "batch_max": 50, "reply_delay_ms": 0}


class RestCrm:
    """An integration calling the REST CRM with the default bearer token."""

    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/sandbox/rest"
        self.headers: dict[str, str] = dict(TOKEN)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("headers", self.headers)
        return requests.request(method, f"{self.url}{path}", timeout=30, **kwargs)

    def create(self, body: Any) -> requests.Response:
        return self.call("POST", "/leads", json=body)

    def switch(self, **values: Any) -> dict[str, Any]:
        answer = requests.put(f"{self.url}/_settings", json=values, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture
def crm(live_server) -> RestCrm:
    return RestCrm(live_server.url)


def error_of(answer: requests.Response) -> tuple[int, str]:
    body = answer.json()
    assert body["error"] is True and isinstance(body["message"], str) and body["message"], body
    return answer.status_code, body["code"]


# --- switches ---------------------------------------------------------------------------------

def test_the_switches_start_at_their_defaults_and_a_put_changes_only_what_it_names(crm):
    assert requests.get(f"{crm.url}/_settings", timeout=30).json() == DEFAULTS

    answer = crm.switch(create_status=200, nested_ids=True)

    assert answer == {**DEFAULTS, "create_status": 200, "nested_ids": True}
    assert requests.get(f"{crm.url}/_settings", timeout=30).json() == answer
    row = SandboxRestSettings.objects.get()
    assert (row.create_status, row.nested_ids, row.auth) == (200, True, "bearer")


@pytest.mark.parametrize("body", [{"create_status": 202}, {"duplicate_status": 422}, {"auth": "magic"},
                                  {"nested_ids": "yes"}, {"batch_max": 0}, {"batch_max": True},
                                  {"reply_delay_ms": -1}, {"colour": "red"}, ["auth", "none"]])
def test_a_wrong_switch_is_refused_whole_and_changes_nothing(crm, body):
    answer = requests.put(f"{crm.url}/_settings", json={"errors_as_200": True, **body} if isinstance(body, dict)
                          else body, timeout=30)

    assert error_of(answer) == (400, "invalid")
    assert requests.get(f"{crm.url}/_settings", timeout=30).json() == DEFAULTS


# --- create and read --------------------------------------------------------------------------

def test_a_create_answers_201_with_the_record_keeping_unknown_fields_and_nulls(crm):
    answer = crm.create({"email": " Ada@Example.COM ", "first_name": "Ada", "score": 7, "phone": None,
                         "tags": ["vip"], "id": "ignored", "created_at": "ignored"})

    assert answer.status_code == 201
    record = answer.json()
    assert record["id"].startswith("L") and record["id"][1:].isdecimal()
    assert {key: record[key] for key in ("email", "first_name", "score", "phone", "tags")} == {
        "email": "ada@example.com", "first_name": "Ada", "score": 7, "phone": None, "tags": ["vip"]}
    assert record["created_at"].endswith("Z") and record["created_at"] != "ignored"
    assert crm.call("GET", f"/leads/{record['id']}").json() == record
    stored = SandboxRestRecord.objects.get()
    assert (stored.email, stored.fields) == ("ada@example.com", {"first_name": "Ada", "score": 7, "phone": None,
                                                                 "tags": ["vip"]})


def test_the_create_status_switch_makes_a_create_answer_200(crm):
    crm.switch(create_status=200)

    assert crm.create({"email": "ada@example.com"}).status_code == 200


@pytest.mark.parametrize("body", [{"first_name": "Ada"}, {"email": None}, {"email": "not an email"}, ["a"], "x"])
def test_a_create_without_a_valid_email_is_refused_400_invalid(crm, body):
    assert error_of(crm.create(body)) == (400, "invalid")
    assert not SandboxRestRecord.objects.exists()


def test_a_body_that_is_not_json_is_refused_400_invalid(crm):
    answer = crm.call("POST", "/leads", data=b"{not json", headers={**TOKEN, "Content-Type": "application/json"})

    assert error_of(answer) == (400, "invalid")


def test_a_missing_record_is_404_not_found(crm):
    for path in ("/leads/L999", "/leads/999", "/leads/Lx"):
        assert error_of(crm.call("GET", path)) == (404, "not_found")
    assert error_of(crm.call("PATCH", "/leads/L999", json={"a": 1})) == (404, "not_found")


# --- duplicates -------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [400, 409])
def test_an_email_already_used_is_refused_with_the_configured_status(crm, status):
    crm.switch(duplicate_status=status)
    crm.create({"email": "ada@example.com"})

    answer = crm.create({"email": "ADA@example.com", "first_name": "Other"})

    assert answer.status_code == status
    assert answer.json() == {"error": True, "code": "duplicate_email", "message": "email already used: ada@example.com"}
    assert SandboxRestRecord.objects.get().fields == {}


def test_with_errors_as_200_refusals_answer_200_with_the_error_body(crm):
    crm.switch(errors_as_200=True, duplicate_status=409)
    crm.create({"email": "ada@example.com"})

    duplicate, invalid = crm.create({"email": "ada@example.com"}), crm.create({"first_name": "No email"})

    assert (duplicate.status_code, duplicate.json()["code"]) == (200, "duplicate_email")
    assert (invalid.status_code, invalid.json()["code"]) == (200, "invalid")
    assert duplicate.json()["error"] is True and "id" not in duplicate.json()
    assert SandboxRestRecord.objects.count() == 1
    assert error_of(crm.call("GET", "/leads/L999")) == (404, "not_found")  # not a refusal of input: stays 404


def test_the_same_new_email_created_at_once_by_several_callers_makes_one_record(crm):
    start = threading.Barrier(4)

    def call(_: int) -> int:
        start.wait(timeout=10)
        return crm.create({"email": "ada@example.com"}).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(call, range(4)))

    assert statuses == [201, 400, 400, 400]
    assert SandboxRestRecord.objects.count() == 1


# --- update -----------------------------------------------------------------------------------

def test_a_patch_sets_the_keys_present_null_included_and_keeps_the_rest(crm):
    lead_id = crm.create({"email": "ada@example.com", "first_name": "Ada", "phone": "+44 1"}).json()["id"]

    answer = crm.call("PATCH", f"/leads/{lead_id}", json={"phone": None, "company": "Engines"})

    assert answer.status_code == 200
    record = answer.json()
    assert (record["first_name"], record["phone"], record["company"], record["email"]) == (
        "Ada", None, "Engines", "ada@example.com")
    assert record["updated_at"] >= record["created_at"]


def test_a_put_replaces_every_field_and_the_email_only_when_given(crm):
    lead_id = crm.create({"email": "ada@example.com", "first_name": "Ada", "phone": "+44 1"}).json()["id"]

    kept = crm.call("PUT", f"/leads/{lead_id}", json={"last_name": "Lovelace"}).json()
    moved = crm.call("PUT", f"/leads/{lead_id}", json={"email": "Countess@example.com"}).json()

    assert (kept["email"], kept["last_name"], "first_name" in kept, "phone" in kept) == (
        "ada@example.com", "Lovelace", False, False)
    assert (moved["email"], "last_name" in moved) == ("countess@example.com", False)


def test_changing_the_email_to_another_records_is_refused_as_a_duplicate(crm):
    crm.switch(duplicate_status=409)
    crm.create({"email": "ada@example.com"})
    grace = crm.create({"email": "grace@example.com"}).json()["id"]

    answer = crm.call("PATCH", f"/leads/{grace}", json={"email": "Ada@example.com"})

    assert error_of(answer) == (409, "duplicate_email")
    assert SandboxRestRecord.objects.filter(email="grace@example.com").exists()


# --- list -------------------------------------------------------------------------------------

def test_leads_are_found_by_email_whatever_its_case(crm):
    ada = crm.create({"email": "ada@example.com"}).json()
    crm.create({"email": "grace@example.com"})

    found = crm.call("GET", "/leads", params={"email": "ADA@example.com"})
    missing = crm.call("GET", "/leads", params={"email": "nobody@example.com"})

    assert found.status_code == 200 and found.json() == {"results": [ada]}
    assert missing.json() == {"results": []}


def test_all_leads_are_listed_a_hundred_to_a_page(crm):
    crm.switch(batch_max=101)
    crm.call("POST", "/leads/batch", json=[{"email": f"lead{i}@example.com"} for i in range(101)])

    pages = [crm.call("GET", "/leads", params={"page": page}).json()["results"] for page in (1, 2, 3)]

    assert [len(page) for page in pages] == [100, 1, 0]
    assert pages[0][0]["email"] == "lead0@example.com" and pages[1][0]["email"] == "lead100@example.com"
    assert error_of(crm.call("GET", "/leads", params={"page": "0"})) == (400, "invalid")


# --- nested IDs -------------------------------------------------------------------------------

def test_nested_ids_wrap_records_lists_and_batch_results(crm):
    crm.switch(nested_ids=True)

    created = crm.create({"email": "ada@example.com"}).json()
    lead_id = created["data"]["lead"]["id"]
    read = crm.call("GET", f"/leads/{lead_id}").json()
    patched = crm.call("PATCH", f"/leads/{lead_id}", json={"first_name": "Ada"}).json()
    listed = crm.call("GET", "/leads", params={"email": "ada@example.com"}).json()
    batch = crm.call("POST", "/leads/batch", json=[{"id": lead_id, "last_name": "Lovelace"}]).json()

    assert set(created) == {"data"} and created["data"]["lead"]["email"] == "ada@example.com"
    assert read == {"data": {"lead": created["data"]["lead"]}}
    assert patched["data"]["lead"]["first_name"] == "Ada"
    assert [item["id"] for item in listed["data"]["items"]] == [lead_id]
    assert batch == {"data": {"results": [{"index": 0, "id": lead_id, "status": "updated"}]}}


# --- batch ------------------------------------------------------------------------------------

def test_a_batch_applies_each_item_alone_and_reports_each_result(crm):
    ada = crm.create({"email": "ada@example.com"}).json()["id"]

    answer = crm.call("POST", "/leads/batch", json=[
        {"email": "grace@example.com", "first_name": "Grace"},  # created
        {"id": ada, "first_name": "Ada", "phone": None},        # updated
        {"email": "ADA@example.com"},                           # duplicate
        {"first_name": "No email"},                             # invalid
        {"id": "L999", "first_name": "Ghost"},                  # not found
        "not an object",                                        # invalid
    ])

    assert answer.status_code == 200
    results = answer.json()["results"]
    grace = SandboxRestRecord.objects.get(email="grace@example.com")
    assert results[:2] == [{"index": 0, "id": f"L{grace.pk}", "status": "created"},
                           {"index": 1, "id": ada, "status": "updated"}]
    assert [(r["index"], r["error"], r["code"]) for r in results[2:]] == [
        (2, True, "duplicate_email"), (3, True, "invalid"), (4, True, "not_found"), (5, True, "invalid")]
    assert results[2]["message"] == "email already used: ada@example.com"
    assert SandboxRestRecord.objects.get(email="ada@example.com").fields == {"first_name": "Ada", "phone": None}
    assert SandboxRestRecord.objects.count() == 2


def test_a_batch_over_batch_max_is_refused_whole(crm):
    crm.switch(batch_max=2)

    answer = crm.call("POST", "/leads/batch", json=[{"email": f"l{i}@example.com"} for i in range(3)])
    not_a_list = crm.call("POST", "/leads/batch", json={"email": "ada@example.com"})

    assert error_of(answer) == (400, "invalid") and "at most 2" in answer.json()["message"]
    assert error_of(not_a_list) == (400, "invalid")
    assert not SandboxRestRecord.objects.exists()


# --- auth -------------------------------------------------------------------------------------

def oauth_token(crm: RestCrm, **form: str) -> requests.Response:
    return requests.post(f"{crm.url}/oauth/token", data=form, timeout=30)


def bearer(answer: requests.Response) -> dict[str, str]:
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["token_type"], body["expires_in"]) == ("bearer", 3600)
    return {"Authorization": f"Bearer {body['access_token']}"}


STATIC_CREDENTIALS = {
    "bearer": ({"headers": TOKEN}, {"headers": {"Authorization": "Bearer not-the-token"}}),
    "header": ({"headers": {"X-Api-Key": "sandbox-rest-key"}}, {"headers": {"X-Api-Key": "not-the-key"}}),
    "basic": ({"auth": ("sandbox-rest-user", "sandbox-rest-password")}, {"auth": ("sandbox-rest-user", "wrong")}),
}


@pytest.mark.parametrize("mode", list(STATIC_CREDENTIALS))
def test_each_static_auth_method_admits_its_credential_and_refuses_a_wrong_one_with_401(crm, mode):
    crm.switch(auth=mode)
    good, wrong = STATIC_CREDENTIALS[mode]

    admitted = crm.call("POST", "/leads", json={"email": "ada@example.com"}, **good)
    refused = crm.call("POST", "/leads", json={"email": "grace@example.com"}, **wrong)
    anonymous = crm.call("GET", "/leads", headers={})

    assert admitted.status_code == 201
    assert error_of(refused) == (401, "unauthorized") and error_of(anonymous) == (401, "unauthorized")
    assert list(SandboxRestRecord.objects.values_list("email", flat=True)) == ["ada@example.com"]


def test_the_api_key_is_also_accepted_as_an_authorization_token_and_other_methods_are_not(crm):
    crm.switch(auth="header")

    assert crm.call("GET", "/leads", headers={"Authorization": "Token sandbox-rest-key"}).status_code == 200
    assert error_of(crm.call("GET", "/leads", headers=TOKEN)) == (401, "unauthorized")


def test_with_auth_none_any_caller_is_admitted(crm):
    crm.switch(auth="none")

    assert crm.call("POST", "/leads", json={"email": "ada@example.com"}, headers={}).status_code == 201


def test_client_credentials_give_a_token_that_the_data_calls_accept(crm):
    crm.switch(auth="oauth_client_credentials")

    auth = bearer(oauth_token(crm, grant_type="client_credentials", **CLIENT))
    # OAuth libraries send the client's credentials with HTTP Basic by default (RFC 6749 2.3.1)
    basic = requests.post(f"{crm.url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(CLIENT["client_id"], CLIENT["client_secret"]), timeout=30)

    assert crm.call("POST", "/leads", json={"email": "ada@example.com"}, headers=auth).status_code == 201
    assert crm.call("GET", "/leads", headers=bearer(basic)).status_code == 200
    assert error_of(crm.call("GET", "/leads", headers=TOKEN)) == (401, "unauthorized")
    refused = oauth_token(crm, grant_type="client_credentials", client_id=CLIENT["client_id"], client_secret="wrong")
    assert error_of(refused) == (401, "unauthorized")


def test_a_refresh_token_gives_a_token_that_the_data_calls_accept(crm):
    crm.switch(auth="oauth_refresh")

    auth = bearer(oauth_token(crm, grant_type="refresh_token", refresh_token="sandbox-rest-refresh", **CLIENT))
    client_credentials = bearer(oauth_token(crm, grant_type="client_credentials", **CLIENT))

    assert crm.call("GET", "/leads", headers=auth).status_code == 200
    # a token of the other flow means the client is set up for another CRM account's auth
    assert error_of(crm.call("GET", "/leads", headers=client_credentials)) == (401, "unauthorized")
    wrong = oauth_token(crm, grant_type="refresh_token", refresh_token="revoked", **CLIENT)
    assert error_of(wrong) == (401, "unauthorized")
    assert error_of(oauth_token(crm, grant_type="password", **CLIENT)) == (400, "invalid")


def test_an_expired_or_never_issued_access_token_is_refused_with_401(crm):
    crm.switch(auth="oauth_client_credentials")
    auth = bearer(oauth_token(crm, grant_type="client_credentials", **CLIENT))
    SandboxAccessToken.objects.filter(crm="rest").update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = crm.call("GET", "/leads", headers=auth)
    unknown = crm.call("GET", "/leads", headers={"Authorization": "Bearer cc-never-issued"})

    assert error_of(expired) == (401, "unauthorized") and "expired" in expired.json()["message"]
    assert error_of(unknown) == (401, "unauthorized")


# --- faults -----------------------------------------------------------------------------------

def test_an_error_fault_answers_5xx_and_applies_nothing(crm):
    faults_set(crm="rest", error_rate=1.0)

    answer = crm.create({"email": "ada@example.com"})

    assert answer.status_code in (500, 502, 503) and error_of(answer)[1] == "server_error"
    assert not SandboxRestRecord.objects.exists()
    assert SandboxRequestLog.objects.get(crm="rest").fault == "error"


def test_a_rate_limit_fault_answers_429_with_retry_after_and_applies_nothing(crm):
    faults_set(crm="rest", rate_limit_rate=1.0)

    answer = crm.call("POST", "/leads/batch", json=[{"email": "ada@example.com"}])

    assert error_of(answer) == (429, "rate_limited") and answer.headers["Retry-After"] == "1"
    assert not SandboxRestRecord.objects.exists()


def test_a_timeout_fault_waits_then_applies_the_write(crm):
    faults_set(crm="rest", timeout_rate=1.0, timeout_seconds=0)

    assert crm.create({"email": "ada@example.com"}).status_code == 201
    assert SandboxRequestLog.objects.get(crm="rest").fault == "timeout"


def test_a_lost_reply_is_applied_although_the_test_server_answers_504_without_a_body(crm):
    faults_set(crm="rest", lost_reply_rate=1.0)

    answer = crm.create({"email": "ada@example.com"})

    assert (answer.status_code, answer.content) == (504, b"")
    assert SandboxRestRecord.objects.filter(email="ada@example.com").exists()
    log = SandboxRequestLog.objects.get(crm="rest")
    assert (log.fault, log.status, log.records) == ("lost_reply", 201, 1)


@pytest.mark.e2e
def test_a_lost_reply_drops_the_connection_after_the_write_under_gunicorn(stack):
    stack.start_web()
    faults_set(crm="rest", lost_reply_rate=1.0)
    leads = f"{stack.base_url}/sandbox/rest/leads"

    with pytest.raises(requests.ConnectionError):
        requests.post(leads, json={"email": "ada@example.com"}, headers=TOKEN, timeout=30)

    assert SandboxRestRecord.objects.filter(email="ada@example.com").exists()
    faults_reset()
    # the client's retry meets the record its lost call made
    assert requests.post(leads, json={"email": "ada@example.com"}, headers=TOKEN, timeout=30).status_code == 400
    found = requests.get(leads, params={"email": "ada@example.com"}, headers=TOKEN, timeout=30).json()
    assert len(found["results"]) == 1


def test_a_reply_delay_leaves_a_client_that_gave_up_with_the_write_applied(crm):
    crm.switch(reply_delay_ms=1500)

    with pytest.raises(requests.Timeout):
        requests.post(f"{crm.url}/leads", json={"email": "ada@example.com"}, headers=TOKEN, timeout=0.5)

    assert SandboxRestRecord.objects.filter(email="ada@example.com").exists()
    # the server logs the call after its delay: wait for it, so no request outlives the test
    wait_for(lambda: SandboxRequestLog.objects.filter(crm="rest", status=201).exists(), timeout=10,
             what="the delayed reply")


# --- request log and helpers ------------------------------------------------------------------

def test_every_data_call_is_logged_for_rest_and_the_helpers_are_not(crm):
    crm.create({"email": "ada@example.com"})
    crm.call("POST", "/leads/batch", json=[{"email": "b@example.com"}, {"email": "c@example.com"}, {"x": 1}])
    crm.call("GET", "/leads", headers={})  # no credentials: logged too
    crm.switch(nested_ids=True)
    oauth_token(crm, grant_type="client_credentials", **CLIENT)
    requests.delete(f"{crm.url}/leads", timeout=30)

    rows = list(SandboxRequestLog.objects.order_by("started_at").values_list("crm", "method", "path", "status",
                                                                              "records", "fault"))
    assert rows == [("rest", "POST", "/sandbox/rest/leads", 201, 1, "none"),
                    ("rest", "POST", "/sandbox/rest/leads/batch", 200, 3, "none"),
                    ("rest", "GET", "/sandbox/rest/leads", 401, 0, "none")]


def test_delete_clears_every_lead_without_credentials(crm):
    crm.create({"email": "ada@example.com"})

    answer = requests.delete(f"{crm.url}/leads", timeout=30)

    assert answer.status_code == 200 and answer.json() == {"deleted": 1}
    assert not SandboxRestRecord.objects.exists()


def test_sandbox_reset_clears_rest_leads_and_keeps_the_switches(crm):
    crm.switch(duplicate_status=409)
    crm.create({"email": "ada@example.com"})

    sandbox_reset()

    assert not SandboxRestRecord.objects.exists()
    assert SandboxRestSettings.objects.get().duplicate_status == 409


def test_unknown_paths_and_methods_answer_json_errors(crm):
    unknown = crm.call("GET", "/contacts")
    not_allowed = crm.call("DELETE", "/leads/L1")
    options = crm.call("OPTIONS", "/leads")

    assert error_of(unknown) == (404, "not_found")
    assert error_of(not_allowed) == (405, "method_not_allowed") and "PATCH" in not_allowed.headers["Allow"]
    assert options.status_code == 200 and options.json() == {"methods": ["GET", "POST"]}
    assert error_of(crm.call("OPTIONS", "/leads", headers={})) == (401, "unauthorized")


# --- admin ------------------------------------------------------------------------------------

@pytest.mark.urls("crmsync.urls")
def test_an_operator_edits_the_switches_and_reads_the_leads_in_the_admin(operator):
    SandboxRestRecord.objects.create(email="ada@example.com", fields={"first_name": "Ada"})

    listed = operator.get("/admin/sandbox/sandboxrestsettings/")
    row = SandboxRestSettings.objects.get()
    saved = operator.post(f"/admin/sandbox/sandboxrestsettings/{row.pk}/change/", {
        "create_status": "200", "duplicate_status": "409", "auth": "basic", "batch_max": "10", "reply_delay_ms": "0"})
    leads = operator.get("/admin/sandbox/sandboxrestrecord/")

    assert listed.status_code == 200 and saved.status_code == 302
    row.refresh_from_db()
    assert (row.create_status, row.duplicate_status, row.auth, row.batch_max) == (200, 409, "basic", 10)
    assert leads.status_code == 200 and b"ada@example.com" in leads.content
