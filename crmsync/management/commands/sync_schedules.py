from django.core.management.base import BaseCommand

from crmsync.schedules import schedules_sync


class Command(BaseCommand):
    help = "Create or update the schedules declared in crmsync/schedules.py (idempotent)."

    def handle(self, *args, **options) -> None:
        for name in schedules_sync():
            self.stdout.write(f"schedule synced: {name}")
