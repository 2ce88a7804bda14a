import logging
import os
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

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


class Command(BaseCommand):
    help = (
        "Run a worker: sync the declared schedules, poll for new submissions (queueing them "
        "in batches), and run django-q2's qcluster in the foreground."
    )

    def handle(self, *args, **options) -> None:
        schedules_sync()
        # At start nothing is "in flight" in this worker, so anything received and unprocessed
        # is queued now (no staleness threshold): a restart picks up a crash's leftovers at once.
        report = pipeline_sweep(stale_seconds=0)
        self.stdout.write(
            f"worker starting: queued {report.submissions_requeued} submissions, "
            f"dispatch rung: {report.dispatch_rung}"
        )
        # The cluster's processes must not share this thread's connection (a forked copy of a
        # socket or SQLite handle); each opens its own.
        connections.close_all()
        threading.Thread(target=poll_forever, name="crmsync-poller", daemon=True).start()
        call_command("qcluster")


def poll_forever() -> None:
    """The intake only inserts rows; this loop turns new rows into queued tasks. Claims are
    conditional UPDATEs, so any number of workers may poll at once."""
    interval = settings.CRMSYNC["POLL_SECONDS"]
    while True:
        try:
            with _fork_guard:
                close_old_connections()  # a connection the database dropped is replaced
                pipeline_sweep(stale_seconds=settings.CRMSYNC["SWEEP_STALE_SECONDS"])
        except Exception:  # noqa: BLE001 -- keep polling through a database or broker outage
            log.exception("poll failed; retrying")
        time.sleep(interval)
