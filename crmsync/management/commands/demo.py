from django.conf import settings
from django.core.management.base import BaseCommand

from crmsync.demo import demo_load


class Command(BaseCommand):
    help = "Load the demo: the public 'demo-form' source, its mapping, a sandbox HubSpot destination and an admin user."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=settings.PORT, help="Port the web server listens on.")

    def handle(self, *args, **options) -> None:
        info = demo_load(sandbox_base_url=f"http://127.0.0.1:{options['port']}/sandbox/hubspot")
        self.stdout.write(f"demo loaded: source '{info.source.slug}', destination '{info.destination.name}'")
        self.stdout.write(f"admin user: {info.admin_username} / {info.admin_password}")
