"""Senders retry in bursts; a double-clicked button posts twice at once. Against the real web
server, on whichever database the suite runs (CI runs it on PostgreSQL too)."""

from concurrent.futures import ThreadPoolExecutor
import json
import threading

import pytest
import requests

from ingestion import signatures
from ingestion.models import Submission
from tests.factories import source_with_secret

pytestmark = pytest.mark.e2e


def test_twenty_concurrent_deliveries_of_one_event_make_one_submission_and_twenty_identical_answers(stack):
    source, _ = source_with_secret(kind="stripe", secret="whsec_concurrent")
    body = json.dumps({"id": "evt_1QconcurrentXYZ", "type": "checkout.session.completed",
                       "data": {"object": {"customer_details": {"email": "ada@example.com"}}}}).encode()
    headers = {**signatures.sign("stripe", secret="whsec_concurrent", body=body), "Content-Type": "application/json"}
    stack.start_web()
    start = threading.Barrier(20)

    def deliver(_: int) -> tuple[int, dict]:
        with requests.Session() as session:
            start.wait(timeout=30)  # release all twenty at once
            answer = session.post(f"{stack.base_url}{source.intake_path}", data=body, headers=headers, timeout=30)
            return answer.status_code, answer.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(deliver, range(20)))

    assert Submission.objects.count() == 1
    submission = Submission.objects.get()
    assert answers == [(202, {"id": submission.pk, "status": "accepted"})] * 20
    assert submission.idempotency_key == "evt_1QconcurrentXYZ"
    assert source.counters.get(outcome="duplicate").count == 19


def test_a_chunked_body_without_content_length_is_limited_too(stack):
    source, _ = source_with_secret(kind="web_form", slug="chunky", max_body_bytes=1000)
    stack.start_web()

    def chunks(size: int):
        yield b'{"email": "a@b.co", "note": "'
        yield b"x" * size
        yield b'"}'

    small = requests.post(f"{stack.base_url}{source.intake_path}", data=chunks(10), timeout=10,
                          headers={"Content-Type": "application/json"})
    large = requests.post(f"{stack.base_url}{source.intake_path}", data=chunks(5000), timeout=10,
                          headers={"Content-Type": "application/json"})

    assert small.status_code == 202, small.text
    assert Submission.objects.get().payload["note"] == "x" * 10
    assert (large.status_code, large.json()["error"]) == (413, "payload_too_large")


def test_concurrent_deliveries_of_a_notification_naming_two_leads_make_two_submissions(stack):
    source, _ = source_with_secret(kind="meta_lead_ads", secret="meta-app-secret")
    body = json.dumps({"object": "page", "entry": [{"id": "1", "time": 1, "changes": [
        {"field": "leadgen", "value": {"leadgen_id": "111"}}, {"field": "leadgen", "value": {"leadgen_id": "222"}}]}]}).encode()
    headers = {**signatures.sign("meta", secret="meta-app-secret", body=body), "Content-Type": "application/json"}
    stack.start_web()
    start = threading.Barrier(10)

    def deliver(_: int) -> tuple[int, dict]:
        with requests.Session() as session:
            start.wait(timeout=30)
            answer = session.post(f"{stack.base_url}{source.intake_path}", data=body, headers=headers, timeout=30)
            return answer.status_code, answer.json()

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(deliver, range(10)))

    ids = list(Submission.objects.order_by("idempotency_key").values_list("pk", flat=True))
    assert list(Submission.objects.order_by("idempotency_key").values_list("idempotency_key", flat=True)) == ["111", "222"]
    assert answers == [(202, {"id": ids[0], "ids": ids, "status": "accepted"})] * 10
    assert source.counters.get(outcome="duplicate").count == 18
