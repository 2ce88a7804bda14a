"""What a body may hold, through the real endpoint: nesting and size limits answered 400 in the
one error shape (never a crash), and text that every database can store (NUL characters
removed, unpaired surrogates replaced, the raw body kept as received)."""

import json
from urllib.parse import urlencode

from django.test.client import MULTIPART_CONTENT, encode_multipart
import pytest

from ingestion.models import Submission
from ingestion.parsing import MAX_DEPTH, MAX_VALUES
from tests.factories import source_with_mapping, source_with_secret

pytestmark = pytest.mark.django_db
URL = "/api/v1/sources/website/submissions"


@pytest.fixture
def source():
    return source_with_mapping(slug="website")


def nested(levels: int) -> str:
    """A JSON object `levels` objects deep: {"a": {"a": ... {} ...}}."""
    return '{"a": ' * (levels - 1) + "{}" + "}" * (levels - 1)


def assert_refused(answer, error: str, *words: str) -> None:
    assert answer.status_code == 400, answer.content[:300]
    assert answer["Content-Type"] == "application/json"
    assert answer.json()["error"] == error
    for word in words:
        assert word in answer.json()["detail"]
    assert not Submission.objects.exists()


# --- Depth and size ---------------------------------------------------------------------------


def test_a_body_nested_a_thousand_levels_is_a_400_not_a_server_error(client, source):
    body = nested(1000)  # about 7 KB; json.loads alone raises RecursionError on it

    answer = client.post(URL, body, content_type="application/json")

    assert_refused(answer, "invalid_payload", f"deeper than {MAX_DEPTH} levels")


def test_nesting_up_to_the_limit_is_accepted_and_one_more_level_is_refused(client, source):
    assert client.post(URL, nested(MAX_DEPTH), content_type="application/json").status_code == 202

    answer = client.post(URL, f'{{"email": "a@b.co", "deep": {nested(MAX_DEPTH)}}}', content_type="application/json")

    assert answer.status_code == 400
    assert answer.json()["detail"] == f"The payload (in 'deep') is nested deeper than {MAX_DEPTH} levels."
    assert Submission.objects.count() == 1


def test_a_body_with_too_many_values_is_refused(client, source):
    body = json.dumps({"email": "a@b.co", "tags": list(range(MAX_VALUES))})

    assert_refused(client.post(URL, body, content_type="application/json"), "invalid_payload", str(MAX_VALUES))


@pytest.mark.parametrize("as_multipart", [False, True])
def test_a_form_with_more_fields_than_djangos_limit_is_refused(client, source, settings, as_multipart):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    fields = {f"f{i}": "x" for i in range(51)}
    if as_multipart:
        answer = client.post(URL, encode_multipart("BoUnDaRy", fields), content_type="multipart/form-data; boundary=BoUnDaRy")
    else:
        answer = client.post(URL, urlencode(fields), content_type="application/x-www-form-urlencoded")

    assert_refused(answer, "invalid_payload", "more than 50 fields")


def test_a_deep_json_inside_jotforms_raw_request_is_refused_by_name(client):
    source, token = source_with_secret(kind="jotform")

    answer = client.post(f"{source.intake_path}?token={token}",
                         {"submissionID": "1", "rawRequest": nested(1000)})  # multipart, as Jotform posts

    assert_refused(answer, "invalid_payload", "Jotform's rawRequest field", f"deeper than {MAX_DEPTH} levels")


def test_a_deep_json_inside_unbounces_data_json_is_refused_by_name(client):
    source, token = source_with_secret(kind="unbounce")
    body = urlencode({"page_id": "1", "data.json": nested(1000)})

    answer = client.post(f"{source.intake_path}?token={token}", body, content_type="application/x-www-form-urlencoded")

    assert_refused(answer, "invalid_payload", "Unbounce's data.json field")


def test_json_a_little_too_deep_inside_raw_request_names_the_field(client):
    source, token = source_with_secret(kind="jotform")

    answer = client.post(f"{source.intake_path}?token={token}", {"submissionID": "1", "rawRequest": nested(40)},
                         content_type=MULTIPART_CONTENT)

    assert_refused(answer, "invalid_payload", "(in 'rawRequest')")


# --- NUL characters and unpaired surrogates ------------------------------------------------


def test_nul_characters_are_removed_from_a_json_payload_and_noted(client, source):
    body = b'{"email": "ada@example.com", "first_name": "Ad\\u0000a", "x\\u0000y": ["\\u0000"]}'

    answer = client.post(URL, body, content_type="application/json")

    assert answer.status_code == 202, answer.content
    stored = Submission.objects.get()
    assert stored.payload == {"email": "ada@example.com", "first_name": "Ada", "xy": [""]}
    assert bytes(stored.raw_body) == body
    assert stored.notes == ["removed 3 NUL character(s) (U+0000) from the payload; the raw body keeps them"]


def test_nul_characters_are_removed_from_a_form_post(client, source):
    body = b"email=ada%40example.com&first_name=Ad%00a"

    answer = client.post(URL, body, content_type="application/x-www-form-urlencoded")

    assert answer.status_code == 202, answer.content
    stored = Submission.objects.get()
    assert stored.payload["first_name"] == "Ada" and bytes(stored.raw_body) == body
    assert "removed 1 NUL character(s)" in stored.notes[0]


def test_nul_characters_in_a_multipart_post_are_removed(client, source):
    answer = client.post(URL, {"email": "ada@example.com", "first_name": "Ad\x00a"})

    assert answer.status_code == 202, answer.content
    assert Submission.objects.get().payload["first_name"] == "Ada"


def test_an_unpaired_surrogate_becomes_a_replacement_character(client, source):
    # A JavaScript string cut in the middle of an emoji serializes as a lone "\ud83d".
    body = b'{"email": "ada@example.com", "note": "hi \\ud83d", "ok": "\\ud83d\\ude00"}'

    answer = client.post(URL, body, content_type="application/json")

    assert answer.status_code == 202, answer.content
    stored = Submission.objects.get()
    assert stored.payload["note"] == "hi \ufffd" and stored.payload["ok"] == "\U0001f600"
    assert "replaced 1 unpaired surrogate(s)" in stored.notes[0]


def test_a_payload_without_such_characters_carries_no_note(client, source):
    client.post(URL, b'{"email": "ada@example.com", "name": "Zo\\u00eb"}', content_type="application/json")

    assert Submission.objects.get().notes == []
