"""gunicorn reads this file from the directory it starts in, so every way crmsync runs gunicorn
(`make run`, tests/stack.py, the Docker image) gets these hooks; the command line sets the rest.

They keep Prometheus's multiprocess files in order (core/metrics.py): the master, before it
forks any worker, forgets the files of web processes that are gone and makes its workers count
as "web"; a worker that exits is marked dead, as prometheus_client asks of gunicorn's
child_exit hook.

Each worker, once the application is loaded, also starts the alerts watchdog: when no worker
process has evaluated the alert rules for a while, the web does (monitoring/watchdog.py).
"""

import os


def on_starting(server) -> None:  # gunicorn's Arbiter
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crmsync.settings")
    from django.conf import settings

    # Loading the settings sets PROMETHEUS_MULTIPROC_DIR, which prometheus_client reads on import.
    getattr(settings, "PROMETHEUS_MULTIPROC_DIR", None)
    from core import metrics

    metrics.process_start("web")


def child_exit(server, worker) -> None:  # gunicorn's Arbiter and Worker
    from core import metrics

    metrics.process_exit(worker.pid)


def post_worker_init(worker) -> None:  # gunicorn's Worker, after it loaded the application
    from monitoring import watchdog

    watchdog.start()
