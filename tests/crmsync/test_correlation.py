"""One correlation ID per submission, from the intake to the CRM: on the submission, its lead's
decisions, push jobs and sync log rows, and every JSON log line of the web server and the
worker; one request ID per HTTP request."""

import json
import logging
from pathlib import Path
import re

from django.http import HttpResponse
from django.test import RequestFactory
import pytest
import requests

from audit.logging import JsonFormatter, RequestIdMiddleware, log_context
from audit.models import SyncLog
from crmsync.demo import demo_load
from crmsync.pipeline import submission_process
from delivery.models import PushJob
from ingestion.models import Submission
from leads.models import Lead, LeadDecision
from tests.factories import hubspot_destination, source_with_mapping
from tests.stack import wait_for

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def json_lines(path: Path) -> list[dict]:
    """The JSON log lines of a process's output (gunicorn's and qcluster's own lines are not JSON)."""
    lines = []
    for text in path.read_text().splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and "msg" in line:
            lines.append(line)
    return lines


def carries(line: dict, correlation_id: str) -> bool:
    return line.get("correlation_id") == correlation_id or correlation_id in line.get("correlation_ids", [])


@pytest.mark.e2e
def test_one_submission_carries_its_correlation_id_from_intake_to_the_crm_and_its_timeline(stack, operator):
    # given the demo (a web form, the sandbox HubSpot), a web server and a worker
    demo_load(sandbox_base_url=stack.sandbox_url)
    stack.start_web()
    stack.start_worker()

    # when a form posts a lead, naming its own request ID
    answer = requests.post(f"{stack.base_url}/api/v1/sources/demo-form/submissions", timeout=10,
                           json={"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"},
                           headers={"X-Request-ID": "form-req-42"})

    # then the answer echoes the request ID and names the submission's correlation ID
    assert answer.status_code == 202
    submission = Submission.objects.get(pk=answer.json()["id"])
    correlation_id = submission.correlation_id
    assert UUID.fullmatch(correlation_id)
    assert (answer.headers["X-Request-ID"], answer.headers["X-Correlation-ID"]) == ("form-req-42", correlation_id)

    # and once the lead is in the CRM, every row the submission caused carries it
    wait_for(lambda: PushJob.objects.filter(status=PushJob.Status.SUCCEEDED).exists(), timeout=60,
             what="the push to succeed")
    lead = Lead.objects.get()
    job = PushJob.objects.get()
    assert job.correlation_id == correlation_id
    calls = list(SyncLog.objects.filter(lead=lead))
    assert [call.operation for call in calls] == ["create"]
    assert {call.correlation_id for call in calls} == {correlation_id}
    decisions = list(LeadDecision.objects.filter(lead=lead).values_list("action", "correlation_id"))
    decision_ids = list(LeadDecision.objects.filter(lead=lead).values_list("pk", flat=True))
    assert {action for action, _ in decisions} >= {"created"}
    assert {cid for _, cid in decisions} == {correlation_id}

    # and every log line about it, in the web server's and the worker's logs, carries it too
    wait_for(lambda: any(line["msg"] == "push outcome" for line in json_lines(stack.log_dir / "worker.log")),
             timeout=30, what="the push outcome to be logged")
    web, worker = json_lines(stack.log_dir / "web.log"), json_lines(stack.log_dir / "worker.log")
    about_it = [line for line in web + worker
                if line.get("request_id") == "form-req-42" or line.get("submission") == submission.pk
                or line.get("lead") == lead.external_id or line.get("push_job") == job.pk]
    assert [line for line in about_it if not carries(line, correlation_id)] == []
    carried = [line["msg"] for line in web if carries(line, correlation_id)]
    assert "intake" in carried
    carried = [line["msg"] for line in worker if carries(line, correlation_id)]
    assert "submission processed" in carried and "push outcome" in carried
    assert all(line.get("request_id") == "form-req-42" for line in web if carries(line, correlation_id))

    # and the lead's timeline shows the submission, its decisions, the push and the CRM call, in order
    page = operator.get(f"/admin/leads/lead/{lead.pk}/timeline/")
    entries = re.findall(r'data-kind="(\w+)" data-correlation-id="([^"]*)"', page.content.decode())
    assert list(dict.fromkeys(kind for kind, _ in entries)) == ["submission", "decision", "push", "call"]
    assert {cid for _, cid in entries} == {correlation_id}

    # and the admin finds everything by it
    found = {"/admin/ingestion/submission/": submission.pk, "/admin/delivery/pushjob/": job.pk,
             "/admin/audit/synclog/": calls[0].pk, "/admin/leads/leaddecision/": decision_ids[0]}
    for url, pk in found.items():
        listed = operator.get(url, {"q": correlation_id}).content.decode()
        assert f'href="{url}{pk}/change/' in listed, url
        assert f'href="{url}{pk}/change/' in operator.get(url, {"correlation_id": correlation_id}).content.decode()
        assert f'href="{url}{pk}/change/' not in operator.get(url, {"q": "0" * 36}).content.decode()
    job_page = operator.get(f"/admin/delivery/pushjob/{job.pk}/change/").content.decode()
    assert correlation_id in job_page and f"/admin/ingestion/submission/correlation/{correlation_id}/" in job_page


@pytest.fixture
def source(db):
    return source_with_mapping(rules=(
        {"source_keys": "email", "target": "email", "transforms": [{"op": "lower"}], "required": True},
        {"source_keys": "first_name", "target": "first_name", "transforms": []},
    ))


def post(client, source, payload: dict, **headers):
    return client.post(f"/api/v1/sources/{source.slug}/submissions", data=json.dumps(payload),
                       content_type="application/json", headers=headers)


def test_each_submission_gets_its_own_correlation_id_and_a_retry_gets_the_first_ones(client, source):
    first = post(client, source, {"email": "ada@example.com"}, **{"Idempotency-Key": "k1"})
    second = post(client, source, {"email": "bob@example.com"})
    retried = post(client, source, {"email": "ada@example.com"}, **{"Idempotency-Key": "k1"})

    stored = dict(Submission.objects.values_list("pk", "correlation_id"))
    assert first["X-Correlation-ID"] == stored[first.json()["id"]]
    assert second["X-Correlation-ID"] == stored[second.json()["id"]] != first["X-Correlation-ID"]
    assert retried.json()["id"] == first.json()["id"] and retried["X-Correlation-ID"] == first["X-Correlation-ID"]


def test_every_answer_carries_a_request_id_and_echoes_a_sane_one(client, source):
    minted = client.get("/healthz")["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", minted) and client.get("/healthz")["X-Request-ID"] != minted

    assert client.get("/healthz", headers={"X-Request-ID": "lb-7f3a:1"})["X-Request-ID"] == "lb-7f3a:1"
    # a caller that only sends a correlation header has it kept as the request ID
    assert client.get("/healthz", headers={"X-Correlation-ID": "trace.9"})["X-Request-ID"] == "trace.9"
    # refusals and unknown routes carry one too
    refused = post(client, source, {"email": "x"}, **{"Content-Type": "text/plain", "X-Request-ID": "r-1"})
    assert refused["X-Request-ID"] == "r-1"
    assert client.get("/api/v1/nothing-here", headers={"X-Request-ID": "r-2"})["X-Request-ID"] == "r-2"


@pytest.mark.parametrize("sent", ["has space", "x" * 129, "<script>", "-starts-with-dash", "ünïcode"])
def test_a_request_id_that_could_break_a_header_or_a_log_search_is_replaced(client, sent):
    answer = RequestIdMiddleware(lambda request: HttpResponse())(RequestFactory().get("/healthz", headers={"X-Request-ID": sent}))

    assert answer["X-Request-ID"] != sent and re.fullmatch(r"[0-9a-f]{32}", answer["X-Request-ID"])


def test_a_pending_push_job_takes_the_correlation_id_of_the_submission_that_last_changed_the_lead(source, settings):
    hubspot_destination(base_url="http://127.0.0.1:9/unused", batch_wait_seconds=60)
    first = Submission.objects.create(source=source, raw_body=b"{}", payload={"email": "ada@example.com"})
    second = Submission.objects.create(source=source, raw_body=b"{}",
                                       payload={"email": "ada@example.com", "first_name": "Ada"})

    submission_process(submission_id=first.pk)
    assert PushJob.objects.get().correlation_id == first.correlation_id
    submission_process(submission_id=second.pk)

    job = PushJob.objects.get()  # still one pending job: it will send both changes
    assert job.correlation_id == second.correlation_id
    assert set(LeadDecision.objects.values_list("correlation_id", flat=True)) == {first.correlation_id,
                                                                                  second.correlation_id}


def test_log_lines_name_one_correlation_id_or_the_batchs_several():
    formatter = JsonFormatter()
    record = logging.makeLogRecord({"name": "delivery.services", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "push outcome"})

    with log_context(correlation_ids=["a", "b", "a", ""]):
        several = json.loads(formatter.format(record))
        with log_context(correlation_ids=["b"]):
            one = json.loads(formatter.format(record))
    outside = json.loads(formatter.format(record))

    assert several["correlation_ids"] == ["a", "b"] and "correlation_id" not in several
    assert one["correlation_id"] == "b"
    assert "correlation_id" not in outside and "correlation_ids" not in outside
