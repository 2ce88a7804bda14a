import logging
import threading
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from crmsync.schedules import schedules_sync
from crmsync.services import pipeline_sweep

log = logging.getLogger(__name__)


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
        threading.Thread(target=poll_forever, name="crmsync-poller", daemon=True).start()
        call_command("qcluster")


def poll_forever() -> None:
    """The intake only inserts rows; this loop turns new rows into queued tasks. Claims are
    conditional UPDATEs, so any number of workers may poll at once."""
    interval = settings.CRMSYNC["POLL_SECONDS"]
    while True:
        try:
            close_old_connections()  # a connection the database dropped is replaced
            pipeline_sweep(stale_seconds=settings.CRMSYNC["SWEEP_STALE_SECONDS"])
        except Exception:  # noqa: BLE001 -- keep polling through a database or broker outage
            log.exception("poll failed; retrying")
        time.sleep(interval)
