"""GET /metrics: what Prometheus reads, and who may read it.

The mixed run goes through gunicorn's two workers (replaced halfway, as gunicorn does with a
worker that dies or is recycled, so that processes gone and alive wrote counts) and the
worker's qcluster processes; the scrape must add up every one of them."""

from datetime import timedelta
import os
from pathlib import Path
import signal
import subprocess
import sys

from django.conf import settings
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
import pytest
import requests

from crmsync.demo import DEMO_DESTINATION, DEMO_SLUG, demo_load
from delivery.models import PushJob, RateBudget
from ingestion.models import Source, Submission
from tests import factories
from tests.stack import free_port, wait_for

TOKEN = "scrape-token-for-tests"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by name and labels."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    return scraped.get((name, frozenset(labels.items())), 0.0)


# --- Who may scrape --------------------------------------------------------------------------


@pytest.fixture
def networks():
    import ipaddress

    return lambda *values: [ipaddress.ip_network(v, strict=False) for v in values]


@pytest.mark.django_db
@override_settings(CRMSYNC_METRICS_TOKEN="", CRMSYNC_METRICS_ALLOWED_IPS=[])
def test_nobody_may_scrape_until_a_token_or_an_address_is_configured(client):
    answer = client.get("/metrics")

    assert answer.status_code == 403
    assert answer.json()["error"] == "forbidden"
    assert "CRMSYNC_METRICS_TOKEN" in answer.json()["detail"]


@pytest.mark.django_db
@override_settings(CRMSYNC_METRICS_TOKEN=TOKEN, CRMSYNC_METRICS_ALLOWED_IPS=[])
def test_a_scraper_with_the_bearer_token_reads_the_metrics_and_others_are_asked_for_it(client):
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain")
    assert ("crmsync_submissions_waiting", frozenset()) in samples(answer.content.decode())

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        refused = client.get("/metrics", headers=headers)
        assert refused.status_code == 401, headers
        assert refused.json()["error"] == "unauthorized"
        assert refused["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_addresses_in_the_allowed_networks_scrape_without_a_token(client, networks):
    with override_settings(CRMSYNC_METRICS_TOKEN="", CRMSYNC_METRICS_ALLOWED_IPS=networks("10.1.0.0/16", "::1")):
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
        assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    with override_settings(CRMSYNC_METRICS_TOKEN=TOKEN, CRMSYNC_METRICS_ALLOWED_IPS=networks("10.1.0.0/16")):
        assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
        assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 401


def test_a_malformed_allowed_address_stops_the_settings_with_a_clear_message():
    env = {**os.environ, "CRMSYNC_METRICS_ALLOWED_IPS": "10.0.0.0/8,not-an-address"}
    result = subprocess.run([sys.executable, "-c", "import crmsync.settings"], cwd=settings.BASE_DIR, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert "CRMSYNC_METRICS_ALLOWED_IPS: 'not-an-address' does not appear to be an IPv4 or IPv6 network" in result.stderr


# --- Gauges read at scrape time --------------------------------------------------------------


@pytest.mark.django_db
@override_settings(CRMSYNC_METRICS_TOKEN=TOKEN)
def test_the_backlog_paused_destinations_and_budgets_are_read_at_scrape_time(client):
    # given a submission waiting for 10 minutes, one just in, and one processed long ago
    source = factories.source_with_mapping()
    now = timezone.now()
    old = factories.submission(source=source, payload={"email": "a@example.com"})
    factories.submission(source=source, payload={"email": "b@example.com"})
    done = factories.submission(source=source, payload={"email": "c@example.com"})
    Submission.objects.filter(pk=old.pk).update(received_at=now - timedelta(minutes=10))
    Submission.objects.filter(pk=done.pk).update(received_at=now - timedelta(days=2), status=Submission.Status.PROCESSED)
    # and a paused destination with a push job waiting for an hour, 40 of its 1000 daily requests used
    crm = factories.hubspot_destination(base_url="http://127.0.0.1:9", name="Paused CRM", daily_budget=1000,
                                        paused_at=now)
    idle = factories.hubspot_destination(base_url="http://127.0.0.1:9", name="Idle CRM")
    job = PushJob.objects.create(lead=factories.lead(), destination=crm, next_attempt_at=now)
    PushJob.objects.filter(pk=job.pk).update(created_at=now - timedelta(hours=1))
    RateBudget.objects.create(destination=crm, day=now.astimezone(timezone.get_fixed_timezone(0)).date().isoformat(),
                              day_count=40)

    # when Prometheus scrapes
    scraped = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content.decode())

    # then
    assert value(scraped, "crmsync_submissions_waiting") == 2
    assert 600 <= value(scraped, "crmsync_submissions_waiting_oldest_age_seconds") < 3600
    assert value(scraped, "crmsync_push_jobs_waiting", destination="Paused CRM") == 1
    assert 3600 <= value(scraped, "crmsync_push_jobs_waiting_oldest_age_seconds", destination="Paused CRM") < 7200
    assert ("crmsync_push_jobs_waiting", frozenset({("destination", "Idle CRM")})) in scraped
    assert value(scraped, "crmsync_push_jobs_waiting", destination="Idle CRM") == 0
    assert value(scraped, "crmsync_destination_paused", destination="Paused CRM") == 1
    assert value(scraped, "crmsync_destination_paused", destination="Idle CRM") == 0
    assert value(scraped, "crmsync_rate_budget_daily_remaining", destination="Paused CRM") == 960
    assert value(scraped, "crmsync_rate_budget_daily_limit", destination="Paused CRM") == 1000
    assert value(scraped, "crmsync_rate_budget_daily_remaining", destination="Idle CRM") == idle.daily_budget


# --- A mixed run through real processes --------------------------------------------------------


@pytest.fixture
def monitored_stack(stack, tmp_path, request):
    """The stack with its own metrics directory, two attempts per push job, and a scrape token."""
    directory = tmp_path / "metrics"
    directory.mkdir()
    stack.env.update({
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "CRMSYNC_PUSH_MAX_ATTEMPTS": "2",
        "CRMSYNC_METRICS_TOKEN": TOKEN,
        "CRMSYNC_METRICS_ALLOWED_IPS": "",
    })
    stack.metrics_dir = directory
    yield stack
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(stack.logs())


def scrape(stack) -> dict:
    answer = requests.get(f"{stack.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return samples(answer.text)


def web_workers_replace(stack) -> None:
    """Stop gunicorn's workers that counted something; its master starts new ones."""
    pids = [int(name.split(".")[1]) for name in writers(stack.metrics_dir, "web")]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=30, what="the old web workers to exit")
    wait_for(stack._healthy, timeout=30, what="new web workers")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def writers(directory: Path, role: str) -> set[str]:
    """The processes of a role that wrote counters (file names: <type>_<role>.<pid>@<host>.db)."""
    return {path.name.split("_", 1)[1].split("@")[0] for path in directory.glob(f"counter_{role}.*.db")}


@pytest.mark.e2e
def test_a_scrape_adds_up_a_mixed_run_across_gunicorn_workers_and_the_qcluster_processes(monitored_stack):
    stack = monitored_stack
    # given the demo (its web form, its mapping that requires an email, the sandbox HubSpot), a
    # honeypot on the form, and a second HubSpot destination that nothing answers at
    demo_load(sandbox_base_url=stack.sandbox_url)
    Source.objects.filter(slug=DEMO_SLUG).update(honeypot_field="website")
    factories.hubspot_destination(base_url=f"http://127.0.0.1:{free_port()}", name="Unreachable CRM",
                                  batch_wait_seconds=1)
    stack.start_web()
    stack.start_worker()
    url = f"{stack.base_url}/api/v1/sources/{DEMO_SLUG}/submissions"

    # when the form receives five leads, one of them twice, one without an email, one from a bot,
    # and requests that are refused
    for n in range(5):
        assert requests.post(url, json={"email": f"lead{n}@example.com", "first_name": f"Lead {n}"},
                             headers={"Idempotency-Key": f"key-{n}"}, timeout=10).status_code == 202
    assert requests.post(url, json={"email": "lead0@example.com"}, headers={"Idempotency-Key": "key-0"},
                         timeout=10).status_code == 202
    web_workers_replace(stack)
    assert requests.post(url, json={"first_name": "No email"}, timeout=10).status_code == 202
    assert requests.post(url, json={"email": "bot@example.com", "website": "http://spam"}, timeout=10).status_code == 202
    assert requests.post(url, data="{not json", headers={"Content-Type": "application/json"}, timeout=10).status_code == 400
    assert requests.post(url, data="<lead/>", headers={"Content-Type": "application/xml"}, timeout=10).status_code == 415
    assert requests.post(f"{stack.base_url}/api/v1/sources/no-such-form/submissions", json={}, timeout=10).status_code == 404

    # and every push has ended: the sandbox took five leads, the other CRM failed twice for each
    def settled() -> bool:
        return (Submission.objects.filter(status=Submission.Status.RECEIVED).count() == 0
                and PushJob.objects.filter(status__in=[PushJob.Status.SUCCEEDED, PushJob.Status.DEAD]).count() == 10)
    wait_for(settled, timeout=120, what="every push job to succeed or die")
    assert PushJob.objects.filter(destination__name=DEMO_DESTINATION, status=PushJob.Status.SUCCEEDED).count() == 5
    assert PushJob.objects.filter(destination__name="Unreachable CRM", status=PushJob.Status.DEAD).count() == 5

    # then one scrape reports each count, whichever process made it
    scraped = scrape(stack)
    intake = "crmsync_intake_requests_total"
    assert value(scraped, intake, source=DEMO_SLUG, outcome="accepted", reason="") == 6
    assert value(scraped, intake, source=DEMO_SLUG, outcome="duplicate", reason="") == 1
    assert value(scraped, intake, source=DEMO_SLUG, outcome="spam", reason="") == 1
    assert value(scraped, intake, source=DEMO_SLUG, outcome="refused", reason="malformed_json") == 1
    assert value(scraped, intake, source=DEMO_SLUG, outcome="refused", reason="unsupported_media_type") == 1
    assert value(scraped, intake, source="", outcome="refused", reason="unknown_source") == 1
    assert value(scraped, "crmsync_intake_duration_seconds_count", source=DEMO_SLUG) == 10
    assert value(scraped, "crmsync_submissions_finished_total", source=DEMO_SLUG, status="processed") == 5
    assert value(scraped, "crmsync_submissions_finished_total", source=DEMO_SLUG, status="rejected") == 1
    assert value(scraped, "crmsync_mapping_rejects_total", source=DEMO_SLUG, field="email") == 1
    assert value(scraped, "crmsync_push_results_total", destination=DEMO_DESTINATION, outcome="create") == 5
    assert value(scraped, "crmsync_push_results_total", destination="Unreachable CRM", outcome="transient") == 10
    assert value(scraped, "crmsync_push_dead_letters_total", destination="Unreachable CRM") == 5
    assert value(scraped, "crmsync_push_dead_letters_total", destination=DEMO_DESTINATION) == 0
    assert value(scraped, "crmsync_end_to_end_seconds_count", destination=DEMO_DESTINATION) == 5
    assert value(scraped, "crmsync_crm_requests_total", destination=DEMO_DESTINATION, code="2xx") >= 1
    assert value(scraped, "crmsync_crm_requests_total", destination="Unreachable CRM", code="error") >= 2
    assert value(scraped, "crmsync_crm_request_duration_seconds_count", destination=DEMO_DESTINATION) >= 1
    # the gauges: nothing waits any more, and a worker swept a moment ago
    assert value(scraped, "crmsync_submissions_waiting") == 0
    assert value(scraped, "crmsync_push_jobs_waiting", destination="Unreachable CRM") == 0
    assert value(scraped, "crmsync_worker_last_sweep_timestamp_seconds") > timezone.now().timestamp() - 60
    # and those counts came from several web processes (gunicorn replaced its workers on the
    # way) and from the worker's processes: the main one polls, qcluster's push
    assert len(writers(stack.metrics_dir, "web")) >= 2
    assert len(writers(stack.metrics_dir, "worker") - {f"worker.{stack.worker.pid}"}) >= 1


@pytest.mark.e2e
def test_a_restarted_worker_forgets_only_its_own_dead_processes_counts(monitored_stack):
    """The worker's start wipes the metric files of worker processes that are gone, never the
    web server's: counts the web made before stay in the scrape."""
    stack = monitored_stack
    demo_load(sandbox_base_url=stack.sandbox_url)
    stack.start_web()
    stack.start_worker()
    url = f"{stack.base_url}/api/v1/sources/{DEMO_SLUG}/submissions"
    assert requests.post(url, json={"email": "ada@example.com"}, timeout=10).status_code == 202
    wait_for(lambda: PushJob.objects.filter(status=PushJob.Status.SUCCEEDED).exists(), timeout=60, what="the push")
    before = writers(stack.metrics_dir, "worker")

    stack.kill_worker()
    stack.start_worker()
    wait_for(lambda: not (writers(stack.metrics_dir, "worker") & before), timeout=60,
             what="the old worker processes' files to be removed")

    scraped = scrape(stack)
    assert value(scraped, "crmsync_intake_requests_total", source=DEMO_SLUG, outcome="accepted", reason="") == 1
    assert value(scraped, "crmsync_push_results_total", destination=DEMO_DESTINATION, outcome="create") == 0
