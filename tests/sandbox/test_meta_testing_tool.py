"""Meta's Lead Ads Testing Tool over HTTP: the sandbox makes a lead and sends its signed leadgen
notification to an intake URL, as Meta does for a subscribed page."""

from django.urls import include, path
import pytest
import requests

from crmsync.pipeline import submission_process
from ingestion.credentials import source_secret_add
from ingestion.models import SourceSecret, Submission
from leads.models import Lead
from mapping.models import FieldRule, MappingSet
from mapping.services import mapping_publish
from tests.factories import source_with_secret

# The product's intake and the sandbox's Graph API on one test server.
urlpatterns = [path("api/v1/", include("ingestion.urls")), path("sandbox/", include("sandbox.urls"))]
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]


def test_a_test_lead_made_over_http_is_signed_to_the_intake_and_becomes_a_lead(live_server):
    source, _ = source_with_secret(kind="meta_lead_ads", secret="app-secret",
                                   graph_base_url=f"{live_server.url}/sandbox/graph/v19.0")
    source_secret_add(source=source, purpose=SourceSecret.Purpose.META_PAGE_TOKEN, value="page-token")
    mapping_set = MappingSet.objects.create(source=source, name="meta")
    FieldRule.objects.create(mapping_set=mapping_set, source_keys="email", target="email", required=True)
    mapping_publish(mapping_set=mapping_set)

    answer = requests.post(f"{live_server.url}/sandbox/graph/test-leads", timeout=30, json={
        "field_data": [{"name": "email", "values": ["tester@example.com"]}], "access_token": "page-token",
        "webhook_url": f"{live_server.url}{source.intake_path}", "app_secret": "app-secret"})

    assert answer.status_code == 201 and answer.json()["webhook"]["status"] == 202, answer.text
    submission = Submission.objects.get(idempotency_key=answer.json()["id"])
    assert submission_process(submission_id=submission.pk).status == Submission.Status.PROCESSED
    assert Lead.objects.filter(email="tester@example.com").exists()


def test_a_test_lead_without_a_token_or_with_bad_field_data_is_refused_in_graphs_shape(live_server):
    url = f"{live_server.url}/sandbox/graph/test-leads"
    missing = requests.post(url, json={"field_data": []}, timeout=10)
    bad = requests.post(url, json={"field_data": [{"name": "email"}], "access_token": "t"}, timeout=10)
    assert (missing.status_code, bad.status_code) == (400, 400)
    assert "access_token" in missing.json()["error"]["message"] and "field_data" in bad.json()["error"]["message"]
    assert requests.get(url, timeout=10).status_code == 405
