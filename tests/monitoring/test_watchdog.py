"""With no worker running nothing ran the alert rules' schedule, so the very alert that says no
worker runs could never fire. The web's watchdog (monitoring/watchdog.py) evaluates when no one
has for a while, and only then."""

from datetime import timedelta
import json

from django.utils import timezone
import pytest

from audit.models import WorkerHeartbeat
from monitoring import watchdog
from monitoring.models import Alert, AlertRule, Channel
from tests.monitoring.test_alerts import receiver  # noqa: F401 -- the fixture
from tests.stack import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def heartbeat_rule(**fields) -> AlertRule:
    return AlertRule.objects.create(name="Worker heartbeat missing", kind=AlertRule.Kind.WORKER_HEARTBEAT,
                                    threshold=120, severity=AlertRule.Severity.CRITICAL, **fields)


def a_worker_that_stopped_ten_minutes_ago() -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(name="worker-host:4242", started_at=now - timedelta(hours=1),
                                   beat_at=now - timedelta(minutes=10))


@pytest.fixture(autouse=True)
def only_these_rules_and_no_lock_left(settings):
    from django.core.cache import cache

    AlertRule.objects.all().delete()  # the shipped rules may be there: only the test's own count
    cache.delete(watchdog.LOCK_KEY)
    yield
    cache.delete(watchdog.LOCK_KEY)


def test_the_web_evaluates_only_when_no_evaluation_ran_within_the_stale_age(settings):
    settings.CRMSYNC = {**settings.CRMSYNC, "ALERTS_STALE_SECONDS": 180, "ALERTS_WATCHDOG_SECONDS": 60}
    now = timezone.now()
    assert not watchdog.evaluation_stale(now)  # no rule: nothing to evaluate
    rule = heartbeat_rule(last_evaluated_at=now - timedelta(seconds=60))  # a worker evaluates each minute
    assert not watchdog.watch_once(now)
    assert not Alert.objects.exists()

    AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now - timedelta(seconds=181))
    a_worker_that_stopped_ten_minutes_ago()
    assert watchdog.watch_once(now)
    alert = Alert.objects.get(rule=rule)
    assert alert.state == Alert.State.FIRING and alert.evidence["newest_heartbeat_age_seconds"] >= 600


def test_of_several_web_processes_one_evaluates_a_round(settings):
    settings.CRMSYNC = {**settings.CRMSYNC, "ALERTS_STALE_SECONDS": 180, "ALERTS_WATCHDOG_SECONDS": 60}
    heartbeat_rule()  # never evaluated
    later = timezone.now() + timedelta(hours=1)  # stale again even after the first evaluation
    assert watchdog.watch_once()
    assert not watchdog.watch_once(later)  # the round's lock is held
    assert AlertRule.objects.get().last_evaluated_at is not None


@pytest.mark.e2e
def test_with_no_worker_running_the_web_fires_the_heartbeat_alert_to_its_channel(stack, receiver):  # noqa: F811
    # given the heartbeat rule with a Slack-style channel, a worker that stopped ten minutes
    # ago, and no worker running: nothing runs the alert schedule
    slack = Channel.objects.create(name="Slack #revops", kind=Channel.Kind.SLACK, url=receiver.url("/slack"))
    heartbeat_rule().channels.set([slack])
    a_worker_that_stopped_ten_minutes_ago()

    # when only the web server runs (looking every half second, stale after two)
    stack.env.update({"CRMSYNC_ALERTS_WATCHDOG_SECONDS": "0.5", "CRMSYNC_ALERTS_STALE_SECONDS": "2"})
    stack.start_web()

    # then the alert fires and its channel is told, once
    wait_for(lambda: receiver.at("/slack"), timeout=60, what="the heartbeat alert's message")
    [message] = receiver.at("/slack")
    assert "FIRING" in json.loads(message["body"])["text"]
    alert = Alert.objects.get()
    assert alert.state == Alert.State.FIRING and alert.evidence["newest_heartbeat_age_seconds"] >= 600
    wait_for(lambda: AlertRule.objects.get().last_evaluated_at > alert.started_at, timeout=30,
             what="a later evaluation by the web")
    assert len(receiver.at("/slack")) == 1  # one notification per episode, whoever evaluates
