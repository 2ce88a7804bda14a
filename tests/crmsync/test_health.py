"""/healthz says the process answers; /readyz says whether it can take and deliver leads now."""

from datetime import timedelta

from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone
import pytest
import requests

from audit.models import WorkerHeartbeat
from crmsync import health
from tests.stack import free_port, wait_for


@pytest.fixture
def ready(db, settings):
    """A deployment where everything passes: a worker beat just now, the sandbox is off
    (tests run with DEBUG off), and the migration check starts afresh."""
    settings.SANDBOX_ENABLED = False
    health.heartbeat_beat(name="worker-1:100")
    health._migrated = False
    yield
    health._migrated = False


def test_healthz_answers_while_the_process_runs(client):
    answer = client.get("/healthz")

    assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_readyz_answers_200_with_every_check_when_all_pass(client, ready):
    answer = client.get("/readyz")

    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["failed"]) == ("ok", [])
    assert set(body["checks"]) == {"database", "migrations", "broker", "worker_heartbeat", "sandbox"}
    assert all(check == {"ok": True, "detail": ""} for check in body["checks"].values())


def test_readyz_answers_503_naming_a_stale_worker_heartbeat(client, ready, settings):
    settings.CRMSYNC = {**settings.CRMSYNC, "WORKER_HEARTBEAT_MAX_AGE_SECONDS": 30}
    WorkerHeartbeat.objects.update(beat_at=timezone.now() - timedelta(seconds=45))

    answer = client.get("/readyz")

    assert answer.status_code == 503
    assert answer.json()["failed"] == ["worker_heartbeat"]
    assert answer.json()["checks"]["worker_heartbeat"]["detail"] == "newest worker heartbeat is 45 s old (limit 30 s)"


def test_readyz_answers_503_when_no_worker_ever_reported(client, ready):
    WorkerHeartbeat.objects.all().delete()

    answer = client.get("/readyz")

    assert (answer.status_code, answer.json()["failed"]) == (503, ["worker_heartbeat"])
    assert answer.json()["checks"]["worker_heartbeat"]["detail"] == "no worker has ever reported"


def test_readyz_answers_503_naming_an_unreachable_broker(client, ready, settings):
    # a Redis broker nobody listens on (a port just freed)
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "redis": f"redis://127.0.0.1:{free_port()}/0"}

    answer = client.get("/readyz")

    assert (answer.status_code, answer.json()["failed"]) == (503, ["broker"])
    assert answer.json()["checks"]["broker"]["detail"] == "ConnectionError: unreachable or failing"


def test_readyz_answers_503_when_a_migration_is_not_applied(client, ready):
    MigrationRecorder.Migration.objects.filter(app="audit", name="0006_worker_heartbeat").delete()

    answer = client.get("/readyz")

    assert (answer.status_code, answer.json()["failed"]) == (503, ["migrations"])
    assert "audit.0006_worker_heartbeat" in answer.json()["checks"]["migrations"]["detail"]


def test_readyz_answers_503_when_the_sandbox_is_on_in_production(client, ready, settings):
    settings.DEBUG, settings.SANDBOX_ENABLED = False, True

    answer = client.get("/readyz")

    assert (answer.status_code, answer.json()["failed"]) == (503, ["sandbox"])


def test_a_worker_beats_again_in_its_own_row(db):
    health.heartbeat_beat(name="worker-1:100")
    first = WorkerHeartbeat.objects.get().beat_at

    health.heartbeat_beat(name="worker-1:100")
    health.heartbeat_beat(name="worker-2:200")

    rows = dict(WorkerHeartbeat.objects.values_list("name", "beat_at"))
    assert set(rows) == {"worker-1:100", "worker-2:200"} and rows["worker-1:100"] >= first


@pytest.mark.e2e
def test_readyz_follows_the_real_worker_it_is_ready_while_it_runs_and_not_once_it_is_killed(stack):
    # given heartbeats every half second, stale after three
    stack.env.update({"CRMSYNC_WORKER_HEARTBEAT_SECONDS": "0.5", "CRMSYNC_WORKER_HEARTBEAT_MAX_AGE_SECONDS": "3"})
    stack.start_web()

    def readyz() -> requests.Response:
        return requests.get(f"{stack.base_url}/readyz", timeout=10)

    # before any worker runs, only the heartbeat fails
    assert (readyz().status_code, readyz().json()["failed"]) == (503, ["worker_heartbeat"])

    # when a worker starts, the web server becomes ready
    stack.start_worker()
    wait_for(lambda: readyz().status_code == 200, timeout=60, what="/readyz to answer 200")
    assert WorkerHeartbeat.objects.count() == 1

    # and when the worker is killed, it is not ready again, naming the heartbeat
    stack.kill_worker()
    answer = wait_for(lambda: (r := readyz()).status_code == 503 and r.json(), timeout=30, what="/readyz to answer 503")
    assert answer["failed"] == ["worker_heartbeat"]
