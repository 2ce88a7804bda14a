from django.core.management import call_command
from django.core.management.base import BaseCommand

from crmsync.schedules import schedules_sync
from crmsync.services import pipeline_sweep


class Command(BaseCommand):
    help = (
        "Run a worker: sync the declared schedules, queue whatever an earlier worker left "
        "behind, then run django-q2's qcluster in the foreground."
    )

    def handle(self, *args, **options) -> None:
        schedules_sync()
        # django-q2 runs schedules only every ~30 s; sweeping now means a restarted worker
        # picks up work that a crash left behind at once (no staleness threshold: at start,
        # anything still 'received' was either queued already or lost with its message).
        report = pipeline_sweep(stale_seconds=0)
        self.stdout.write(
            f"worker starting: requeued {report.submissions_requeued} submissions, "
            f"dispatch rung: {report.dispatch_rung}"
        )
        call_command("qcluster")
