"""Prometheus metrics: every counter and histogram crmsync exports, and the helpers the stages
call where the work is decided. `/metrics` (crmsync.metrics) serves them with the gauges it
reads from the database at scrape time.

Multiprocess mode: gunicorn's workers and the worker's qcluster processes each write their
counts to small memory-mapped files in PROMETHEUS_MULTIPROC_DIR (set by crmsync/settings.py
before this module is imported), and a scrape adds them up. Each file is named after the role
that wrote it (web, worker, app for anything else), the process ID and the host, so that:

- the first process of a role (gunicorn's master in gunicorn.conf.py, `manage.py worker`)
  forgets that role's files left by processes that are gone, as the client asks for at each
  start, without touching the files of a web server or another worker still running beside it;
- containers sharing the directory (docker-compose.yml) never write one file, whatever their
  process IDs.

Labels stay few and bounded: a source's slug, a destination's name, an outcome or error code
from a fixed set, a lead field. Never an email, an ID or anything a sender chooses freely.
"""

from collections.abc import Iterable
import functools
import os
from pathlib import Path
import re
import socket

from django.db import transaction
from prometheus_client import Counter, Gauge, Histogram, multiprocess, values

ROLE_ENV = "CRMSYNC_PROCESS_ROLE"
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
_role = os.environ.get(ROLE_ENV, "app")


def _process_id(pid: int | None = None) -> str:
    # "_" separates the parts of the file name the client parses, "@" the host from the rest.
    return f"{_role}.{pid or os.getpid()}@{_HOST}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Before any metric is made: every value then lives in a file named by _process_id().
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_id)


def process_start(role: str) -> None:
    """The first process of a role on this host: its processes record as `role` from now on
    (forked children inherit it; started ones read it from the environment) and the files of
    that role's processes that are gone are removed."""
    global _role
    _role = role
    os.environ[ROLE_ENV] = role
    files_prune(role=role)


def files_prune(*, role: str = "*") -> int:
    """Remove this host's metric files (of one role, or all) whose process no longer runs; a
    running process keeps its file, so nothing it counts is lost. Returns how many."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return 0
    removed = 0
    for path in Path(directory).glob(f"*_{role}.*@{_HOST}.db"):
        pid = path.stem.rsplit("@", 1)[0].rsplit(".", 1)[-1]
        if pid.isdigit() and not _running(int(pid)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A killed process nobody has reaped yet (an orphan in a container whose PID 1 does not
    reap) still answers kill(pid, 0), but it will never count again."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or it just went
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def process_exit(pid: int) -> None:
    """gunicorn's child_exit hook: a worker that exited no longer counts in live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(_process_id(pid))


# --- Definitions ---------------------------------------------------------------------------
# registry=None: only /metrics' own registry (the multiprocess collector) exposes them.

INTAKE_REQUESTS = Counter(
    "crmsync_intake_requests", "Intake requests by source and outcome (accepted, duplicate, spam, refused, throttled, "
    "oversize, error); reason is the refusal's error code.", ["source", "outcome", "reason"], registry=None)
INTAKE_SECONDS = Histogram(
    "crmsync_intake_duration_seconds", "Time to answer an intake request.", ["source"], registry=None,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
SUBMISSIONS_FINISHED = Counter(
    "crmsync_submissions_finished", "Submissions the pipeline finished, by source and status (processed, rejected).",
    ["source", "status"], registry=None)
MAPPING_REJECTS = Counter(
    "crmsync_mapping_rejects", "Reasons submissions were rejected, by source and the lead field at fault "
    "(none: not about one field).", ["source", "field"], registry=None)
PUSH_RESULTS = Counter(
    "crmsync_push_results", "Records pushed, by destination and outcome (create, update, noop, permanent, transient, "
    "rate_limited, auth).", ["destination", "outcome"], registry=None)
DEAD_LETTERS = Counter(
    "crmsync_push_dead_letters", "Push jobs that used up their attempts (dead letters), by destination.",
    ["destination"], registry=None)
CRM_REQUESTS = Counter(
    "crmsync_crm_requests", "HTTP requests to CRMs, by destination and answer (2xx, 3xx, 4xx, 429, 5xx, error: no "
    "answer).", ["destination", "code"], registry=None)
CRM_SECONDS = Histogram(
    "crmsync_crm_request_duration_seconds", "Duration of HTTP requests to CRMs.", ["destination"], registry=None,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
RATE_WAITS = Counter(
    "crmsync_rate_budget_waits", "Times a worker found no slot in a destination's rate budget, by reason (window, "
    "blocked: the CRM asked us to wait, daily: the daily budget is spent).", ["destination", "reason"], registry=None)
RATE_WAIT_SECONDS = Counter(
    "crmsync_rate_budget_wait_seconds", "Time workers spent waiting for a slot of a destination's rate budget.",
    ["destination"], registry=None)
END_TO_END_SECONDS = Histogram(
    "crmsync_end_to_end_seconds", "From the receipt of the submission that caused a push to the CRM's acknowledgement.",
    ["destination"], registry=None,
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 24 * 3600))


@functools.cache
def _worker_sweep() -> Gauge:
    # Made on first use, so processes that never sweep (web, one-off commands) write no file for it.
    return Gauge("crmsync_worker_last_sweep_timestamp_seconds", "When a worker last looked for new work (Unix time).",
                 registry=None, multiprocess_mode="max")


# --- Recording -----------------------------------------------------------------------------


def intake_record(*, source: str, outcome: str, reason: str = "") -> None:
    INTAKE_REQUESTS.labels(source, outcome, reason).inc()


def intake_duration(*, source: str, seconds: float) -> None:
    INTAKE_SECONDS.labels(source).observe(seconds)


def submission_finished(*, source: str, status: str, fields: Iterable[str] = ()) -> None:
    """Counted when the caller's transaction commits: a rolled-back run counts nothing."""
    transaction.on_commit(functools.partial(_submission_finished, source, status, list(fields)), robust=True)


def _submission_finished(source: str, status: str, fields: list[str]) -> None:
    SUBMISSIONS_FINISHED.labels(source, status).inc()
    for name in fields:
        MAPPING_REJECTS.labels(source, name or "none").inc()


def push_results(*, destination: str, outcomes: Iterable[str]) -> None:
    for outcome in outcomes:
        PUSH_RESULTS.labels(destination, outcome).inc()


def dead_letter(*, destination: str) -> None:
    DEAD_LETTERS.labels(destination).inc()


def crm_request(*, destination: str, status: int | None, seconds: float) -> None:
    code = "error" if status is None else "429" if status == 429 else f"{status // 100}xx"
    CRM_REQUESTS.labels(destination, code).inc()
    CRM_SECONDS.labels(destination).observe(seconds)


def rate_wait(*, destination: str, reason: str, seconds: float = 0.0) -> None:
    RATE_WAITS.labels(destination, reason).inc()
    if seconds > 0:
        RATE_WAIT_SECONDS.labels(destination).inc(seconds)


def end_to_end(*, destination: str, seconds: Iterable[float]) -> None:
    for value in seconds:
        END_TO_END_SECONDS.labels(destination).observe(value)


def worker_swept() -> None:
    _worker_sweep().set_to_current_time()
