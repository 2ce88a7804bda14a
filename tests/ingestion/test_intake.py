"""The gatekeeper, per preset, through the real endpoint: who may send, what is stored, what is
refused and counted. Bodies come from tests/fixtures/webhooks/ where a provider published
one, else they are built from the documented formats."""

from datetime import timedelta
import json
import re
import time
from urllib.parse import urlencode

from django.core.exceptions import ValidationError
from django.test.client import encode_multipart
from django.utils import timezone
import pytest

from ingestion import signatures
from ingestion.credentials import source_secret_add
from ingestion.models import SourceSecret, Submission
from ingestion.services import idempotency_keys_prune
from tests.factories import source_with_secret
from tests.fixtures import WEBHOOKS

pytestmark = pytest.mark.django_db

FIXTURES = WEBHOOKS
SECRET = "whsec_test_secret_one"
ROTATED = "whsec_test_secret_two"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def url(source) -> str:
    return f"/api/v1/sources/{source.slug}/submissions"


def tally_body() -> bytes:
    return json.dumps({"eventId": "a4cb511e-d513-4fa5-baee-b815d718dfd1", "eventType": "FORM_RESPONSE",
                       "createdAt": "2026-11-23T10:00:00.000Z",
                       "data": {"responseId": "2wgx4n", "formId": "VwbNEw", "fields": [
                           {"key": "question_3EKz4n", "label": "Email", "type": "INPUT_EMAIL", "value": "zoë@example.com"}]}}).encode()


def webflow_body() -> bytes:
    return json.dumps({"triggerType": "form_submission", "payload": {
        "name": "Contact", "siteId": "65427cf400e02b306eaa049c", "id": "6321ca84df3949bfc6752327",
        "data": {"Email": "ada@example.com", "Name": "Ada"}, "submittedAt": "2026-11-23T10:00:00.000Z"}}).encode()


def calendly_body() -> bytes:
    return json.dumps({"event": "invitee.created", "created_at": "2026-11-23T10:00:00.000000Z", "payload": {
        "uri": "https://api.calendly.com/scheduled_events/ABC/invitees/DEF", "email": "ada@example.com",
        "name": "Ada Lovelace", "tracking": {"utm_source": "newsletter"}}}).encode()


SIGNED = {
    # kind: (body, expected idempotency key)
    "stripe": (fixture("stripe-checkout.session.completed.json"), json.loads(fixture("stripe-checkout.session.completed.json"))["id"]),
    "meta_lead_ads": (fixture("meta-leadgen-webhook.fbsamples.json"), None),
    "typeform": (fixture("typeform-form_response.json"), json.loads(fixture("typeform-form_response.json"))["event_id"]),
    "tally": (tally_body(), "a4cb511e-d513-4fa5-baee-b815d718dfd1"),
    "webflow": (webflow_body(), "6321ca84df3949bfc6752327"),
    "calendly": (calendly_body(), "https://api.calendly.com/scheduled_events/ABC/invitees/DEF"),
}


def headers_for(kind: str, body: bytes, secret: str, timestamp: float | None = None) -> dict[str, str]:
    scheme = {"meta_lead_ads": "meta"}.get(kind, kind)
    signed = signatures.sign(scheme, secret=secret, body=body, timestamp=timestamp)
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in signed.items()}


def post_signed(client, source, body: bytes, **headers):
    return client.post(url(source), body, content_type="application/json", **headers)


@pytest.mark.parametrize("kind", SIGNED)
def test_a_valid_provider_signature_is_accepted_and_keyed_by_the_providers_event_id(client, kind):
    source, _ = source_with_secret(kind=kind, secret=SECRET)
    body, key = SIGNED[kind]

    answer = post_signed(client, source, body, **headers_for(kind, body, SECRET))

    assert answer.status_code == 202, answer.json()
    submission = Submission.objects.get()
    assert bytes(submission.raw_body) == body
    if key:
        assert submission.idempotency_key == key
    assert not any("signature" in name.lower() for name in submission.headers)


@pytest.mark.parametrize("kind", SIGNED)
@pytest.mark.parametrize("tamper", ["wrong_secret", "altered_body", "missing_header", "expired"])
def test_a_bad_signature_is_refused_counted_and_not_stored(client, kind, tamper):
    source, _ = source_with_secret(kind=kind, secret=SECRET)
    body, _ = SIGNED[kind]
    if tamper == "expired" and kind not in ("stripe", "webflow", "calendly"):
        pytest.skip(f"{kind} signs no timestamp")
    headers = {
        "wrong_secret": lambda: headers_for(kind, body, "not-the-secret"),
        "altered_body": lambda: headers_for(kind, body, SECRET),
        "missing_header": lambda: {},
        "expired": lambda: headers_for(kind, body, SECRET, timestamp=time.time() - 3600),
    }[tamper]()
    sent = body.replace(b"}", b" }", 1) if tamper == "altered_body" else body

    answer = post_signed(client, source, sent, **headers)

    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized" and answer.json()["detail"]
    assert not Submission.objects.exists()
    assert source.counters.get(outcome="refused_auth").count == 1


@pytest.mark.parametrize("kind", SIGNED)
def test_a_rotated_secret_is_accepted_beside_the_old_one(client, kind):
    source, _ = source_with_secret(kind=kind, secret=SECRET)
    source_secret_add(source=source, purpose=SourceSecret.Purpose.SIGNING, value=ROTATED)
    body, _ = SIGNED[kind]

    assert post_signed(client, source, body, **headers_for(kind, body, ROTATED)).status_code == 202


def test_a_third_active_secret_is_refused_until_one_is_retired():
    source, _ = source_with_secret(kind="stripe", secret=SECRET)
    source_secret_add(source=source, purpose=SourceSecret.Purpose.SIGNING, value=ROTATED)

    with pytest.raises(ValidationError, match="already has 2 active"):
        source_secret_add(source=source, purpose=SourceSecret.Purpose.SIGNING, value="third")


def test_generic_hmac_follows_the_sources_configuration(client):
    source, _ = source_with_secret(kind="json_webhook", secret=SECRET, auth="generic_hmac", hmac_header="X-Hook-Sig",
                                   hmac_encoding="base64", hmac_prefix="sha256=", hmac_timestamp_header="X-Hook-Ts")
    body = b'{"email": "ada@example.com"}'
    signed = signatures.sign("generic_hmac", secret=SECRET, body=body, options=source.hmac_options())
    headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed.items()}

    assert post_signed(client, source, body, **headers).status_code == 202
    assert post_signed(client, source, body + b" ", **headers).status_code == 401


def test_an_api_key_is_shown_once_stored_hashed_and_checked(client):
    source, key = source_with_secret(kind="json_webhook")
    stored = SourceSecret.objects.get()

    assert key.startswith("csk_") and key not in (stored.value_hash, stored.value_encrypted)
    assert post_signed(client, source, b'{"a": 1}', HTTP_X_API_KEY=key).status_code == 202
    assert post_signed(client, source, b'{"a": 1}', HTTP_X_API_KEY=key + "x").status_code == 401
    assert post_signed(client, source, b'{"a": 1}').json()["detail"] == "Missing api key."


@pytest.mark.parametrize("kind", ["gravity_forms", "jotform", "unbounce"])
def test_senders_that_cannot_sign_use_a_url_token(client, kind):
    source, token = source_with_secret(kind=kind)
    body = urlencode({"id": "1", "submissionID": "1", "rawRequest": "{}", "data.json": "{}"})

    good = client.post(f"{url(source)}?token={token}", body, content_type="application/x-www-form-urlencoded")
    bad = client.post(f"{url(source)}?token=nope", body, content_type="application/x-www-form-urlencoded")

    assert (good.status_code, bad.status_code) == (202, 401)


def test_meta_verification_handshake_echoes_the_challenge_only_for_our_token(client):
    source, _ = source_with_secret(kind="meta_lead_ads", secret=SECRET)
    source_secret_add(source=source, purpose=SourceSecret.Purpose.META_VERIFY, value="my-verify-token")

    ok = client.get(url(source), {"hub.mode": "subscribe", "hub.verify_token": "my-verify-token", "hub.challenge": "1158201444"})
    wrong = client.get(url(source), {"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})

    assert (ok.status_code, ok.content, ok["Content-Type"]) == (200, b"1158201444", "text/plain")
    assert wrong.status_code == 403 and wrong.json()["error"] == "verification_failed"


def test_get_on_a_non_meta_source_is_405(client):
    source, _ = source_with_secret(kind="stripe", secret=SECRET)

    assert client.get(url(source)).status_code == 405


def test_a_meta_notification_batching_leads_is_stored_as_one_submission_per_lead(client):
    source, _ = source_with_secret(kind="meta_lead_ads", secret=SECRET)
    body = json.dumps({"object": "page", "entry": [{"id": "1", "time": 1, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": "111"}}, {"field": "leadgen", "value": {"leadgen_id": "222"}}]}]}).encode()

    answer = post_signed(client, source, body, **headers_for("meta_lead_ads", body, SECRET))

    first, second = Submission.objects.order_by("pk")
    assert answer.status_code == 202
    assert answer.json() == {"id": first.pk, "ids": [first.pk, second.pk], "status": "accepted"}
    assert (first.idempotency_key, second.idempotency_key) == ("111", "222")
    assert [c["value"] for e in second.payload["entry"] for c in e["changes"]] == [{"leadgen_id": "222"}]
    assert bytes(first.raw_body) == bytes(second.raw_body) == body  # each keeps the request verbatim
    assert second.notes == ["one of 2 leads in one Meta notification"]


def test_a_providers_retry_gets_the_first_answer_and_is_counted_as_duplicate(client):
    source, _ = source_with_secret(kind="stripe", secret=SECRET)
    body, _ = SIGNED["stripe"]

    first = post_signed(client, source, body, **headers_for("stripe", body, SECRET))
    retry = post_signed(client, source, body, **headers_for("stripe", body, SECRET, timestamp=time.time() + 5))

    assert (retry.status_code, retry.json()) == (first.status_code, first.json())
    assert Submission.objects.count() == 1
    assert source.counters.get(outcome="duplicate").count == 1


def test_idempotency_keys_are_forgotten_after_the_retention_period(client):
    source, _ = source_with_secret(kind="stripe", secret=SECRET)
    body, _ = SIGNED["stripe"]
    post_signed(client, source, body, **headers_for("stripe", body, SECRET))

    assert idempotency_keys_prune(older_than_days=7) == 0
    assert idempotency_keys_prune(older_than_days=0) == 1
    assert post_signed(client, source, body, **headers_for("stripe", body, SECRET)).status_code == 202
    assert Submission.objects.count() == 2


def test_jotform_multipart_answers_are_parsed_and_uploaded_files_dropped(client):
    source, token = source_with_secret(kind="jotform")
    raw = json.dumps({"q3_email": "ada@example.com", "q4_name": {"first": "Ada", "last": "Lovelace"}})
    from django.core.files.uploadedfile import SimpleUploadedFile

    answer = client.post(f"{url(source)}?token={token}", {
        "submissionID": "5864112873331", "formID": "2314", "rawRequest": raw,
        "cv": SimpleUploadedFile("cv.pdf", b"%PDF-1.4 secret", content_type="application/pdf"),
    })

    assert answer.status_code == 202
    submission = Submission.objects.get()
    assert submission.payload["rawRequest"]["q4_name"] == {"first": "Ada", "last": "Lovelace"}
    assert submission.idempotency_key == "5864112873331"
    assert "cv" not in submission.payload and submission.notes == ["dropped uploaded file cv=cv.pdf"]


def test_unbounce_data_json_is_parsed_from_the_published_fixture(client):
    source, token = source_with_secret(kind="unbounce")
    captured = json.loads(fixture("unbounce-form_submit.urlencoded.json"))

    answer = client.post(f"{url(source)}?token={token}", captured["raw_body"], content_type="application/x-www-form-urlencoded")

    assert answer.status_code == 202
    assert Submission.objects.get().payload["data.json"] == captured["data_json_parsed"]


def test_a_broken_embedded_json_string_is_a_400_not_a_crash(client):
    source, token = source_with_secret(kind="jotform")

    answer = client.post(f"{url(source)}?token={token}", {"rawRequest": "{not json"})

    assert answer.status_code == 400 and answer.json()["error"] == "malformed_json"
    assert "rawRequest" in answer.json()["detail"]


def test_a_content_type_the_preset_does_not_send_is_415(client):
    source, _ = source_with_secret(kind="stripe", secret=SECRET)
    body = b"a=1"

    answer = client.post(url(source), body, content_type="application/x-www-form-urlencoded",
                         **headers_for("stripe", body, SECRET))

    assert answer.status_code == 415 and "application/json" in answer.json()["detail"]


# --- Public web forms -------------------------------------------------------------------


def test_a_filled_honeypot_is_answered_202_stored_as_spam_and_never_processed(client):
    source, _ = source_with_secret(kind="web_form")

    answer = client.post(url(source), {"email": "bot@example.com", "_gotcha": "http://spam.example"})

    assert answer.status_code == 202
    submission = Submission.objects.get()
    assert submission.status == Submission.Status.SPAM
    from ingestion.services import submissions_claim

    assert submissions_claim(requeue_after_seconds=0) == []  # no worker will ever process it


def test_cors_preflight_allows_listed_origins_only(client):
    source, _ = source_with_secret(kind="web_form", allowed_origins="https://www.example.com\nhttps://shop.example.com")

    allowed = client.options(url(source), HTTP_ORIGIN="https://shop.example.com",
                             HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
    refused = client.options(url(source), HTTP_ORIGIN="https://evil.example")

    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert "POST" in allowed["Access-Control-Allow-Methods"]
    assert "Content-Type" in allowed["Access-Control-Allow-Headers"]
    assert refused.status_code == 403 and refused.json()["error"] == "origin_not_allowed"


def test_a_post_from_a_listed_origin_carries_the_cors_header_and_others_are_refused(client):
    source, _ = source_with_secret(kind="web_form", allowed_origins="https://www.example.com")

    ok = client.post(url(source), {"email": "a@b.co"}, HTTP_ORIGIN="https://www.example.com")
    bad = client.post(url(source), {"email": "a@b.co"}, HTTP_ORIGIN="https://evil.example")

    assert ok.status_code == 202 and ok["Access-Control-Allow-Origin"] == "https://www.example.com"
    assert bad.status_code == 403
    assert source.counters.get(outcome="bad_origin").count == 1


def test_a_form_with_no_listed_origins_accepts_any(client):
    source, _ = source_with_secret(kind="web_form")

    answer = client.options(url(source), HTTP_ORIGIN="https://anywhere.example")

    assert answer.status_code == 204 and answer["Access-Control-Allow-Origin"] == "*"


def test_one_ip_over_its_limit_gets_429_with_retry_after(client):
    source, _ = source_with_secret(kind="web_form", ip_limit_per_minute=2)

    answers = [client.post(url(source), {"email": f"a{i}@b.co"}, REMOTE_ADDR="198.51.100.7") for i in range(3)]
    other_ip = client.post(url(source), {"email": "c@b.co"}, REMOTE_ADDR="198.51.100.8")

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert 1 <= int(answers[2]["Retry-After"]) <= 60
    assert answers[2].json()["error"] == "throttled"
    assert other_ip.status_code == 202
    assert source.counters.get(outcome="throttled").count == 1


def test_the_whole_form_has_a_limit_too(client):
    source, _ = source_with_secret(kind="web_form", source_limit_per_minute=1)

    first = client.post(url(source), {"email": "a@b.co"}, REMOTE_ADDR="198.51.100.1")
    second = client.post(url(source), {"email": "b@b.co"}, REMOTE_ADDR="198.51.100.2")

    assert (first.status_code, second.status_code) == (202, 429)


def test_a_misconfigured_source_is_refused_when_saved():
    source, _ = source_with_secret(kind="unbounce")
    source.auth = "signature"
    source.allowed_origins = "www.example.com"

    with pytest.raises(ValidationError) as error:
        source.full_clean()
    assert set(error.value.message_dict) == {"auth"}


@pytest.mark.parametrize("origin", ["www.example.com", "https://www.example.com/contact", "ftp://example.com"])
def test_an_allowed_origin_that_is_not_an_origin_is_a_form_error(origin):
    source, _ = source_with_secret(kind="web_form")
    source.allowed_origins = f"https://ok.example.com\n{origin}"

    with pytest.raises(ValidationError) as error:
        source.full_clean()
    assert error.value.message_dict["allowed_origins"] == [f"'{origin}' is not an origin like https://www.example.com."]


def test_what_is_stored_reads_back_through_the_orm_exactly_as_received(client):
    """The intake writes its row with one hand-built INSERT; every column must read back as the
    ORM would have written it, on SQLite and on PostgreSQL."""
    source, key = source_with_secret(kind="json_webhook")
    body = json.dumps({"email": "ada@example.com", "tags": ["a", "b"], "n": 1.5, "nested": {"ü": None}}).encode()
    before = time.time()
    answer = client.post(url(source), body, content_type="application/json", headers={
        "X-API-Key": key, "User-Agent": "curl/8.5", "Idempotency-Key": "k-1", "X-Custom": "kept",
        "Cookie": "session=secret"}, REMOTE_ADDR="203.0.113.9")
    assert answer.status_code == 202

    stored = Submission.objects.get(pk=answer.json()["id"])
    assert bytes(stored.raw_body) == body
    assert stored.payload == json.loads(body)
    assert stored.source == source and stored.status == Submission.Status.RECEIVED
    assert stored.content_type == "application/json" and stored.user_agent == "curl/8.5"
    assert stored.remote_addr == "203.0.113.9" and stored.idempotency_key == "k-1"
    assert stored.headers["X-Custom"] == "kept" and "Cookie" not in stored.headers and "X-Api-Key" not in stored.headers
    assert before - 1 <= stored.received_at.timestamp() <= time.time() + 1 and stored.received_at.tzinfo is not None
    assert (stored.reasons, stored.notes, stored.enrichment, stored.fetch_attempts) == ([], [], {}, 0)
    assert stored.queued_at is None and stored.lead is None and stored.mapping_version is None
    # The worker finds it: it is claimable like any received submission.
    assert Submission.objects.filter(status="received", queued_at__isnull=True, pk=stored.pk).exists()


# --- Content-hash idempotency, for senders that give no event ID ------------------------------


def post_unbounce(client, source, token, body: str):
    return client.post(f"{url(source)}?token={token}", body, content_type="application/x-www-form-urlencoded")


def unbounce_body() -> str:
    return json.loads(fixture("unbounce-form_submit.urlencoded.json"))["raw_body"]


def test_unbounce_sending_the_same_form_twice_makes_one_submission(client):
    source, token = source_with_secret(kind="unbounce")

    first = post_unbounce(client, source, token, unbounce_body())
    again = post_unbounce(client, source, token, unbounce_body())

    assert (again.status_code, again.json()) == (first.status_code, first.json()) == (202, first.json())
    stored = Submission.objects.get()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", stored.idempotency_key)
    assert source.counters.get(outcome="duplicate").count == 1


def test_the_same_content_after_its_window_is_a_new_submission(client):
    source, token = source_with_secret(kind="unbounce")
    first = post_unbounce(client, source, token, unbounce_body()).json()["id"]
    Submission.objects.filter(pk=first).update(received_at=timezone.now() - timedelta(hours=24, seconds=1))

    later = post_unbounce(client, source, token, unbounce_body())

    assert later.status_code == 202 and later.json()["id"] != first
    assert Submission.objects.get(pk=first).idempotency_key is None  # given up to the new one
    assert post_unbounce(client, source, token, unbounce_body()).json()["id"] == later.json()["id"]


def test_content_hash_keys_are_pruned_after_their_window_and_event_ids_after_the_retention(client):
    unbounce, token = source_with_secret(kind="unbounce")
    stripe, _ = source_with_secret(kind="stripe", secret=SECRET)
    hashed = post_unbounce(client, unbounce, token, unbounce_body()).json()["id"]
    body, _ = SIGNED["stripe"]
    keyed = post_signed(client, stripe, body, **headers_for("stripe", body, SECRET)).json()["id"]
    Submission.objects.update(received_at=timezone.now() - timedelta(hours=25))

    assert idempotency_keys_prune() == 1

    assert Submission.objects.get(pk=hashed).idempotency_key is None
    assert Submission.objects.get(pk=keyed).idempotency_key == SIGNED["stripe"][1]


def test_a_web_form_posted_twice_without_a_key_is_one_submission_even_as_multipart(client):
    source, _ = source_with_secret(kind="web_form")
    fields = {"email": "ada@example.com", "interest": ["a", "b"]}

    first = client.post(url(source), encode_multipart("one", fields), content_type="multipart/form-data; boundary=one")
    again = client.post(url(source), encode_multipart("two", fields), content_type="multipart/form-data; boundary=two")
    other = client.post(url(source), {"email": "grace@example.com"})

    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert Submission.objects.count() == 2


def test_a_web_form_repeat_after_an_hour_is_news(client):
    source, _ = source_with_secret(kind="web_form")
    first = client.post(url(source), {"email": "ada@example.com"}).json()["id"]
    Submission.objects.filter(pk=first).update(received_at=timezone.now() - timedelta(minutes=61))

    assert client.post(url(source), {"email": "ada@example.com"}).json()["id"] != first


def test_jotform_falls_back_to_a_content_hash_only_without_its_submission_id(client):
    source, token = source_with_secret(kind="jotform")

    with_id = client.post(f"{url(source)}?token={token}", {"submissionID": "58", "rawRequest": "{}"})
    without = client.post(f"{url(source)}?token={token}", {"rawRequest": '{"q3_email": "a@b.co"}'})

    assert Submission.objects.get(pk=with_id.json()["id"]).idempotency_key == "58"
    assert Submission.objects.get(pk=without.json()["id"]).idempotency_key.startswith("sha256:")


def test_a_generic_webhook_without_a_key_is_never_deduplicated_by_content(client):
    source, key = source_with_secret(kind="json_webhook")

    for _ in range(2):
        post_signed(client, source, b'{"email": "a@b.co"}', HTTP_X_API_KEY=key)

    assert list(Submission.objects.values_list("idempotency_key", flat=True)) == [None, None]


# --- A web form's hidden key field ------------------------------------------------------------


def test_a_web_forms_hidden_key_makes_a_resubmission_one_submission_and_is_not_stored_as_data(client):
    source, _ = source_with_secret(kind="web_form")
    form = {"email": "ada@example.com", "_idempotency_key": "4b1f3c2e-key-made-on-load"}

    first = client.post(url(source), form)
    again = client.post(url(source), {**form, "email": "ada.lovelace@example.com"})  # edited, same page load

    assert again.json()["id"] == first.json()["id"]
    stored = Submission.objects.get()
    assert stored.idempotency_key == "4b1f3c2e-key-made-on-load"
    assert stored.payload == {"email": "ada@example.com"}
    assert "_idempotency_key" in bytes(stored.raw_body).decode()  # the raw body stays verbatim


def test_the_idempotency_key_header_wins_over_the_hidden_field(client):
    source, _ = source_with_secret(kind="web_form")

    client.post(url(source), {"email": "a@b.co", "_idempotency_key": "from-field"}, HTTP_IDEMPOTENCY_KEY="from-header")

    stored = Submission.objects.get()
    assert stored.idempotency_key == "from-header" and "_idempotency_key" not in stored.payload


def test_the_hidden_field_is_named_per_source_and_can_be_turned_off(client):
    named, _ = source_with_secret(kind="web_form", slug="named", idempotency_field="form_key")
    off, _ = source_with_secret(kind="web_form", slug="off", idempotency_field="")

    client.post(url(named), {"email": "a@b.co", "form_key": "k-1"})
    client.post(url(off), {"email": "a@b.co", "_idempotency_key": "k-1"})

    assert Submission.objects.get(source=named).idempotency_key == "k-1"
    kept = Submission.objects.get(source=off)
    assert kept.payload["_idempotency_key"] == "k-1" and kept.idempotency_key.startswith("sha256:")


def test_a_hidden_key_field_sent_twice_is_refused_naming_the_field(client):
    source, _ = source_with_secret(kind="web_form")

    answer = client.post(url(source), "email=a%40b.co&_idempotency_key=one&_idempotency_key=two",
                         content_type="application/x-www-form-urlencoded")

    assert answer.status_code == 400
    assert answer.json()["fields"] == {"_idempotency_key": "Appears more than once."}
    assert not Submission.objects.exists()
