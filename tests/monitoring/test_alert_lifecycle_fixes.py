"""How an alert's episode lives and what RevOps can set, as found in review 15: hourly windows
that cover whole hours, too few events that neither end nor open an episode, the episode of a
switched-off rule, a channel that raises anything, the rule and channel forms, the dashboard's
first bar, and "stuck in retries" counted from the first failure. The clock is moved by passing
`now`; mail goes to Django's locmem backend."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
import uuid

from cryptography.fernet import Fernet
from django.core import mail
from django.utils import timezone
import pytest

from audit import buckets
from audit.models import HourlyCount, SyncLog
from delivery import services as delivery
from delivery.models import PushJob
from leads.models import Team
from monitoring.dashboard import dashboard_data
from monitoring.models import Alert, AlertRule, Channel, Notification, NotificationAttempt
from monitoring.services import MAX_ATTEMPTS, alerts_evaluate
from tests.factories import hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _locmem_mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def only(rule: AlertRule) -> AlertRule:
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    return rule


def error_rate_rule(**fields) -> AlertRule:
    rule = AlertRule.objects.create(**{"name": "Sync error rate above 2%", "kind": AlertRule.Kind.SYNC_ERROR_RATE,
                                       "threshold": 2, "window_minutes": 15, "min_events": 20, **fields})
    return only(rule)


def mailbox() -> Channel:
    return Channel.objects.create(name="RevOps mail", kind=Channel.Kind.EMAIL, recipients="revops@example.com")


def failed_calls(at: datetime, n: int) -> None:
    before = set(SyncLog.objects.values_list("id", flat=True))
    SyncLog.objects.bulk_create(SyncLog(destination_name="HubSpot", operation=SyncLog.Operation.ERROR, outcome="transient")
                                for _ in range(n))
    SyncLog.objects.exclude(id__in=before).update(created_at=at)


def subjects() -> list[str]:
    return [m.subject.split("] ", 1)[1].split(":")[0] for m in mail.outbox]


# --- #2: hourly windows ------------------------------------------------------------------------


def test_an_hourly_rule_stays_one_episode_across_hour_boundaries():
    # given routing broken for three hours: 60 new leads an hour, every one without an owner
    rule = only(AlertRule.objects.get(kind=AlertRule.Kind.UNOWNED_LEADS))  # shipped: > 10 %, 60 min, >= 20 leads
    rule.channels.set([mailbox()])
    Team.objects.create(name="Sales", is_default=True)
    start = datetime(2026, 12, 1, 9, 0, tzinfo=dt_timezone.utc)
    evidence_after_the_hour = None
    for hour in range(3):
        for minute in range(60):
            at = start + timedelta(hours=hour, minutes=minute)
            row, _ = HourlyCount.objects.get_or_create(metric=buckets.NEW_LEAD, hour=buckets.hour_of(at), subject_id=0,
                                                       outcome="unowned")
            HourlyCount.objects.filter(pk=row.pk).update(count=minute + 1)  # the counts as they stand at `at`
            if minute % 5 == 4:
                alerts_evaluate(now=at + timedelta(seconds=30))
            if (hour, minute) == (1, 4):
                evidence_after_the_hour = Alert.objects.get(rule=rule).evidence

    # then one episode, one message: the hour boundary neither resolves it nor fires it again
    [alert] = Alert.objects.filter(rule=rule)
    assert alert.state == Alert.State.FIRING
    assert subjects() == ["FIRING"]
    # and just after 10:00 the last 60 minutes are judged: the previous hour is counted too
    assert evidence_after_the_hour["new_leads"] == 60 + 5
    assert evidence_after_the_hour["since"] == "2026-12-01T09:00:00+00:00"


# --- #6: too few events to judge ---------------------------------------------------------------


def error_rate_alert_firing() -> tuple[AlertRule, datetime]:
    """A CRM outage: 25 calls fail, and the error-rate rule (with a mail channel) fires."""
    rule = error_rate_rule()
    rule.channels.set([mailbox()])
    now = timezone.now()
    failed_calls(now - timedelta(minutes=1), 25)
    alerts_evaluate(now=now)
    assert Alert.objects.get(rule=rule).state == Alert.State.FIRING
    return rule, now


def test_too_few_failing_calls_keep_an_open_episode_open_and_say_so():
    # given a CRM outage: 25 calls fail and the alert fires
    rule, t0 = error_rate_alert_firing()

    # when the retries back off: the next window holds only 10 calls, every one failing
    failed_calls(t0 + timedelta(minutes=16), 10)
    alerts_evaluate(now=t0 + timedelta(minutes=17))

    # then the episode stays open (no RESOLVED message), and the alert says why it cannot judge
    [alert] = Alert.objects.filter(rule=rule)
    assert alert.state == Alert.State.FIRING
    assert alert.evidence["too_few_events"] is True and alert.evidence["min_events"] == 20
    assert alert.evidence["calls"] == 10 and "Too few to judge (at least 20 needed)" in alert.summary
    assert alert.last_seen_at == t0

    # when the next retry round fails again: still the same episode, no new FIRING
    failed_calls(t0 + timedelta(minutes=20), 25)
    alerts_evaluate(now=t0 + timedelta(minutes=21))
    assert Alert.objects.filter(rule=rule).count() == 1
    assert subjects() == ["FIRING"]

    # when the CRM is back and a window holds no failure: it resolves
    alerts_evaluate(now=t0 + timedelta(minutes=40))
    assert Alert.objects.get(rule=rule).state == Alert.State.RESOLVED
    assert subjects() == ["FIRING", "RESOLVED"]


def test_too_few_failing_calls_do_not_open_an_episode():
    rule = error_rate_rule()
    now = timezone.now()
    failed_calls(now - timedelta(minutes=1), 10)

    alerts_evaluate(now=now)

    assert not Alert.objects.filter(rule=rule).exists()


# --- #5: a rule switched off -------------------------------------------------------------------


def test_switching_a_rule_off_resolves_its_open_episode_and_says_why():
    # given a firing error-rate alert with a mail channel
    rule, now = error_rate_alert_firing()

    # when RevOps switch the rule off while the fault lasts
    AlertRule.objects.filter(pk=rule.pk).update(enabled=False)
    alerts_evaluate(now=now + timedelta(minutes=1))

    # then the episode is resolved, saying why, and the channel hears so as for any resolution
    alert = Alert.objects.get(rule=rule)
    assert alert.state == Alert.State.RESOLVED and alert.resolved_at == now + timedelta(minutes=1)
    assert alert.summary.startswith("Resolved because the rule was switched off.")
    assert alert.evidence["resolved_because"] == "Resolved because the rule was switched off."
    assert subjects() == ["FIRING", "RESOLVED"]
    assert "switched off" in mail.outbox[1].body

    # and switched on again weeks later, it starts a new episode rather than reminding of the old one
    AlertRule.objects.filter(pk=rule.pk).update(enabled=True)
    later = now + timedelta(days=20)
    failed_calls(later - timedelta(minutes=1), 25)
    alerts_evaluate(now=later)
    assert list(Alert.objects.filter(rule=rule).order_by("id").values_list("state", flat=True)) == ["resolved", "firing"]
    assert subjects() == ["FIRING", "RESOLVED", "FIRING"]


# --- #4: a channel that raises anything --------------------------------------------------------


def test_a_secret_that_no_longer_decrypts_is_a_failed_attempt_and_the_other_channels_still_hear(settings):
    # given a signed webhook channel and a mail channel on a firing rule
    hook = Channel(name="Pager webhook", kind=Channel.Kind.WEBHOOK, url="https://hooks.example.invalid/crmsync")
    hook.set_secret("s3cret")
    hook.save()
    rule = error_rate_rule()
    rule.channels.set([hook, mailbox()])
    now = timezone.now()
    failed_calls(now - timedelta(minutes=1), 25)
    # when the encryption key is rotated without the old one: the stored secret no longer decrypts
    settings.CRMSYNC_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    report = alerts_evaluate(now=now)

    # then the run goes on: the mail goes out, and the webhook's failure is on record with its reason
    assert subjects() == ["FIRING"]
    assert (report.sent, report.send_failures) == (1, 1)
    notification = Notification.objects.get(channel=hook)
    assert (notification.status, notification.attempts) == (Notification.Status.PENDING, 1)
    assert "no longer decrypts" in notification.last_error and notification.next_attempt_at > now
    [attempt] = NotificationAttempt.objects.filter(notification=notification)
    assert not attempt.ok and "no longer decrypts" in attempt.error

    # and it is retried with backoff until it gives up, like any failing channel
    at = now
    for _ in range(MAX_ATTEMPTS + 2):
        at = Notification.objects.get(pk=notification.pk).next_attempt_at + timedelta(seconds=1)
        alerts_evaluate(now=at)
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (Notification.Status.FAILED, MAX_ATTEMPTS)


def test_an_email_backend_that_raises_anything_is_a_failed_attempt(settings):
    settings.EMAIL_BACKEND = "tests.monitoring.test_alert_lifecycle_fixes.BrokenBackend"
    rule = error_rate_rule()
    rule.channels.set([mailbox()])
    now = timezone.now()
    failed_calls(now - timedelta(minutes=1), 25)

    report = alerts_evaluate(now=now)

    assert report.send_failures == 1
    notification = Notification.objects.get()
    assert notification.attempts == 1 and notification.last_error == "ValueError: the mail backend is misconfigured"


class BrokenBackend:
    """An email backend that fails with an error outside SMTPException/OSError."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ValueError("the mail backend is misconfigured")


# --- #8: stuck in retries -----------------------------------------------------------------------


def stuck_rule() -> AlertRule:
    return only(AlertRule.objects.get(kind=AlertRule.Kind.STUCK_IN_RETRIES))  # shipped: 30 min


def test_the_first_attempt_of_a_job_that_waited_is_not_stuck_in_retries():
    rule = stuck_rule()
    destination = hubspot_destination(base_url="http://127.0.0.1:9")
    job = PushJob.objects.create(lead=make_lead(), destination=destination, next_attempt_at=timezone.now())
    # it waited 45 minutes without any attempt (destination paused, budget spent, a backlog)
    PushJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=45))
    # and a worker now claims it for its first attempt
    assert delivery._claim(uuid.uuid4(), 100) == 1

    alerts_evaluate(now=timezone.now())

    assert not Alert.objects.filter(rule=rule).exists()


def test_a_job_failing_for_longer_than_the_threshold_is_stuck_in_retries():
    rule = stuck_rule()
    destination = hubspot_destination(base_url="http://127.0.0.1:9")
    now = timezone.now()
    recent = PushJob.objects.create(lead=make_lead(email="recent@example.com"), destination=destination,
                                    next_attempt_at=now, attempts=1, last_error_code="HTTP_503")
    stuck = PushJob.objects.create(lead=make_lead(email="stuck@example.com"), destination=destination,
                                   next_attempt_at=now, attempts=3, last_error_code="HTTP_503")
    PushJob.objects.update(created_at=now - timedelta(hours=2))
    for job, failed_at in ((recent, now - timedelta(minutes=5)), (stuck, now - timedelta(minutes=40))):
        row = SyncLog.objects.create(destination_name="HubSpot", push_job=job, operation=SyncLog.Operation.ERROR,
                                     outcome="transient")
        SyncLog.objects.filter(pk=row.pk).update(created_at=failed_at)

    alerts_evaluate(now=now)

    alert = Alert.objects.get(rule=rule)
    assert alert.evidence["jobs"] == 1 and [row["id"] for row in alert.evidence["oldest"]] == [stuck.pk]
    assert alert.evidence["oldest"][0]["first_failed_at"] == (now - timedelta(minutes=40)).isoformat()


# --- #7: what a rule can be given --------------------------------------------------------------

RULE_FORM = {"severity": "warning", "enabled": "on", "min_events": "20", "reminder_minutes": "240",
             "notify_resolved": "on"}
NONSENSE = [
    # (kind, threshold, window, the field refused, its message)
    (AlertRule.Kind.SYNC_ERROR_RATE, "-5", "15", "threshold", "the threshold is a percentage from 0 to 100"),
    (AlertRule.Kind.REJECTED_SHARE, "250", "60", "threshold", "the threshold is a percentage from 0 to 100"),
    (AlertRule.Kind.QUEUE_BACKLOG, "-1", "15", "threshold", "the threshold is a number of items from 0 to 99999"),
    (AlertRule.Kind.OLD_CONFLICTS, "1e300", "15", "threshold", "the threshold is a number of days from 0 to 90"),
    (AlertRule.Kind.SYNC_ERROR_RATE, "2", "0", "window_minutes", "The window is from 1 minute to 129,600 minutes"),
    (AlertRule.Kind.SYNC_ERROR_RATE, "2", "999999999", "window_minutes", "The window is from 1 minute to 129,600 minutes"),
]


@pytest.mark.parametrize("kind,threshold,window,field,message", NONSENSE,
                         ids=["negative share", "share above 100", "negative backlog", "conflicts of 1e300 days",
                              "zero window", "window of centuries"])
def test_a_rule_that_makes_no_sense_is_refused_on_its_field(operator, kind, threshold, window, field, message):
    answer = operator.post("/admin/monitoring/alertrule/add/", {
        **RULE_FORM, "name": "Nonsense", "kind": kind, "threshold": threshold, "window_minutes": window})

    assert answer.status_code == 200
    assert message in " ".join(answer.context["adminform"].form.errors[field])
    assert not AlertRule.objects.filter(name="Nonsense").exists()


def test_a_sensible_rule_is_saved_and_an_existing_one_refuses_reminders_years_apart(operator):
    answer = operator.post("/admin/monitoring/alertrule/add/", {
        **RULE_FORM, "name": "Errors above 5%", "kind": AlertRule.Kind.SYNC_ERROR_RATE, "threshold": "5",
        "window_minutes": "30"})
    assert answer.status_code == 302
    rule = AlertRule.objects.get(name="Errors above 5%")

    answer = operator.post(f"/admin/monitoring/alertrule/{rule.pk}/change/", {
        **RULE_FORM, "name": rule.name, "kind": rule.kind, "threshold": "5", "window_minutes": "30",
        "reminder_minutes": "999999999"})
    assert answer.status_code == 200
    assert "Reminders come at most 129,600 minutes (90 days) apart" in " ".join(
        answer.context["adminform"].form.errors["reminder_minutes"])
    rule.refresh_from_db()
    assert rule.reminder_minutes == 240


def test_every_shipped_rule_is_within_its_kinds_bounds():
    for rule in AlertRule.objects.all():
        rule.full_clean()


# --- #11: a signed webhook needs its secret ------------------------------------------------------

CHANNEL_FORM = {"name": "Pager", "kind": "webhook", "recipients": "", "url": "https://hooks.example.com/crmsync",
                "signature_header": "X-Crmsync-Signature", "enabled": "on"}


def test_a_signed_webhook_without_a_secret_is_refused_and_keeps_its_secret_when_edited(operator):
    answer = operator.post("/admin/monitoring/channel/add/", {**CHANNEL_FORM, "secret": ""})
    assert answer.status_code == 200
    assert "A signed webhook needs the secret its receiver checks the signature with." in answer.content.decode()
    assert not Channel.objects.exists()

    # once it has a secret, editing it without typing the secret again keeps the stored one
    assert operator.post("/admin/monitoring/channel/add/", {**CHANNEL_FORM, "secret": "s3cret"}).status_code == 302
    channel = Channel.objects.get()
    answer = operator.post(f"/admin/monitoring/channel/{channel.pk}/change/", {**CHANNEL_FORM, "name": "Pager 2",
                                                                               "secret": ""})
    assert answer.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Pager 2" and channel.secret() == "s3cret"


# --- #10: the dashboard's first bar --------------------------------------------------------------


@pytest.mark.parametrize("range_key,per_bin", [("7d", 6), ("30d", 24)])
def test_the_first_bar_of_a_chart_counts_its_whole_period(range_key, per_bin):
    # given exactly one dead letter every hour for 40 days
    now = datetime(2026, 12, 1, 10, 30, tzinfo=dt_timezone.utc)
    HourlyCount.objects.bulk_create(HourlyCount(metric=buckets.PUSH, hour=buckets.hour_of(now - timedelta(hours=h)),
                                                subject_id=1, outcome="dead", count=1) for h in range(40 * 24))

    data = dashboard_data(range_key=range_key, now=now)

    # then every whole bar reads the same, the first one too (the last is the period so far)
    assert set(data["dead_letters"][:-1]) == {per_bin}
    # and the totals still cover the range only
    span = {"7d": 7 * 24, "30d": 30 * 24}[range_key]
    assert sum(data["pushes"]["series"]["dead letter"]) == span
