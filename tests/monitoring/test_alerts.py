"""Alerts against the real thing: pushes to the sandbox HubSpot over HTTP while it fails on
purpose, notifications to a real SMTP-less mailbox (Django's locmem backend) and to webhook
receivers listening on a local port, and the evaluation run again and again as the schedule
would. The clock is moved by passing `now`, never by sleeping."""

from datetime import timedelta
import hashlib
import hmac
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import threading

from django.contrib import admin
from django.core import mail
from django.utils import timezone
import pytest

from delivery import services as delivery
from delivery.models import PushJob
from monitoring.admin import ChannelAdmin
from monitoring.models import Alert, AlertRule, Channel, Notification
from monitoring.services import alert_acknowledge, alerts_evaluate
from sandbox.faults import faults_reset, faults_set
from tests.factories import hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "alert-signing-secret"


class Receiver:
    """A webhook endpoint on a local port that keeps what it was sent and answers `status`."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 -- http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def at(self, path: str) -> list[dict]:
        return [r for r in self.received if r["path"] == path]


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


@pytest.fixture
def channels(receiver, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    email = Channel.objects.create(name="RevOps mail", kind=Channel.Kind.EMAIL, recipients="revops@example.com")
    slack = Channel.objects.create(name="Slack #revops", kind=Channel.Kind.SLACK, url=receiver.url("/slack"))
    signed = Channel(name="Pager webhook", kind=Channel.Kind.WEBHOOK, url=receiver.url("/hook"))
    signed.set_secret(SECRET)
    signed.save()
    return [email, slack, signed]


def error_rate_rule(channels, **fields) -> AlertRule:
    rule = AlertRule.objects.create(**{"name": "Sync error rate above 2%", "kind": AlertRule.Kind.SYNC_ERROR_RATE,
                                       "threshold": 2, "window_minutes": 15, "min_events": 5,
                                       "severity": AlertRule.Severity.CRITICAL, **fields})
    rule.channels.set(channels)
    return rule


def push_all_due() -> None:
    PushJob.objects.filter(status=PushJob.Status.PENDING).update(next_attempt_at=timezone.now())
    delivery.push_dispatch_due()


def verifies(delivery_: dict) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), delivery_["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(delivery_["headers"]["X-Crmsync-Signature"], expected)


def test_the_error_rate_alert_fires_once_notifies_every_channel_once_and_resolves_after_the_fault(
        live_server, receiver, channels):
    # given a CRM that answers every call with a 5xx, and leads to push to it
    hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot", batch_size=1)
    rule = error_rate_rule(channels)
    faults_set(crm="hubspot", error_rate=1.0)
    for i in range(6):
        delivery.push_jobs_enqueue(lead=make_lead(email=f"p{i}@example.org"))

    # when pushes keep failing and the schedule evaluates the rules several times
    for _ in range(3):
        push_all_due()
        alerts_evaluate()

    # then one episode, firing, with the numbers that tripped it
    [alert] = Alert.objects.filter(rule=rule)
    assert alert.state == Alert.State.FIRING
    assert alert.evidence["error_rate_pct"] == 100.0 and alert.evidence["errors"] >= 12
    assert alert.link.startswith("/admin/audit/synclog/")
    # and one message per channel, not one per check
    assert [m.subject for m in mail.outbox] == ["[crmsync critical] FIRING: Sync error rate above 2%"]
    assert "100.0% of" in mail.outbox[0].body and mail.outbox[0].to == ["revops@example.com"]
    [slack] = receiver.at("/slack")
    assert "FIRING" in json.loads(slack["body"])["text"]
    [signed] = receiver.at("/hook")
    assert verifies(signed)
    body = json.loads(signed["body"])
    assert (body["event"], body["rule"], body["evidence"]["error_rate_pct"]) == ("firing", rule.name, 100.0)
    assert set(Notification.objects.values_list("status", flat=True)) == {Notification.Status.SENT}

    # when the fault is lifted and the retries go through
    faults_reset(crm="hubspot")
    lifted = timezone.now()
    push_all_due()
    assert PushJob.objects.filter(status=PushJob.Status.SUCCEEDED).count() == 6
    # a full window later, only the successful calls are in it
    alerts_evaluate(now=lifted + timedelta(minutes=rule.window_minutes))

    # then the same episode resolved itself, and each channel heard so once
    [alert] = Alert.objects.filter(rule=rule)
    assert alert.state == Alert.State.RESOLVED and alert.resolved_at is not None
    assert [m.subject for m in mail.outbox][1:] == ["[crmsync critical] RESOLVED: Sync error rate above 2%"]
    assert len(receiver.at("/slack")) == 2
    resolved = receiver.at("/hook")[1]
    assert verifies(resolved) and json.loads(resolved["body"])["event"] == "resolved"


def test_a_firing_alert_reminds_once_after_its_reminder_time_unless_acknowledged(receiver, channels, django_user_model):
    reviewer = django_user_model.objects.create_user("rosa", "rosa@example.com", "pw-rosa-123")
    # given an episode that opened at `start` (a destination paused for its credentials)
    rule = AlertRule.objects.create(name="Paused", kind=AlertRule.Kind.PAUSED_FOR_CREDENTIALS, reminder_minutes=60)
    rule.channels.set(channels[1:2])
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    delivery.destination_pause(destination=destination, reason="CRM refused the credentials: INVALID_AUTHENTICATION")
    start = timezone.now()
    alerts_evaluate(now=start)
    alerts_evaluate(now=start + timedelta(minutes=30))
    assert len(receiver.at("/slack")) == 1

    # when it still holds past the reminder time: one reminder, not one per check
    alerts_evaluate(now=start + timedelta(minutes=61))
    alerts_evaluate(now=start + timedelta(minutes=62))
    texts = [json.loads(r["body"])["text"] for r in receiver.at("/slack")]
    assert len(texts) == 2 and "STILL FIRING" in texts[1]

    # when someone acknowledges it: no more reminders, and it still resolves by itself
    alert = Alert.objects.get(rule=rule)
    assert alert_acknowledge(alert_ids=[alert.pk], user=reviewer) == 1
    alerts_evaluate(now=start + timedelta(minutes=200))
    assert len(receiver.at("/slack")) == 2
    delivery.destination_resume(destination=destination)
    alerts_evaluate(now=start + timedelta(minutes=201))
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED and alert.acknowledged_by == reviewer
    assert "RESOLVED" in json.loads(receiver.at("/slack")[-1]["body"])["text"]


def test_a_failing_channel_is_retried_with_backoff_and_shows_its_error(receiver, channels):
    # given a Slack webhook that answers 500
    receiver.status = 500
    rule = AlertRule.objects.create(name="Paused", kind=AlertRule.Kind.PAUSED_FOR_CREDENTIALS)
    rule.channels.set(channels[1:2])
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    delivery.destination_pause(destination=destination, reason="CRM refused the credentials: 401")
    start = timezone.now()

    alerts_evaluate(now=start)

    # then the attempt is recorded with the channel's answer, and retried later, not at once
    notification = Notification.objects.get()
    assert (notification.status, notification.attempts, notification.http_status) == (Notification.Status.PENDING, 1, 500)
    assert "HTTP 500" in notification.last_error and notification.next_attempt_at > start
    alerts_evaluate(now=start)
    assert len(receiver.at("/slack")) == 1

    # when the channel works again and the backoff has run out, it goes through
    receiver.status = 200
    alerts_evaluate(now=notification.next_attempt_at + timedelta(seconds=1))
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.last_error) == (Notification.Status.SENT, 2, "")
    assert len(receiver.at("/slack")) == 2
    # and each attempt is on record: the channel's page shows its last failure
    attempts = list(notification.attempt_rows.order_by("attempted_at").values_list("ok", "http_status"))
    assert attempts == [(False, 500), (True, 200)]
    assert "HTTP 500" in ChannelAdmin(Channel, admin.site).last_failure(channels[1])


@pytest.mark.e2e
def test_a_stopped_worker_fires_the_heartbeat_alert(stack, channels):
    from audit.models import WorkerHeartbeat
    from tests.stack import wait_for

    # given a worker that has reported, and the heartbeat rule
    rule = AlertRule.objects.create(name="Worker heartbeat missing", kind=AlertRule.Kind.WORKER_HEARTBEAT, threshold=120,
                                   severity=AlertRule.Severity.CRITICAL)
    rule.channels.set(channels[:1])
    stack.start_worker()
    wait_for(lambda: WorkerHeartbeat.objects.exists(), timeout=60, what="the worker's first heartbeat")
    alerts_evaluate()
    assert not Alert.objects.filter(rule=rule).exists()

    # when the worker is stopped and its heartbeat grows older than the threshold
    stack.kill_worker()
    last_beat = WorkerHeartbeat.objects.order_by("-beat_at").values_list("beat_at", flat=True).first()
    alerts_evaluate(now=last_beat + timedelta(seconds=121))

    # then the alert fires and says how old the newest heartbeat is
    alert = Alert.objects.get(rule=rule)
    assert alert.state == Alert.State.FIRING and alert.evidence["newest_heartbeat_age_seconds"] >= 121
    assert [m.subject for m in mail.outbox] == ["[crmsync critical] FIRING: Worker heartbeat missing"]
