"""The start-up the end-to-end benchmarks share: a fresh SQLite database with the ORM broker
(the embedded default) in a temporary directory, migrated in this process, and gunicorn serving
the product and the sandbox CRMs over real HTTP; optionally a real `manage.py worker`."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
import os
from pathlib import Path
import subprocess
import sys
import tempfile
from typing import Callable, Iterator
import uuid

from bench.intake import free_port, stop, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Stack:
    base: str  # the web server's address, e.g. http://127.0.0.1:PORT
    tmp: Path  # the run's directory: database and process logs
    prepared: object  # what the benchmark's prepare() returned


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "crmsync.settings",
        "CRMSYNC_VAR_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "REDIS_URL": "",
        "DEBUG": "true",  # only so settings generate local secrets; logging is turned down below
        "SANDBOX_ENABLED": "true",
        "LOG_LEVEL": "WARNING",
        "Q_CLUSTER_NAME": f"crmsync-bench-{uuid.uuid4().hex[:8]}",
        **extra,
    }


def spawn(cmd: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


@contextmanager
def embedded_stack(name: str, prepare: Callable[[str], object], *, worker: bool = False,
                   **extra_env: str) -> Iterator[Stack]:
    """Migrate a fresh database, call prepare(base) in this process (Django set up on that
    database), start gunicorn (and the worker when asked), and stop them all on the way out."""
    with tempfile.TemporaryDirectory(prefix=f"crmsync-bench-{name}-") as tmp_name:
        tmp = Path(tmp_name)
        env = environment(tmp, **extra_env)
        os.environ.update(env)
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        call_command("createcachetable", verbosity=0)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        prepared = prepare(base)
        processes = [spawn([sys.executable, "-m", "gunicorn", "crmsync.wsgi", "--bind", f"127.0.0.1:{port}",
                            "--workers", "2", "--threads", "4", "--timeout", "120"], env, tmp / "web.log")]
        try:
            wait_healthy(processes[0], port, tmp / "web.log")
            if worker:
                processes.append(spawn([sys.executable, "manage.py", "worker"], env, tmp / "worker.log"))
            yield Stack(base=base, tmp=tmp, prepared=prepared)
        finally:
            for proc in reversed(processes):
                stop(proc)
