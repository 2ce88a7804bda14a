"""The metric files of processes that are gone are removed at a role's start, so a restarted
worker does not keep counting its dead processes' totals twice. A killed process that nobody
has reaped (an orphan in a container whose PID 1 does not reap) is gone too."""

import os
from pathlib import Path
import subprocess
import sys
import time

import pytest

from core import metrics


@pytest.fixture
def metrics_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def _file(directory: Path, role: str, pid: int) -> Path:
    path = directory / f"counter_{role}.{pid}@{metrics._HOST}.db"
    path.write_bytes(b"")
    return path


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="no /proc on this system")
def test_an_unreaped_dead_process_loses_its_files_and_a_running_one_keeps_them(metrics_dir):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # never waited for: a zombie once it exits
    try:
        deadline = time.monotonic() + 10
        while "Z" not in Path(f"/proc/{dead.pid}/stat").read_text().rsplit(")", 1)[-1].split()[:1]:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.05)
        gone = _file(metrics_dir, "worker", dead.pid)
        alive = _file(metrics_dir, "worker", os.getpid())
        web = _file(metrics_dir, "web", dead.pid)

        assert metrics.files_prune(role="worker") == 1

        assert not gone.exists()
        assert alive.exists()  # this process still runs: what it counted stays
        assert web.exists()  # another role's files are its own start's business
    finally:
        dead.wait()
