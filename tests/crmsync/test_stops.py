"""Clean stops and quick recovery, with real processes: `make run` in the background, and
`manage.py worker` stopped or killed while it waits for the sandbox CRM's answer."""

from datetime import timedelta
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys

from django.conf import settings
from django.utils import timezone
import pytest
import requests
import yaml

from crmsync.demo import DEMO_DESTINATION, demo_load
from crmsync.pipeline import submission_process
from delivery.models import Destination, PushJob
from ingestion.models import Submission
from sandbox.models import SandboxSettings
from tests.stack import ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}
GRACE_SECONDS = 4  # the worker's stop grace period in these tests (8 s by default)
EMAILS = [f"person{i}@example.org" for i in range(3)]


# --- Processes, as `ps` sees them ------------------------------------------------------------


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # the name may hold spaces and parentheses
    return int(fields[1]), fields[0]


def process_tree(root: int) -> set[int]:
    """The root and every process descended from it, alive now."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))):
            parents[int(entry.name)] = stat[0]
    tree, grew = {root}, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= children
        grew = bool(children)
    return tree


def running(pids: set[int]) -> set[int]:
    """Those still running (a zombie has exited: it only waits for its parent to read its status)."""
    return {pid for pid in pids if (stat := _stat(pid)) and stat[1] != "Z"}


def process_group_running(pgid: int) -> set[int]:
    return {pid for pid in running({int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()})
            if _pgid(pid) == pgid}


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


# --- The sandbox CRM -------------------------------------------------------------------------


def crm_emails(stack) -> list[str]:
    page = requests.get(f"{stack.sandbox_url}/crm/v3/objects/contacts", params={"limit": 100, "properties": "email"},
                        headers=AUTH, timeout=10).json()
    return sorted(contact["properties"]["email"] for contact in page["results"])


def crm_answers_after(seconds: float) -> None:
    """The sandbox applies each write at once and sends its answer after a delay."""
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"reply_delay_ms": int(seconds * 1000)})


def one_push_in_flight_two_waiting() -> bool:
    """One claim holds the three jobs: the first one's request has gone out, the others wait."""
    in_progress = PushJob.objects.filter(status=PushJob.Status.IN_PROGRESS)
    return (in_progress.filter(request_sent=True).count() == 1 and in_progress.filter(request_sent=False).count() == 2
            and len(set(in_progress.values_list("claim_token", flat=True))) == 1)


def all_pushed() -> bool:
    return PushJob.objects.count() == 3 and not PushJob.objects.exclude(status=PushJob.Status.SUCCEEDED).exists()


@pytest.fixture
def pushing(stack, request):
    """Three leads posted and processed while no worker runs, one CRM call per lead: the worker
    started next claims the three push jobs at once and sends them one after another."""
    stack.env["CRMSYNC_WORKER_STOP_GRACE_SECONDS"] = str(GRACE_SECONDS)
    demo_load(sandbox_base_url=stack.sandbox_url)
    Destination.objects.filter(name=DEMO_DESTINATION).update(batch_size=1)
    stack.start_web()
    for email in EMAILS:
        answer = requests.post(f"{stack.base_url}/api/v1/sources/demo-form/submissions",
                               json={"email": email, "last_name": "Person"}, timeout=10)
        assert answer.status_code == 202
    for submission in Submission.objects.all():
        submission_process(submission_id=submission.pk)
    assert PushJob.objects.filter(status=PushJob.Status.PENDING).count() == 3
    yield stack
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(stack.logs())


# --- `make run` ------------------------------------------------------------------------------


@pytest.mark.skipif(not shutil.which("make") or not Path("/proc").is_dir(), reason="needs make and /proc")
def test_make_run_in_the_background_leaves_no_process_behind_after_sigterm(stack, tmp_path):
    # given `make run` started as a script or service manager does: in the background, in its
    # own session, with no terminal (the installed environment is taken as it is)
    port = free_port()
    env = {**stack.env, "PORT": str(port), "CRMSYNC_WORKER_STOP_GRACE_SECONDS": str(GRACE_SECONDS)}
    log = open(tmp_path / "make-run.log", "wb")
    make = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "run", f"PY={sys.executable}"],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz") or make.poll() is not None, timeout=120,
             what="the web server of `make run`")
    assert make.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
    wait_for(lambda: b"running." in (tmp_path / "make-run.log").read_bytes(), timeout=60, what="the worker's cluster")
    tree = process_tree(make.pid)
    assert len(tree) >= 8, "make, manage.py run, gunicorn and its workers, the worker and its cluster"

    # when it is sent SIGTERM
    make.send_signal(signal.SIGTERM)

    # then make, the web server, the worker and every process they started are gone
    make.wait(timeout=60)
    wait_for(lambda: not running(tree), timeout=30, what="every process of `make run` to exit")
    assert not _answers(f"http://127.0.0.1:{port}/healthz")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


# --- The worker: SIGTERM ---------------------------------------------------------------------


@pytest.mark.parametrize("to", ["process group", "main process"])
def test_a_worker_stopped_while_the_crm_is_slow_exits_within_its_grace_period_and_loses_nothing(pushing, to):
    # given a worker waiting for a CRM that answers after longer than the worker's grace period
    # (and than its read timeout, kept short so that the test need not wait out the default)
    read_timeout = GRACE_SECONDS * 1.5
    pushing.env.update(CRMSYNC_HTTP_READ_TIMEOUT=str(read_timeout), CRMSYNC_HTTP_CONNECT_TIMEOUT="1")
    crm_answers_after(GRACE_SECONDS * 2)
    pushing.start_worker()
    wait_for(one_push_in_flight_two_waiting, timeout=60, what="a push in flight")
    worker = pushing.worker
    sent = PushJob.objects.get(status=PushJob.Status.IN_PROGRESS, request_sent=True)
    signalled_at = timezone.now()

    # when it is sent SIGTERM (by systemd or a supervisor: the whole group; by docker: the main process)
    if to == "process group":
        os.killpg(worker.pid, signal.SIGTERM)
    else:
        worker.send_signal(signal.SIGTERM)

    # then it exits in time (the supervisor's SIGKILL follows the grace period), leaving no process
    assert worker.wait(timeout=GRACE_SECONDS + 1) == 0
    wait_for(lambda: not process_group_running(worker.pid), timeout=10, what="the worker's processes to exit")
    pushing.worker = None
    # and the two jobs never sent were handed back, due now, with no attempt counted
    jobs = list(PushJob.objects.exclude(pk=sent.pk).values_list("status", "attempts", "claim_token"))
    assert jobs == [(PushJob.Status.PENDING, 0, None)] * 2
    # while the one whose request may still reach the CRM stays leased until it no longer can,
    # its attempt counted: no worker sends it again meanwhile
    sent.refresh_from_db()
    assert (sent.status, sent.attempts) == (PushJob.Status.IN_PROGRESS, 1)
    assert sent.leased_until > signalled_at + timedelta(seconds=read_timeout)

    # when a worker starts again
    crm_answers_after(0)
    pushing.start_worker()

    # then each lead is in the CRM exactly once; the request that may have landed counts as an attempt
    wait_for(all_pushed, timeout=60, what="the push jobs to succeed")
    assert crm_emails(pushing) == EMAILS
    attempts = dict(PushJob.objects.values_list("id", "attempts"))
    assert attempts.pop(sent.pk) == 2
    assert list(attempts.values()) == [1, 1]


def test_a_stopped_worker_finishes_the_push_in_flight_and_hands_back_the_rest(pushing):
    # given a worker waiting for a CRM that answers well within the grace period
    grace = 10
    pushing.env["CRMSYNC_WORKER_STOP_GRACE_SECONDS"] = str(grace)
    crm_answers_after(1)
    pushing.start_worker()
    wait_for(one_push_in_flight_two_waiting, timeout=60, what="a push in flight")
    in_flight = PushJob.objects.get(status=PushJob.Status.IN_PROGRESS, request_sent=True)

    # when its process group is sent SIGTERM
    os.killpg(pushing.worker.pid, signal.SIGTERM)

    # then the push in flight completes, and the two not yet sent wait for the next worker
    assert pushing.worker.wait(timeout=grace + 1) == 0
    pushing.worker = None
    in_flight.refresh_from_db()
    assert (in_flight.status, in_flight.attempts) == (PushJob.Status.SUCCEEDED, 1)
    assert list(PushJob.objects.exclude(pk=in_flight.pk).values_list("status", "attempts")) == [
        (PushJob.Status.PENDING, 0)] * 2

    pushing.start_worker()
    wait_for(all_pushed, timeout=60, what="the push jobs to succeed")
    assert crm_emails(pushing) == EMAILS


# --- The worker: SIGKILL ---------------------------------------------------------------------


def test_the_jobs_of_a_killed_worker_are_taken_over_in_seconds_counting_only_the_request_sent(pushing):
    # given the default lease (a live worker renews it; a killed one cannot)
    pushing.env.pop("CRMSYNC_PUSH_LEASE_SECONDS")
    crm_answers_after(GRACE_SECONDS)
    pushing.start_worker()
    wait_for(one_push_in_flight_two_waiting, timeout=60, what="a push in flight")
    sent = PushJob.objects.get(status=PushJob.Status.IN_PROGRESS, request_sent=True)

    # when the worker's whole process group is killed mid-push, and a new worker starts
    pushing.kill_worker()
    assert PushJob.objects.filter(status=PushJob.Status.IN_PROGRESS).count() == 3
    crm_answers_after(0)
    pushing.start_worker()

    # then the new worker takes the jobs over within one lease, far sooner than the old 300 s
    wait_for(all_pushed, timeout=60, what="the new worker to take the jobs over")
    # the request that may have reached the CRM counts as an attempt; the two never sent do not
    attempts = dict(PushJob.objects.values_list("id", "attempts"))
    assert attempts.pop(sent.pk) == 2
    assert list(attempts.values()) == [1, 1]
    # and the CRM holds each person once (the request it did receive is found and updated)
    assert crm_emails(pushing) == EMAILS


# --- docker-compose.yml ----------------------------------------------------------------------


def test_docker_stops_each_service_after_its_own_grace_period():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    grace = float(services["worker"]["environment"]["CRMSYNC_WORKER_STOP_GRACE_SECONDS"])
    web_command = services["web"]["command"][-1]

    assert grace == settings.CRMSYNC["WORKER_STOP_GRACE_SECONDS"]  # the default, stated where it is used
    for name in ("web", "worker"):
        assert _seconds(services[name]["stop_grace_period"]) > grace
    # gunicorn, not the shell, receives the SIGTERM, and finishes its requests within the same bound
    assert "exec gunicorn" in web_command
    assert f"--graceful-timeout {grace:g}" in web_command


def _seconds(duration: str) -> float:
    assert duration.endswith("s") and not duration.endswith("ms"), duration
    return float(duration[:-1])

