"""Readiness: can this deployment take and deliver leads now? `/readyz` runs every check and
answers 200 when all pass, 503 naming the ones that failed (README, "Monitoring"). `/healthz`
(audit.views) only says the process answers.

The worker heartbeat lives here too: `manage.py worker` starts `heartbeat_start`, which rewrites
the process's WorkerHeartbeat row every few seconds while its task cluster runs.
"""

from collections.abc import Callable
from datetime import timedelta
import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django_q.models import OrmQ
import redis

from audit.models import WorkerHeartbeat

log = logging.getLogger(__name__)

# Heartbeat rows of workers gone for this long are deleted when a worker starts.
HEARTBEAT_KEEP = timedelta(days=1)
BROKER_TIMEOUT_SECONDS = 2.0

# --- Checks: each returns '' when it passes, else what is wrong (short: /readyz is public) ---


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return ""


_migrated = False


def check_migrations() -> str:
    """Every migration this code knows is applied. Once true it stays true for the life of the
    process (new migrations come with new code, so with a restart): checked once, then free."""
    global _migrated
    if _migrated:
        return ""
    executor = MigrationExecutor(connection)
    unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if unapplied:
        return f"{len(unapplied)} migration(s) not applied, e.g. {unapplied[0][0].app_label}.{unapplied[0][0].name}"
    _migrated = True
    return ""


def check_broker() -> str:
    """The queue answers: Redis answers PING; the ORM broker's table (in our database) is readable."""
    config = settings.Q_CLUSTER
    if config.get("redis"):
        client = redis.Redis.from_url(config["redis"], socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
                                      socket_timeout=BROKER_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
        return ""
    OrmQ.objects.using(config.get("orm", "default")).exists()
    return ""


def check_worker_heartbeat() -> str:
    limit = settings.CRMSYNC["WORKER_HEARTBEAT_MAX_AGE_SECONDS"]
    newest = WorkerHeartbeat.objects.aggregate(newest=Max("beat_at"))["newest"]
    if newest is None:
        return "no worker has ever reported"
    age = (timezone.now() - newest).total_seconds()
    if age > limit:
        return f"newest worker heartbeat is {age:.0f} s old (limit {limit:.0f} s)"
    return ""


def check_sandbox() -> str:
    # The sandbox answers as a CRM to anyone who asks: never in production.
    if settings.SANDBOX_ENABLED and not settings.DEBUG:
        return "SANDBOX_ENABLED is on while DEBUG is off"
    return ""


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "migrations": check_migrations,
    "broker": check_broker,
    "worker_heartbeat": check_worker_heartbeat,
    "sandbox": check_sandbox,
}


def readiness() -> dict[str, dict]:
    """Each check's result: {"ok": bool, "detail": str}."""
    results = {}
    for name, check in CHECKS.items():
        try:
            problem = check()
        except Exception as exc:  # noqa: BLE001 -- a check that cannot run has failed; say which, not where
            log.warning("readiness check failed", extra={"check": name, "error": repr(exc)[:500]})
            problem = f"{type(exc).__name__}: unreachable or failing"
        results[name] = {"ok": not problem, "detail": problem}
    return results


def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, else 503 with the names of the failed ones."""
    checks = readiness()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "failing" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)


# --- The worker's heartbeat ----------------------------------------------------------------


def heartbeat_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def heartbeat_beat(*, name: str) -> None:
    """Record that the worker `name` is alive now."""
    now = timezone.now()
    if not WorkerHeartbeat.objects.filter(name=name).update(beat_at=now):
        WorkerHeartbeat.objects.update_or_create(name=name, defaults={"beat_at": now},
                                                 create_defaults={"beat_at": now, "started_at": now})


def heartbeat_start(*, guard: threading.Lock, alive: Callable[[], bool]) -> threading.Thread:
    """Beat every CRMSYNC_WORKER_HEARTBEAT_SECONDS while alive() holds, from a thread of its own.
    `guard` is the worker's fork guard: like the poller, the thread never sits in a database
    call while the task cluster forks."""
    thread = threading.Thread(target=_beat_while, args=(guard, alive), name="crmsync-heartbeat", daemon=True)
    thread.start()
    return thread


def _beat_while(guard: threading.Lock, alive: Callable[[], bool]) -> None:
    name, interval = heartbeat_name(), settings.CRMSYNC["WORKER_HEARTBEAT_SECONDS"]
    pruned = False
    while alive():
        try:
            with guard:
                close_old_connections()
                if not pruned:  # rows of workers long gone
                    WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - HEARTBEAT_KEEP).delete()
                    pruned = True
                heartbeat_beat(name=name)
        except Exception:  # noqa: BLE001 -- keep beating through a database outage (/readyz reports it)
            log.exception("worker heartbeat failed; retrying")
        time.sleep(interval)
    connections.close_all()
