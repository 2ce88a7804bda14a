import ctypes
import logging
import os
import signal
import sys
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connections
from django_q.cluster import Cluster

from core import metrics
from core.stopping import stop_request, stop_share
from crmsync.health import heartbeat_start
from crmsync.pipeline import pipeline_sweep
from crmsync.schedules import schedules_sync

log = logging.getLogger(__name__)

# qcluster forks its processes while the poller thread may be inside a database call. A child
# forked then inherits whatever lock that call held (SQLite's mutexes, a half-written socket
# message) and can hang forever on its first query. The poller holds this lock around its
# work and every fork of this process waits for it, so a fork never lands inside a query.
_fork_guard = threading.Lock()
os.register_at_fork(before=_fork_guard.acquire, after_in_parent=_fork_guard.release,
                    after_in_child=_fork_guard.release)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
# Work in flight is handed back this long before the grace period ends, and whatever still runs
# is killed this long before it: the database writes and the exit fit in between.
HAND_BACK_MARGIN_SECONDS = 2.0
KILL_MARGIN_SECONDS = 0.5


class Command(BaseCommand):
    help = (
        "Run a worker: sync the declared schedules, poll for new submissions (queueing them "
        "in batches), and run django-q2's task cluster in the foreground. SIGTERM or SIGINT, to "
        "this process or its whole process group, stops it within CRMSYNC_WORKER_STOP_GRACE_SECONDS."
    )

    def handle(self, *args, **options) -> None:
        metrics.process_start("worker")  # Prometheus: this worker's processes count as "worker" (core/metrics.py)
        stop = _StopSignal()
        schedules_sync()
        # At start nothing is "in flight" in this worker, so anything received and unprocessed
        # is queued now (no staleness threshold): a restart picks up a crash's leftovers at once.
        report = pipeline_sweep(stale_seconds=0)
        self.stdout.write(
            f"worker starting: queued {report.submissions_requeued} submissions, "
            f"dispatch rung: {report.dispatch_rung}",
        )
        if stop.received_at is not None:
            return
        # The cluster's processes must not share this thread's connection (a forked copy of a
        # socket or SQLite handle); each opens its own.
        connections.close_all()
        stop_share()
        cluster = _cluster_start(stop)
        polling = threading.Event()
        polling.set()
        poller = threading.Thread(target=poll_while, args=(polling,), name="crmsync-poller", daemon=True)
        poller.start()
        heartbeat_start(guard=_fork_guard, alive=lambda: polling.is_set() and cluster.sentinel.is_alive())
        while stop.received_at is None and cluster.sentinel.is_alive():
            time.sleep(0.1)
        polling.clear()  # claim nothing more, from this moment
        if stop.received_at is None:
            raise CommandError(f"the task cluster stopped unexpectedly (exit code {cluster.sentinel.exitcode})")
        _cluster_stop(cluster, stop.received_at, stop.name)
        grace = settings.CRMSYNC["WORKER_STOP_GRACE_SECONDS"]
        poller.join(timeout=max(0.0, stop.received_at + grace - KILL_MARGIN_SECONDS - time.monotonic()))
        log.info("worker stopped", extra={"seconds": round(time.monotonic() - stop.received_at, 2)})
        # Leave now: the interpreter's teardown (a garbage collection over every module loaded)
        # takes seconds on a busy machine, and the grace period is for the work.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


class _StopSignal:
    """Notes the first SIGTERM or SIGINT; the main loop acts on it (a handler that did the work
    itself could run in the middle of anything the main thread holds)."""

    def __init__(self) -> None:
        self.received_at: float | None = None
        self.name = ""
        self.install()

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)

    def _note(self, signum, frame) -> None:
        if self.received_at is None:
            self.received_at = time.monotonic()
            self.name = signal.Signals(signum).name


def _cluster_start(stop: _StopSignal) -> Cluster:
    """Start django-q2's cluster with the stop signals blocked in every process it forks.

    A stop signal sent to the whole process group (systemd, supervisors, a terminal's Ctrl-C)
    would otherwise kill the cluster's sentinel and workers at once, mid-task, and leave this
    process waiting for them. Blocked, it reaches only this process, which stops the cluster
    in order and within the grace period. The blocked mask is inherited across fork; django-q2
    resets only the handlers, which do not matter while the signal is blocked."""
    cluster = Cluster()
    stop.install()  # Cluster() installed its own handlers, which wait for the cluster without a limit
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        cluster.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)  # a signal held meanwhile arrives now
    return cluster


def _cluster_stop(cluster: Cluster, received_at: float, signal_name: str) -> None:
    """Ask the cluster to stop (it takes no more tasks, workers finish the task in hand), ask
    long work to hand back what it holds before the grace period ends, and kill whatever still
    runs just before it ends: the supervisor's SIGKILL must never find us still running."""
    grace = settings.CRMSYNC["WORKER_STOP_GRACE_SECONDS"]
    log.info("worker stopping", extra={"signal": signal_name, "grace_seconds": grace})
    elapsed = time.monotonic() - received_at
    stop_request(within_seconds=max(grace - HAND_BACK_MARGIN_SECONDS, grace / 2) - elapsed)
    cluster.stop_event.set()
    cluster.sentinel.join(timeout=max(0.0, grace - KILL_MARGIN_SECONDS - (time.monotonic() - received_at)))
    if cluster.sentinel.is_alive():
        log.warning("task cluster still busy at the end of the grace period: killed",
                    extra={"grace_seconds": grace})
        # Its processes die with it (_die_with_parent).
        os.kill(cluster.sentinel.pid, signal.SIGKILL)
        cluster.sentinel.join(timeout=2)


def poll_while(polling: threading.Event) -> None:
    """The intake only inserts rows; this loop turns new rows into queued tasks. Claims are
    conditional UPDATEs, so any number of workers may poll at once."""
    interval = settings.CRMSYNC["POLL_SECONDS"]
    while polling.is_set():
        try:
            with _fork_guard:
                close_old_connections()  # a connection the database dropped is replaced
                pipeline_sweep(stale_seconds=settings.CRMSYNC["SWEEP_STALE_SECONDS"])
        except Exception:  # noqa: BLE001 -- keep polling through a database or broker outage
            log.exception("poll failed; retrying")
        time.sleep(interval)
    connections.close_all()


# --- Processes die with their parent -----------------------------------------------------------
# Linux's PR_SET_PDEATHSIG: each process forked here (the cluster's sentinel, and through the
# inherited hook its workers, pusher and monitor) is killed when its parent dies. Killing the
# sentinel at the end of the grace period therefore ends the whole cluster, and so does a
# SIGKILL of this process alone: no orphan keeps a task, a database session or a lease.
_PR_SET_PDEATHSIG = 1
_forking_pid = os.getpid()


def _before_fork() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: processes may outlive a killed parent
        return
    if os.getppid() != _forking_pid:  # the parent died before the line above
        os._exit(1)


os.register_at_fork(before=_before_fork, after_in_child=_die_with_parent)
