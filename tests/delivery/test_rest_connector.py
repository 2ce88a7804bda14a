"""The REST/JSON connector against a real HTTP receiver that records what it gets."""

from collections import deque
from dataclasses import dataclass, field
import hashlib
import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import socket
import threading

import pytest

from delivery.connectors.base import ConnectorError, Outcome, PushRecord
from delivery.connectors.rest import RestConnector
from delivery.models import Destination, DestinationField
from delivery.session import DestinationSession
from leads.models import Lead

pytestmark = pytest.mark.django_db

SIGNING_SECRET = "whsec-test-0123456789"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each request with the next scripted (status, headers, body); 200 {} when none."""

    url: str
    requests: list[Received] = field(default_factory=list)
    answers: deque = field(default_factory=deque)

    def answer(self, status: int, body=None, headers: dict | None = None) -> None:
        self.answers.append((status, headers or {}, body))


@pytest.fixture
def receiver():
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state.requests.append(Received(self.command, self.path, dict(self.headers.items()), body))
            status, headers, payload = state.answers.popleft() if state.answers else (200, {}, {})
            raw = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = do_OPTIONS = do_HEAD = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/leads"
    yield state
    server.shutdown()
    server.server_close()


MAPPED = ("email", "first_name", "country", "note", "age", "vip", "tags", "score")


def rest_destination(url: str, **fields) -> Destination:
    credentials = fields.pop("credentials", {})
    destination = Destination(name="Webhook", kind=Destination.Kind.REST, base_url=url,
                              auth_method=fields.pop("auth_method", Destination.Auth.NONE),
                              object_model=Destination.ObjectModel.RECORD, lookup_existing=False, **fields)
    if credentials:
        destination.set_credentials(credentials)
    destination.save()
    # The field map the templates may name: the lead's own fields, and attributes for the rest.
    DestinationField.objects.bulk_create(
        DestinationField(destination=destination, source=t if t in ("email", "first_name", "country") else f"attributes.{t}",
                         target=t) for t in MAPPED)
    return destination


def push(destination: Destination, record: PushRecord):
    [result] = RestConnector(destination, DestinationSession(destination)).upsert([record])
    return result


def record(**fields) -> PushRecord:
    lead = Lead.objects.create(email=fields.get("email", "ada@example.com"), first_name="Ada")
    return PushRecord(lead=lead, fields={"email": "ada@example.com", **fields})


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks/leads"  # nothing listens there any more: refused


def test_the_template_is_filled_keeping_json_types(receiver):
    # given
    template = json.dumps({
        "ref": "{{ external_id }}",
        "person": {"email": "{{ email }}", "age": "{{age}}", "vip": "{{ vip }}", "tags": "{{ tags }}"},
        "note": "Lead {{ email }} (age {{ age }})",
        "source": "website",
        "list": ["{{ score }}", 1],
    })
    destination = rest_destination(receiver.url, body_template=template)
    rec = record(age=42, vip=True, tags=["a", "b"], score=9.5)
    receiver.answer(201, {"id": "crm-7"})

    # when
    result = push(destination, rec)

    # then
    [got] = receiver.requests
    assert (got.method, got.path) == ("POST", "/hooks/leads")
    assert got.json() == {
        "ref": rec.external_id,
        "person": {"email": "ada@example.com", "age": 42, "vip": True, "tags": ["a", "b"]},
        "note": "Lead ada@example.com (age 42)",
        "source": "website",
        "list": [9.5, 1],
    }
    assert got.headers["Content-Type"] == "application/json"
    assert (result.outcome, result.crm_record_id, result.http_status) == (Outcome.CREATED, "crm-7", 201)
    assert result.request == {"method": "POST", "url": receiver.url, "body": got.json()}
    assert result.response == {"id": "crm-7"}


def test_without_a_template_it_sends_the_external_id_and_the_fields(receiver):
    destination = rest_destination(receiver.url, http_method="PUT")
    rec = record(first_name="Ada", country="GB")
    receiver.answer(200, {"ok": True})

    result = push(destination, rec)

    [got] = receiver.requests
    assert got.method == "PUT"
    assert got.json() == {"external_id": rec.external_id, "email": "ada@example.com", "first_name": "Ada", "country": "GB"}
    # No id in the answer and no update request: the external ID names the record. It was the
    # create request that was called, whatever the status code.
    assert (result.outcome, result.crm_record_id) == (Outcome.CREATED, rec.external_id)


def test_the_signature_verifies_with_the_secret_over_the_exact_bytes_received(receiver):
    destination = rest_destination(
        receiver.url, auth_method=Destination.Auth.BEARER, signature_header="X-Crmsync-Signature",
        headers={"X-Tenant": "acme"}, credentials={"token": "tok-123", "signing_secret": SIGNING_SECRET})

    push(destination, record(note="Grüße"))

    [got] = receiver.requests
    expected = "sha256=" + hmac.new(SIGNING_SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-Crmsync-Signature"], expected)
    assert got.headers["Authorization"] == "Bearer tok-123"
    assert got.headers["X-Tenant"] == "acme"
    assert got.json()["note"] == "Grüße"


def test_a_retry_of_the_same_body_carries_the_same_idempotency_key(receiver):
    destination = rest_destination(receiver.url)
    rec = record(first_name="Ada")
    receiver.answer(503, {"message": "busy"})
    receiver.answer(201, {"id": "r-1"})

    first = push(destination, rec)
    second = push(destination, rec)
    rec.fields["first_name"] = "Augusta"
    push(destination, rec)

    keys = [r.headers["Idempotency-Key"] for r in receiver.requests]
    assert (first.outcome, second.outcome) == (Outcome.TRANSIENT, Outcome.CREATED)
    assert keys[0] == keys[1] == f"{rec.external_id}:{hashlib.sha256(receiver.requests[0].body).hexdigest()}"
    assert keys[2] != keys[0] and keys[2].startswith(f"{rec.external_id}:")


@pytest.mark.parametrize(("status", "body", "headers", "outcome", "code", "message", "retry_after"), [
    (400, {"message": "email is invalid", "code": "INVALID_EMAIL"}, {}, Outcome.PERMANENT, "INVALID_EMAIL",
     "email is invalid", None),
    (422, {"detail": "unknown field"}, {}, Outcome.PERMANENT, "HTTP_422", "unknown field", None),
    (401, {"error": "invalid_token"}, {}, Outcome.AUTH, "invalid_token", "invalid_token", None),
    (403, b"forbidden", {}, Outcome.AUTH, "HTTP_403", "forbidden", None),
    (429, {"message": "slow down"}, {"Retry-After": "7"}, Outcome.RATE_LIMITED, "HTTP_429", "slow down", 7.0),
    (503, {"message": "maintenance"}, {"Retry-After": "30"}, Outcome.TRANSIENT, "HTTP_503", "maintenance", 30.0),
    (500, b"<html>oops</html>", {}, Outcome.TRANSIENT, "HTTP_500", "<html>oops</html>", None),
    (408, {}, {}, Outcome.TRANSIENT, "HTTP_408", "{}", None),
    (423, {"message": "locked"}, {}, Outcome.TRANSIENT, "HTTP_423", "locked", None),
])
def test_answers_are_classified(receiver, status, body, headers, outcome, code, message, retry_after):
    destination = rest_destination(receiver.url)
    receiver.answer(status, body, headers)

    result = push(destination, record())

    assert (result.outcome, result.http_status, result.error_code) == (outcome, status, code)
    assert (result.error_message, result.retry_after) == (message, retry_after)
    assert not result.succeeded


def test_a_long_error_body_is_truncated(receiver):
    destination = rest_destination(receiver.url)
    receiver.answer(400, {"message": "x" * 5000})

    result = push(destination, record())

    assert result.outcome == Outcome.PERMANENT
    assert len(result.error_message) == 500 and result.error_message.endswith("…")


def test_a_refused_connection_is_transient():
    destination = rest_destination(closed_port_url())

    result = push(destination, record())

    assert (result.outcome, result.error_code, result.http_status) == (Outcome.TRANSIENT, "NETWORK", None)
    assert "ConnectionError" in result.error_message


def test_an_invalid_template_is_a_permanent_error_and_nothing_is_sent(receiver):
    destination = rest_destination(receiver.url, body_template='{"email": "{{ email }}",}')

    result = push(destination, record())

    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "INVALID_RECIPE")
    assert result.error_message.startswith("body_template: not valid JSON")
    assert receiver.requests == []


def test_missing_credentials_are_an_auth_failure_and_nothing_is_sent(receiver):
    destination = rest_destination(receiver.url, auth_method=Destination.Auth.BEARER)

    result = push(destination, record())

    assert (result.outcome, result.error_code) == (Outcome.AUTH, "NO_CREDENTIALS")
    assert receiver.requests == []


def test_each_record_of_a_call_gets_its_own_request(receiver):
    destination = rest_destination(receiver.url)
    receiver.answer(201, {"id": "a"})
    receiver.answer(400, {"message": "bad"})
    first, second = record(email="a@example.com"), record(email="b@example.com")

    results = RestConnector(destination, DestinationSession(destination)).upsert([first, second])

    assert [(r.lead, r.outcome) for r in results] == [(first.lead, Outcome.CREATED), (second.lead, Outcome.PERMANENT)]
    assert [r.json()["email"] for r in receiver.requests] == ["a@example.com", "b@example.com"]


def test_connection_sends_options_with_the_credentials(receiver):
    destination = rest_destination(receiver.url, auth_method=Destination.Auth.BEARER, credentials={"token": "tok"})
    receiver.answer(405, {})

    text = RestConnector(destination, DestinationSession(destination)).test_connection()

    assert text == f"Reachable: {receiver.url} answered OPTIONS with HTTP 405"
    [got] = receiver.requests
    assert (got.method, got.headers["Authorization"]) == ("OPTIONS", "Bearer tok")


@pytest.mark.parametrize("status", [401, 403, 502])
def test_connection_fails_on_refused_credentials_or_a_broken_server(receiver, status):
    destination = rest_destination(receiver.url)
    receiver.answer(status, {"message": "no"})

    with pytest.raises(ConnectorError, match=f"HTTP {status}"):
        RestConnector(destination, DestinationSession(destination)).test_connection()


def test_connection_fails_when_nothing_listens():
    destination = rest_destination(closed_port_url())

    with pytest.raises(ConnectorError, match="not reachable"):
        RestConnector(destination, DestinationSession(destination)).test_connection()


def test_the_schema_is_free_form_and_fields_cannot_be_created(receiver):
    connector = RestConnector(rest_destination(receiver.url), None)

    assert connector.schema().primary == {}
    with pytest.raises(NotImplementedError):
        connector.create_fields([])


# --- the recipe: lookups, answers, tokens ------------------------------------------------------

RECIPE = {
    "create": {"url": "/leads", "body": {"email": "{{ email }}", "first_name": "{{ first_name }}", "country": "{{ country }}"}},
    "update": {"method": "PATCH", "url": "/leads/{{ crm_record_id }}"},
    "lookup": {"url": "/leads?email={{ email }}", "id_path": "results[*].id"},
    "answer": {"exists_status": [400], "exists_match": "already"},
}


def recipe_destination(receiver, recipe=None, **fields) -> Destination:
    base = receiver.url.rsplit("/hooks/leads", 1)[0]
    return rest_destination(base, rest_recipe=recipe or RECIPE, **fields)


def test_a_lookup_that_finds_several_records_sends_the_lead_to_review_with_what_it_found(receiver):
    destination = recipe_destination(receiver)
    receiver.answer(200, {"results": [{"id": "L1", "email": "ada@example.com"}, {"id": "L2", "email": "ada@example.com"}]})
    rec = record()
    rec.lookup_email = "ada@example.com"

    result = push(destination, rec)

    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "AMBIGUOUS_LOOKUP")
    assert result.error_message == "the lookup found 2 records (L1, L2); a person must choose"
    assert [r["id"] for r in result.response["found"]] == ["L1", "L2"]
    assert [r.method for r in receiver.requests] == ["GET"]  # nothing written
    assert receiver.requests[0].path == "/leads?email=ada%40example.com"


def test_an_adopted_record_keeps_what_the_crm_decided_and_gets_the_rest(receiver):
    destination = recipe_destination(receiver)
    receiver.answer(200, {"results": [{"id": "L9", "email": "ada@example.com", "country": "FR"}]})
    receiver.answer(200, {"id": "L9"})
    rec = record(first_name="Ada", country="GB")
    rec.lookup_email, rec.keep_existing = "ada@example.com", frozenset({"country"})

    result = push(destination, rec)

    assert (result.outcome, result.crm_record_id, result.looked_up) == (Outcome.UPDATED, "L9", True)
    assert result.adopted == "record L9 found by email"
    update = receiver.requests[1]
    assert (update.method, update.path) == ("PATCH", "/leads/L9")
    assert update.json() == {"email": "ada@example.com", "first_name": "Ada"}  # country kept as the CRM has it


def test_already_exists_without_a_lookup_request_goes_to_review_with_the_crms_message(receiver):
    recipe = {key: value for key, value in RECIPE.items() if key != "lookup"}
    destination = recipe_destination(receiver, recipe)
    receiver.answer(400, {"code": "duplicate_email", "message": "email already used: ada@example.com"})

    result = push(destination, record())

    assert (result.outcome, result.error_code) == (Outcome.PERMANENT, "duplicate_email")
    assert result.error_message.startswith("email already used: ada@example.com (add a lookup request")


def test_a_create_answered_without_an_id_is_not_a_success_when_updates_need_the_id(receiver):
    destination = recipe_destination(receiver)
    receiver.answer(201, {"ok": True})

    result = push(destination, record())

    assert (result.outcome, result.error_code, result.http_status) == (Outcome.PERMANENT, "NO_RECORD_ID", 201)


def test_a_missing_value_is_sent_as_null_when_the_recipe_says_so(receiver):
    destination = recipe_destination(receiver, {**RECIPE, "missing": "null"})
    receiver.answer(201, {"id": "L1"})

    push(destination, record())  # no country for this lead

    assert receiver.requests[0].json() == {"email": "ada@example.com", "first_name": "Ada", "country": None}


def test_a_changed_fields_update_sends_only_the_changed_fields_even_with_nulls_on(receiver):
    destination = recipe_destination(receiver, {**RECIPE, "missing": "null"})
    receiver.answer(200, {"id": "L1"})
    rec = record(country="DE")
    rec.fields = {"country": "DE"}
    rec.crm_record_id = "L1"

    result = push(destination, rec)

    assert (result.outcome, result.crm_record_id) == (Outcome.UPDATED, "L1")
    assert (receiver.requests[0].path, receiver.requests[0].json()) == ("/leads/L1", {"country": "DE"})


def oauth_recipe_destination(receiver) -> Destination:
    return recipe_destination(receiver, {**RECIPE, "token_url": "/oauth/token", "token_scope": "leads"},
                              auth_method=Destination.Auth.OAUTH2_CLIENT_CREDENTIALS,
                              credentials={"client_id": "cid", "client_secret": "csecret"})


def test_an_oauth2_token_is_fetched_once_kept_and_refreshed_once_when_refused(receiver):
    destination = oauth_recipe_destination(receiver)
    receiver.answer(200, {"access_token": "t1", "expires_in": 3600})
    receiver.answer(201, {"id": "L1"})
    assert push(destination, record(email="a@example.com")).outcome == Outcome.CREATED
    receiver.answer(401, {"message": "expired"})
    receiver.answer(200, {"access_token": "t2", "expires_in": 3600})
    receiver.answer(201, {"id": "L2"})

    result = push(Destination.objects.get(pk=destination.pk), record(email="b@example.com"))

    assert result.outcome == Outcome.CREATED
    token_calls = [r for r in receiver.requests if r.path == "/oauth/token"]
    assert len(token_calls) == 2
    assert token_calls[0].body.decode() == "client_id=cid&client_secret=csecret&grant_type=client_credentials&scope=leads"
    assert [r.headers["Authorization"] for r in receiver.requests if r.path == "/leads"] == ["Bearer t1", "Bearer t1", "Bearer t2"]


def test_a_refused_token_request_is_an_auth_failure_and_a_broken_one_is_transient(receiver):
    destination = oauth_recipe_destination(receiver)
    receiver.answer(400, {"error": "invalid_client", "error_description": "bad secret"})
    refused = push(destination, record(email="a@example.com"))
    receiver.answer(503, {"message": "down"})
    broken = push(destination, record(email="b@example.com"))

    assert (refused.outcome, refused.error_code) == (Outcome.AUTH, "invalid_client")
    assert "the token endpoint refused: bad secret" in refused.error_message
    assert broken.outcome == Outcome.TRANSIENT
    assert all(r.path == "/oauth/token" for r in receiver.requests)  # no data call without a token


def test_an_update_without_an_update_request_sends_the_whole_record_and_keeps_the_record_id(receiver):
    # given: a simple destination (no recipe) that knows the lead's record, and only the country changed
    destination = rest_destination(receiver.url, body_template=json.dumps(
        {"email": "{{ email }}", "first_name": "{{ first_name }}", "country": "{{ country }}"}))
    rec = record(country="DE")
    rec.fields, rec.crm_record_id = {"country": "DE"}, "r-1"
    receiver.answer(201, {"id": "r-2"})

    result = push(destination, rec)

    # then: no blank first name or email, and the record is still r-1
    assert receiver.requests[0].json() == {"email": "ada@example.com", "first_name": "Ada", "country": "DE"}
    assert (result.outcome, result.crm_record_id) == (Outcome.UPDATED, "r-1")
