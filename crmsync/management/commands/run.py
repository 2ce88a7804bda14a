"""`make run`: migrate, load the demo, start the web server and the worker, stop both on Ctrl-C,
SIGTERM or SIGHUP (a closed terminal), also when it runs in the background with no terminal."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core import metrics
from crmsync.demo import DEMO_SLUG, demo_load

BANNER = """
  crmsync is running (web server + worker). Ctrl-C (or SIGTERM) stops both.

  Admin:      {base}/admin/   user {user} / password {password}
  Sandbox CRM contacts (HubSpot API):
              curl -H 'Authorization: Bearer {token}' {base}/sandbox/hubspot/crm/v3/objects/contacts

  Send a lead through:
    curl -i -X POST {base}/api/v1/sources/{slug}/submissions \\
         -H 'Content-Type: application/json' \\
         -d '{{"email": "  Ada.Lovelace@Example.COM ", "first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Engines", "country": "GB"}}'

  Two-way sync: the sandbox destination polls every 5 s. Change the contact's phone as a person
  in the sandbox HubSpot and watch the lead (README, "Two-way sync"):
    curl -X PATCH -H 'Authorization: Bearer {token}' -H 'X-Sandbox-Actor: person:rep@example.com' \\
         -H 'Content-Type: application/json' -d '{{"properties": {{"phone": "+44 20 7946 0000"}}}}' \\
         '{base}/sandbox/hubspot/crm/v3/objects/contacts/ada.lovelace@example.com?idProperty=email'
  Conflicts wait in {base}/admin/delivery/conflict/
"""


class Command(BaseCommand):
    help = "Migrate, load the demo, and run the web server and the worker in the foreground."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument("--no-demo", action="store_true", help="Skip loading the demo data.")

    def handle(self, *args, host: str, port: int, no_demo: bool, **options) -> None:
        _stop_signals_interrupt()
        # /metrics answers scrapes from this machine without a token; metric files of processes
        # gone since the last run are forgotten (core/metrics.py).
        os.environ.setdefault("CRMSYNC_METRICS_ALLOWED_IPS", "127.0.0.1,::1")
        metrics.files_prune()
        children: list[subprocess.Popen] = []
        try:
            call_command("migrate", interactive=False, verbosity=0)
            info = None if no_demo else demo_load(sandbox_base_url=f"http://127.0.0.1:{port}/sandbox/hubspot")
            children.append(self._start_web(host, port))
            children.append(self._start_worker())
            self._wait_ready(port, children)
            if info:
                self.stdout.write(BANNER.format(base=f"http://127.0.0.1:{port}", user=info.admin_username,
                                                password=info.admin_password, slug=DEMO_SLUG,
                                                token=settings.SANDBOX_HUBSPOT_TOKEN))
            self._supervise(children)
        except KeyboardInterrupt:
            self.stdout.write("\nstopping web server and worker...")
        finally:
            _stop(children)

    def _start_web(self, host: str, port: int) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "gunicorn", "crmsync.wsgi", "--bind", f"{host}:{port}",
               "--workers", "2", "--threads", "4", "--access-logfile", "-",
               "--graceful-timeout", str(int(settings.CRMSYNC["WORKER_STOP_GRACE_SECONDS"]))]
        # Own process group each, so Ctrl-C reaches us once and we stop the children in order.
        # From the project's directory, where gunicorn reads gunicorn.conf.py (the metrics' hooks).
        return subprocess.Popen(cmd, cwd=settings.BASE_DIR, start_new_session=True)

    def _start_worker(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "manage.py", "worker"], cwd=settings.BASE_DIR, start_new_session=True)

    def _wait_ready(self, port: int, children: list[subprocess.Popen], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _check_alive(children)
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                return
            except OSError:
                time.sleep(0.3)
        raise CommandError(f"The web server did not answer on port {port} within {timeout:.0f} s.")

    def _supervise(self, children: list[subprocess.Popen]) -> None:
        while True:
            _check_alive(children)
            time.sleep(0.5)


def _check_alive(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is not None:
            raise CommandError(f"{' '.join(child.args[:3])} exited with code {child.returncode}.")


def _stop_signals_interrupt() -> None:
    """SIGTERM (a service manager, `kill`, a script that started us in the background) and
    SIGHUP (the terminal went away) stop us as Ctrl-C does. A signal someone chose to ignore
    (`nohup` ignores SIGHUP) stays ignored."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, signal.default_int_handler)


def _stop(children: list[subprocess.Popen]) -> None:
    """Each child runs in its own process group (so that a terminal's Ctrl-C reaches us once):
    stop each group, wait out the grace period the worker and gunicorn keep to, then kill what
    is left. A second signal meanwhile does not cut this short."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, signal.SIG_IGN)
    for child in children:
        if child.poll() is None:
            _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + settings.CRMSYNC["WORKER_STOP_GRACE_SECONDS"] + 2
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left in the group (a child's own children) goes too.
        _signal_group(child, signal.SIGKILL)
        child.wait()


def _signal_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:  # the whole group is gone already
        pass
