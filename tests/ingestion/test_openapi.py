"""The published API contract: a schema, browsable docs, and no input that makes us fail."""

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error

from crmsync.wsgi import application
from tests.factories import source_with_mapping, source_with_secret

pytestmark = pytest.mark.django_db

# Read from the running app, as a client would (the schema view touches no database).
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", application)


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
def test_no_generated_request_gets_a_server_error(case):
    case.call_and_validate(checks=[not_a_server_error])


def test_the_schema_and_the_docs_are_served(client):
    schema_answer = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    docs = client.get("/api/v1/docs/")

    assert schema_answer.status_code == 200
    operation = schema_answer.json()["paths"]["/api/v1/sources/{slug}/submissions"]["post"]
    assert set(operation["responses"]) >= {"202", "400", "401", "404", "413", "415", "429"}
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
