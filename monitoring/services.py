"""Alert evaluation and notification, run by the schedule `crmsync: evaluate alerts` every
minute (monitoring.tasks.alerts_evaluate).

Each run samples the gauges the dashboard charts (backlogs, budgets, open conflicts), checks
every enabled rule and moves its episode along: a condition that starts to hold opens an alert
and queues one notification per channel; while it holds the alert's evidence is refreshed (and
a reminder goes out once, after the rule's reminder time, unless someone acknowledged it); when
it stops holding the alert resolves itself. Too few events to judge change nothing. The open
episode of a rule switched off resolves, saying so. Notifications are then sent, each retried
with the outbound seam's backoff until it goes through or MAX_ATTEMPTS is reached; whatever a
channel raises is a failed attempt on record, never the end of the run.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
import logging
import time

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from audit import buckets
from core.outbound import backoff_seconds
from delivery.models import PushJob, RateBudget
from ingestion.models import Submission
from monitoring import channels, conditions
from monitoring.models import Alert, AlertRule, Notification, NotificationAttempt

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
# A claimed notification is not taken by another sender for this long (a sender that died
# mid-send leaves it to be retried after this).
SEND_LEASE = timedelta(seconds=120)
SWITCHED_OFF = "Resolved because the rule was switched off."


@dataclass
class EvaluationReport:
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    failed_rules: list[str] = field(default_factory=list)
    sent: int = 0
    send_failures: int = 0


def alerts_evaluate(*, now: datetime | None = None) -> EvaluationReport:
    """One pass over the enabled rules. `now` is injectable (tests move the clock, not sleep)."""
    now = now or timezone.now()
    report = EvaluationReport()
    gauges_sample(now=now)
    for rule in AlertRule.objects.filter(enabled=True):
        try:
            result = conditions.check(rule, now)
        except Exception as exc:  # one broken rule must not silence the others
            log.exception("alert rule failed", extra={"rule": rule.name})
            AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now, last_error=f"{type(exc).__name__}: {exc}"[:2000])
            report.failed_rules.append(rule.name)
            continue
        AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now, last_error="")
        _episode_step(rule, result, now, report)
    _switched_off_resolve(now, report)
    sent, failed = notifications_send_due(now=now)
    report.sent, report.send_failures = sent, failed
    return report


def _episode_step(rule: AlertRule, result: conditions.Check, now: datetime, report: EvaluationReport) -> None:
    alert = Alert.objects.filter(rule=rule).exclude(state=Alert.State.RESOLVED).first()
    if result.holds and alert is None:
        if _open(rule, result, now):
            report.opened.append(rule.name)
    elif result.holds:
        Alert.objects.filter(pk=alert.pk).update(summary=result.summary[:500], evidence=result.evidence,
                                                 link=result.link, last_seen_at=now)
        _remind_if_due(rule, alert, now)
    elif alert is not None and result.too_few:
        # Not over: the few events there are still look bad. The evidence says so; last_seen_at
        # stays the last time the condition was judged to hold.
        Alert.objects.filter(pk=alert.pk).update(summary=result.summary[:500], evidence=result.evidence, link=result.link)
        _remind_if_due(rule, alert, now)
    elif alert is not None and _resolve(rule, alert, now):
        report.resolved.append(rule.name)


def _switched_off_resolve(now: datetime, report: EvaluationReport) -> None:
    """Nothing evaluates a disabled rule, so its open episode would stay firing forever."""
    for alert in Alert.objects.filter(rule__enabled=False).exclude(state=Alert.State.RESOLVED).select_related("rule"):
        if _resolve(alert.rule, alert, now, because=SWITCHED_OFF):
            report.resolved.append(alert.rule.name)


def _open(rule: AlertRule, result: conditions.Check, now: datetime) -> Alert | None:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(rule=rule, severity=rule.severity, summary=result.summary[:500],
                                         evidence=result.evidence, link=result.link, started_at=now, last_seen_at=now)
            _notify(alert, Notification.Event.FIRING, now)
    except IntegrityError:
        return None  # another evaluator opened this episode a moment ago (alert_one_open_per_rule)
    log.warning("alert firing", extra={"rule": rule.name, "summary": result.summary, "alert": True})
    return alert


def _remind_if_due(rule: AlertRule, alert: Alert, now: datetime) -> None:
    if alert.state != Alert.State.FIRING or not rule.reminder_minutes:
        return
    due = (alert.reminded_at or alert.started_at) + timedelta(minutes=rule.reminder_minutes)
    if now < due:
        return
    with transaction.atomic():
        # Conditional: of two evaluators, one reminds.
        if Alert.objects.filter(pk=alert.pk, state=Alert.State.FIRING, reminded_at=alert.reminded_at).update(reminded_at=now):
            alert.refresh_from_db()
            _notify(alert, Notification.Event.REMINDER, now)


def _resolve(rule: AlertRule, alert: Alert, now: datetime, *, because: str = "") -> bool:
    """Close the episode; `because` (when not that the condition cleared) goes into the summary
    and the evidence, so the alerts page and the resolved message say why."""
    noted = {"summary": f"{because} {alert.summary}"[:500], "evidence": {**alert.evidence, "resolved_because": because}} \
        if because else {}
    with transaction.atomic():
        if not Alert.objects.filter(pk=alert.pk).exclude(state=Alert.State.RESOLVED).update(
                state=Alert.State.RESOLVED, resolved_at=now, **noted):
            return False
        if rule.notify_resolved:
            alert.refresh_from_db()
            _notify(alert, Notification.Event.RESOLVED, now)
    log.info("alert resolved", extra={"rule": rule.name, "because": because})
    return True


def _notify(alert: Alert, event: str, now: datetime) -> list[Notification]:
    targets = alert.rule.channels.filter(enabled=True)
    return Notification.objects.bulk_create(
        Notification(alert=alert, channel=channel, event=event, next_attempt_at=now) for channel in targets)


def alert_acknowledge(*, alert_ids: list[int], user) -> int:
    """Someone is on it: no more reminders for these episodes. They still resolve by themselves."""
    return Alert.objects.filter(pk__in=alert_ids, state=Alert.State.FIRING).update(
        state=Alert.State.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user)


# --- Sending ---------------------------------------------------------------------------------


def notifications_send_due(*, now: datetime | None = None) -> tuple[int, int]:
    """Send every due notification; returns (sent, failed attempts)."""
    now = now or timezone.now()
    due = Notification.objects.filter(status=Notification.Status.PENDING, next_attempt_at__lte=now)
    ids = list(due.order_by("next_attempt_at").values_list("id", flat=True)[:200])
    sent = failed = 0
    for notification_id in ids:
        # Claim by conditional UPDATE: another sender that read the same row finds it moved.
        if not due.filter(pk=notification_id).update(next_attempt_at=now + SEND_LEASE):
            continue
        notification = Notification.objects.select_related("alert__rule", "channel").get(pk=notification_id)
        if _send_one(notification, now):
            sent += 1
        else:
            failed += 1
    return sent, failed


def _send_one(notification: Notification, now: datetime) -> bool:
    attempts = notification.attempts + 1
    started = time.monotonic()
    try:
        status = channels.send(notification)
    except Exception as exc:  # anything a channel raises is a failed attempt on record, retried like the others
        error = str(exc) if isinstance(exc, channels.ChannelError) else f"{type(exc).__name__}: {exc}"
        http_status = getattr(exc, "http_status", None) if isinstance(exc, channels.ChannelError) else None
        _attempt_record(notification, started, ok=False, http_status=http_status, error=error)
        gave_up = attempts >= MAX_ATTEMPTS
        Notification.objects.filter(pk=notification.pk).update(
            attempts=attempts, last_error=error[:2000], http_status=http_status,
            status=Notification.Status.FAILED if gave_up else Notification.Status.PENDING,
            next_attempt_at=now + timedelta(seconds=backoff_seconds(attempts)))
        log.error("alert notification failed", extra={"channel": notification.channel.name, "attempt": attempts,
                                                      "error": error[:500], "gave_up": gave_up, "alert": True})
        return False
    _attempt_record(notification, started, ok=True, http_status=status)
    Notification.objects.filter(pk=notification.pk).update(
        attempts=attempts, status=Notification.Status.SENT, sent_at=timezone.now(), http_status=status, last_error="")
    return True


def _attempt_record(notification: Notification, started: float, *, ok: bool, http_status: int | None = None,
                    error: str = "") -> None:
    NotificationAttempt.objects.create(notification=notification, attempted_at=timezone.now(), ok=ok,
                                       http_status=http_status, error=error[:2000],
                                       duration_ms=int((time.monotonic() - started) * 1000))


# --- Gauges for the dashboard ------------------------------------------------------------------


def gauges_sample(*, now: datetime | None = None) -> None:
    """Record the backlogs, the day's budget use and open conflicts as this hour's highest
    sample: a handful of indexed counts once a minute, so the dashboard never counts."""
    now = now or timezone.now()
    received = Submission.objects.filter(status=Submission.Status.RECEIVED).order_by()[:conditions.COUNT_CAP].count()
    buckets.gauge_record(metric=buckets.BACKLOG, value=received, at=now)
    pending = PushJob.objects.filter(status=PushJob.Status.PENDING).order_by().values_list("destination_id").annotate(n=Count("id"))
    for destination_id, n in pending:
        buckets.gauge_record(metric=buckets.BACKLOG, subject_id=destination_id, value=n, at=now)
    for destination_id, used in RateBudget.objects.filter(day=now.date().isoformat()).values_list("destination_id", "day_count"):
        buckets.gauge_record(metric=buckets.BUDGET_USED, subject_id=destination_id, value=used, at=now)
    model = conditions.conflict_model()
    if model is not None:
        buckets.gauge_record(metric=buckets.OPEN_CONFLICTS, value=model.objects.filter(Q(status="open")).count(), at=now)
