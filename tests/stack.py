"""Start the product's real web server and worker as subprocesses on the test database."""

import os
from pathlib import Path
import signal
import socket
import subprocess
import sys
import time
from typing import Callable
from urllib.parse import quote
import uuid

from django.conf import settings
from django.db import connection
import requests

ROOT = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_database_url() -> str:
    """The URL of the database pytest-django created, for the child processes."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def wait_for(condition: Callable[[], object], *, timeout: float = 60, what: str = "condition") -> object:
    """Poll until condition() is truthy; the deadline only bounds a failing test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Stack:
    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "SANDBOX_ENABLED": "true",
            # One queue name per test, so a Redis broker never hands over another test's tasks.
            "Q_CLUSTER_NAME": f"crmsync-test-{uuid.uuid4().hex[:8]}",
            "CRMSYNC_PUSH_LEASE_SECONDS": "4",
            "CRMSYNC_PUSH_BACKOFF_BASE_SECONDS": "1",
            "CRMSYNC_PUSH_BACKOFF_CAP_SECONDS": "2",
            "CRMSYNC_HTTP_READ_TIMEOUT": "30",
            # A claim whose task failed or was lost is claimed again soon, not after a minute.
            "CRMSYNC_SWEEP_STALE_SECONDS": "5",
            # The web's alerts watchdog (monitoring/watchdog.py) stays out of tests about other
            # things; tests/monitoring/test_watchdog.py turns it on.
            "CRMSYNC_ALERTS_WATCHDOG_SECONDS": "0",
        }

    @property
    def sandbox_url(self) -> str:
        return f"{self.base_url}/sandbox/hubspot"

    def start_web(self) -> None:
        cmd = [sys.executable, "-m", "gunicorn", "crmsync.wsgi", "--bind", f"127.0.0.1:{self.port}",
               "--workers", "2", "--threads", "4", "--timeout", "60"]
        self.web = self._spawn(cmd, "web.log")
        wait_for(self._healthy, timeout=60, what="the web server")

    def start_worker(self) -> None:
        self.worker = self._spawn([sys.executable, "manage.py", "worker"], "worker.log")

    def kill_worker(self) -> None:
        """SIGKILL to the worker's whole process group: no cleanup, no acknowledgement."""
        _kill_group(self.worker)
        self.worker = None

    def stop_all(self) -> None:
        # No graceful stop: the tests' data is settled by now, and qcluster takes ~20 s to
        # wind down its workers on SIGTERM.
        for proc in (self.worker, self.web):
            if proc:
                _kill_group(proc)
        _wait_for_sessions_to_close()


    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in self.log_dir.glob("*.log"))

    def _spawn(self, cmd: list[str], log_name: str) -> subprocess.Popen:
        log = open(self.log_dir / log_name, "ab")
        return subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def _healthy(self) -> bool:
        if self.web.poll() is not None:
            raise AssertionError(f"web server exited:\n{self.logs()}")
        try:
            return requests.get(f"{self.base_url}/healthz", timeout=5).ok
        except requests.RequestException:  # not listening yet, or too busy starting to answer
            return False


def _kill_group(proc: subprocess.Popen) -> None:
    """Children (qcluster's workers, gunicorn's) may outlive their parent by a moment and hold
    database sessions; make sure none survives the test."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _wait_for_sessions_to_close() -> None:
    """PostgreSQL reaps a killed client's backend a moment later; the test database cannot be
    dropped while it lingers."""
    if connection.vendor != "postgresql":
        return

    def others() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            return cursor.fetchone()[0]

    deadline = time.monotonic() + 10
    while others() and time.monotonic() < deadline:
        time.sleep(0.1)
