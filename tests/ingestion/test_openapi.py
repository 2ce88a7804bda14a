"""The published API contract: a schema, browsable docs, and no input that makes us fail or
answer anything but JSON under /api/."""

from urllib.parse import quote

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.urls import include, path
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from crmsync.wsgi import application
from ingestion.models import Submission
from tests.factories import source_with_mapping, source_with_secret

pytestmark = pytest.mark.django_db

# Read from the running app, as a client would (the schema view touches no database). Negative
# cases too: slugs no route matches, bodies and headers the schema does not allow.
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


def _boom(request):
    raise RuntimeError("an unexpected bug")


# For the 500 test only (@pytest.mark.urls): the project's routes plus one that crashes.
urlpatterns = [path("api/v1/boom", _boom), path("admin-boom", _boom), path("", include("crmsync.urls"))]


@schemathesis.check
def answers_json(ctx, response, case) -> None:
    """Every answer is JSON, except the two that carry none: Meta's handshake echoes the
    challenge as text/plain, and a CORS preflight is an empty 204."""
    if response.status_code == 204 or (case.method.upper() == "GET" and response.status_code == 200):
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0] == "application/json", f"{response.status_code} answered as {content_type!r}"
    return None


@pytest.fixture(autouse=True)
def keep_test_connection_open():
    # As Django's test client does: the WSGI handler would otherwise close the test's
    # database connection (and its transaction) after each request.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def sources(db):
    # Sources of several kinds, so fuzzed requests meet real gates as well as 404s.
    source_with_mapping(slug="website")
    source_with_secret(kind="stripe", secret="whsec_x")
    source_with_secret(kind="meta_lead_ads", secret="app-secret", slug="meta")


@schema.parametrize()
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error_or_a_non_json_answer(case):
    case.call_and_validate(checks=[not_a_server_error, answers_json])


@given(slug=st.text(min_size=1, max_size=30).filter(lambda text: "/" not in text and text not in (".", "..")))
@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_any_slug_is_answered_in_json(slug):
    answer = Client().post(f"/api/v1/sources/{quote(slug, safe='')}/submissions", b"{}", content_type="application/json")

    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json" and answer.json()["error"] in ("unknown_source", "not_found")


def test_a_slug_no_route_matches_gets_404_in_json(client):
    answer = client.post("/api/v1/sources/a.b/submissions", b"{}", content_type="application/json")

    assert answer.status_code == 404
    assert answer["Content-Type"] == "application/json"
    assert answer.json() == {"error": "not_found", "detail": "Nothing answers /api/v1/sources/a.b/submissions. "
                                                             "Sources receive POST /api/v1/sources/<slug>/submissions."}


@pytest.mark.parametrize("debug", [True, False])
def test_a_host_not_allowed_gets_400_in_json_under_api_and_html_elsewhere(client, settings, debug):
    settings.DEBUG = debug

    api = client.post("/api/v1/sources/website/submissions", b"{}", content_type="application/json",
                      HTTP_HOST="evil.example")
    admin = client.get("/admin/login/", HTTP_HOST="evil.example", HTTP_ACCEPT="text/html")

    assert api.status_code == 400 and api["Content-Type"] == "application/json"
    assert api.json()["error"] == "bad_host" and "evil.example" in api.json()["detail"]
    assert admin.status_code == 400 and admin["Content-Type"].startswith("text/html")
    assert not Submission.objects.exists()


def test_a_method_no_route_answers_gets_405_in_json(client):
    answer = client.put("/api/v1/schema/", b"{}", content_type="application/json")

    assert answer.status_code == 405 and answer.json()["error"] == "method_not_allowed"


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("debug", [True, False])
def test_an_unexpected_crash_gets_500_in_json_under_api_and_html_elsewhere(settings, debug):
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)

    api = client.post("/api/v1/boom", b"{}", content_type="application/json")
    admin = client.get("/admin-boom", HTTP_ACCEPT="text/html")

    assert api.status_code == 500 and api["Content-Type"] == "application/json"
    assert api.json()["error"] == "server_error" and "RuntimeError" not in api.content.decode()
    assert admin.status_code == 500 and admin["Content-Type"].startswith("text/html")


def test_the_schema_says_only_meta_lead_ads_sources_answer_get(client):
    operation = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"][
        "/api/v1/sources/{slug}/submissions"]["get"]

    assert operation["x-source-kinds"] == ["meta_lead_ads"]
    assert "405" in operation["description"] and "405" in operation["responses"]


def test_the_schema_and_the_docs_are_served(client):
    schema_answer = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/v1/docs/")

    assert schema_answer.status_code == 200
    operation = schema_answer.json()["paths"]["/api/v1/sources/{slug}/submissions"]["post"]
    assert set(operation["responses"]) >= {"202", "400", "401", "404", "413", "415", "429"}
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
