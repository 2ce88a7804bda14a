"""The intake endpoint as a sender sees it: status codes, one error shape, nothing lost."""

import json

import pytest

from ingestion.models import Submission
from tests.factories import source_with_mapping

pytestmark = pytest.mark.django_db
URL = "/api/v1/sources/website/submissions"


@pytest.fixture
def source():
    return source_with_mapping(slug="website")


def test_it_stores_a_json_submission_verbatim_and_answers_202(client, source):
    body = b'{"email": "Ada@Example.com", "note": "caf\xc3\xa9"}'

    answer = client.post(URL, body, content_type="application/json", HTTP_USER_AGENT="form/1.0")

    assert answer.status_code == 202
    submission = Submission.objects.get()
    assert answer.json() == {"id": submission.pk, "status": "accepted"}
    assert bytes(submission.raw_body) == body
    assert submission.payload == {"email": "Ada@Example.com", "note": "café"}
    assert (submission.status, submission.source, submission.user_agent) == ("received", source, "form/1.0")


def test_it_accepts_form_encoded_bodies(client, source):
    answer = client.post(URL, "email=ada%40example.com&interest=a&interest=b",
                         content_type="application/x-www-form-urlencoded")

    assert answer.status_code == 202
    assert Submission.objects.get().payload == {"email": "ada@example.com", "interest": ["a", "b"]}


@pytest.mark.parametrize(
    "body, content_type, status, error",
    [
        (b'{"email": ', "application/json", 400, "malformed_json"),
        (b"[1, 2]", "application/json", 400, "invalid_payload"),
        (b'{"email": "\xff"}', "application/json", 400, "bad_encoding"),
        (b"", "application/json", 400, "empty_body"),
        (b"<lead/>", "application/xml", 415, "unsupported_media_type"),
    ],
)
def test_it_refuses_bad_bodies_with_a_json_reason_and_stores_nothing(client, source, body, content_type, status, error):
    answer = client.post(URL, body, content_type=content_type)

    assert answer.status_code == status
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"] == error
    assert answer.json()["detail"]
    assert not Submission.objects.exists()


def test_an_unknown_source_gets_404_with_a_json_reason(client, source):
    answer = client.post("/api/v1/sources/nope/submissions", b"{}", content_type="application/json")

    assert answer.status_code == 404
    assert answer.json() == {"error": "unknown_source", "detail": "No active source has the slug 'nope'."}


def test_an_inactive_source_gets_404(client, source):
    source.is_active = False
    source.save()

    assert client.post(URL, b'{"a": 1}', content_type="application/json").status_code == 404


def test_other_methods_get_405_in_the_same_error_shape(client, source):
    answer = client.get(URL)

    assert answer.status_code == 405
    assert answer.json()["error"] == "method_not_allowed"


def test_secret_headers_are_not_stored(client, source):
    client.post(URL, b'{"a": 1}', content_type="application/json", HTTP_AUTHORIZATION="Bearer s3cret",
                HTTP_COOKIE="session=abc", HTTP_X_API_KEY="k", HTTP_X_HUB_SIGNATURE_256="sha256=00",
                HTTP_X_FORWARDED_FOR="203.0.113.9")

    headers = {k.lower(): v for k, v in Submission.objects.get().headers.items()}
    assert "x-forwarded-for" in headers
    assert not {"authorization", "cookie", "x-api-key", "x-hub-signature-256"} & set(headers)
    assert "s3cret" not in json.dumps(headers)


def test_a_repeated_idempotency_key_gets_the_first_answer_and_creates_nothing(client, source):
    first = client.post(URL, b'{"email": "a@b.co"}', content_type="application/json", HTTP_IDEMPOTENCY_KEY="evt_1")
    again = client.post(URL, b'{"email": "a@b.co"}', content_type="application/json", HTTP_IDEMPOTENCY_KEY="evt_1")

    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert Submission.objects.count() == 1


def test_a_body_over_the_sources_limit_gets_413_and_is_counted(client, source):
    source.max_body_bytes = 100
    source.save()

    answer = client.post(URL, json.dumps({"note": "x" * 200}), content_type="application/json")

    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"
    assert not Submission.objects.exists()
    assert source.counters.get(outcome="oversize").count == 1
