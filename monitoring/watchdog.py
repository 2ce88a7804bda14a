"""The web's watch over alert evaluation. The rules are evaluated by the worker's schedule
(`crmsync: evaluate alerts`, every minute), so with no worker running nothing would evaluate, and
the alert that says so (worker heartbeat missing), or the backlog growing meanwhile, would never
fire. Each gunicorn worker process (gunicorn.conf.py's post_worker_init) therefore runs a thread
that looks every CRMSYNC_ALERTS_WATCHDOG_SECONDS at when the rules were last evaluated; when no
evaluation ran within CRMSYNC_ALERTS_STALE_SECONDS, one web process (a cache lock) evaluates them
itself. While a worker evaluates, the web does nothing more than that one query.

Two evaluators at once are safe anyway: an episode opens once per rule (a unique constraint),
reminders and resolutions are conditional updates, and notifications are claimed by lease."""

from __future__ import annotations

from datetime import datetime, timedelta
import logging
import os
import random
import threading

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connections
from django.db.models import Max
from django.utils import timezone

from monitoring.models import AlertRule

log = logging.getLogger(__name__)

LOCK_KEY = "crmsync:alerts-watchdog"
_started = False


def evaluation_stale(now: datetime | None = None) -> bool:
    """Whether enabled rules exist and none was evaluated within the stale age."""
    now = now or timezone.now()
    newest = AlertRule.objects.filter(enabled=True).aggregate(at=Max("last_evaluated_at"), n=Max("pk"))
    if newest["n"] is None:
        return False  # no rule to evaluate
    stale_after = timedelta(seconds=settings.CRMSYNC["ALERTS_STALE_SECONDS"])
    return newest["at"] is None or now - newest["at"] > stale_after


def watch_once(now: datetime | None = None) -> bool:
    """One look; evaluates (and returns True) when evaluation is stale and this process won the
    lock for this round."""
    from monitoring.services import alerts_evaluate

    if not evaluation_stale(now):
        return False
    interval = settings.CRMSYNC["ALERTS_WATCHDOG_SECONDS"]
    if not cache.add(LOCK_KEY, os.getpid(), timeout=max(1, int(interval))):
        return False  # another web process evaluates this round
    report = alerts_evaluate(now=now)
    log.warning("alerts evaluated by the web: no evaluation by a worker recently (is `manage.py worker` running?)",
                extra={"opened": report.opened, "resolved": report.resolved, "sent": report.sent})
    return True


def start() -> None:
    """Start the watch thread in this process (once); a no-op when the interval is 0."""
    global _started
    interval = settings.CRMSYNC["ALERTS_WATCHDOG_SECONDS"]
    if _started or interval <= 0:
        return
    _started = True
    threading.Thread(target=_loop, args=(interval,), name="crmsync-alerts-watchdog", daemon=True).start()


def _loop(interval: float) -> None:
    stop = threading.Event()
    while not stop.wait(interval * random.uniform(0.8, 1.2)):  # spread the web processes' looks
        try:
            watch_once()
        except Exception:  # never let the watch die: log and look again next round
            log.exception("alerts watchdog failed")
        finally:
            close_old_connections()
            connections.close_all()
