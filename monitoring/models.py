"""Alerts RevOps set and trust: rules (a condition from a fixed list, a threshold, a window),
the episodes they open (firing -> acknowledged -> resolved, one per rule at a time, enforced by
the database), the channels that carry them and every notification attempt, so that a channel
that fails is itself visible."""

import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core import secrets


class Channel(models.Model):
    """Where notifications go: email (Django's mail settings), a Slack-compatible incoming
    webhook, or a generic webhook signed with HMAC-SHA256 over the body."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        SLACK = "slack", "Slack-compatible incoming webhook"
        WEBHOOK = "webhook", "Signed webhook (JSON, HMAC-SHA256)"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.EMAIL)
    recipients = models.TextField(blank=True, help_text="Email: one address per line.")
    url = models.URLField(blank=True, max_length=1000, help_text="Slack or webhook: the URL to POST to.")
    signature_header = models.CharField(
        max_length=100, default="X-Crmsync-Signature",
        help_text="Webhook: the header carrying sha256=<hex HMAC-SHA256 of the body with the secret>.")
    secret_encrypted = models.TextField(blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def recipient_list(self) -> list[str]:
        return [line.strip() for line in self.recipients.splitlines() if line.strip()]

    def set_secret(self, value: str) -> None:
        self.secret_encrypted = secrets.encrypt(value) if value else ""

    def secret(self) -> str:
        return secrets.decrypt(self.secret_encrypted) if self.secret_encrypted else ""

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL and not self.recipient_list:
            raise ValidationError({"recipients": "An email channel needs at least one address."})
        if self.kind != self.Kind.EMAIL and not self.url:
            raise ValidationError({"url": "A webhook channel needs the URL to POST to."})


class AlertRule(models.Model):
    """One condition watched on a schedule (monitoring.conditions has what each kind measures)."""

    class Kind(models.TextChoices):
        SYNC_ERROR_RATE = "sync_error_rate", "Sync error rate above threshold (%)"
        QUEUE_BACKLOG = "queue_backlog", "Queue backlog above threshold (items waiting)"
        STUCK_IN_RETRIES = "stuck_in_retries", "Lead stuck in retries longer than threshold (minutes)"
        ZERO_SUCCESSES = "zero_successes", "No successful push in the window although pushes were tried"
        PAUSED_FOR_CREDENTIALS = "paused_for_credentials", "Destination paused: the CRM refused the credentials"
        RATE_LIMITED_SHARE = "rate_limited_share", "Rate-limited share of CRM calls above threshold (%)"
        DAILY_BUDGET = "daily_budget", "Daily request budget used above threshold (%)"
        NEW_UNMAPPED_FIELD = "new_unmapped_field", "A source sends a field no mapping rule names"
        REJECTED_SHARE = "rejected_share", "Rejected share of submissions above threshold (%)"
        WORKER_HEARTBEAT = "worker_heartbeat", "No worker heartbeat for longer than threshold (seconds)"
        OLD_CONFLICTS = "old_conflicts", "Two-way sync conflicts open longer than threshold (days)"
        FIELDS_STOPPED = "fields_stopped", "Mapped fields stopped arriving"
        UNOWNED_LEADS = "unowned_leads", "New leads left without an owner above threshold (%)"
        CONSENT_MISSING = "consent_missing", "Leads without the consent a source used to send above threshold (%)"

    class Severity(models.TextChoices):
        INFO = "info", "Info"
        WARNING = "warning", "Warning"
        CRITICAL = "critical", "Critical"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    threshold = models.FloatField(default=0, help_text="What the condition is compared with (its unit is in the kind).")
    window_minutes = models.PositiveIntegerField(
        default=15, help_text="How far back the condition looks. Hourly counts (consent, unowned leads) round it up to hours.")
    min_events = models.PositiveIntegerField(
        default=20, help_text="Shares (%) are judged only on at least this many events in the window.")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    channels = models.ManyToManyField(Channel, blank=True, related_name="rules")
    enabled = models.BooleanField(default=True)
    reminder_minutes = models.PositiveIntegerField(
        default=240, help_text="Remind the channels while it keeps firing unacknowledged after this long; 0: never.")
    notify_resolved = models.BooleanField(default=True, help_text="Tell the channels when it resolves itself.")
    last_evaluated_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False, help_text="Why the last evaluation failed, if it did.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """Each number within what its kind means, refused on its own field: a negative share fires
        for ever, one above 100 % never, and a window of centuries fails on every evaluation."""
        errors = {}
        unit, low, high = THRESHOLD_RANGES.get(self.kind, ("", 0, MAX_WINDOW_MINUTES))
        if self.threshold is not None and not (math.isfinite(self.threshold) and low <= self.threshold <= high):
            errors["threshold"] = f"For this kind the threshold is {unit or 'a number'} from {low:g} to {high:g}."
        if self.window_minutes is not None and not 1 <= self.window_minutes <= MAX_WINDOW_MINUTES:
            errors["window_minutes"] = f"The window is from 1 minute to {MAX_WINDOW_MINUTES:,} minutes (90 days)."
        if self.reminder_minutes is not None and self.reminder_minutes > MAX_WINDOW_MINUTES:
            errors["reminder_minutes"] = f"Reminders come at most {MAX_WINDOW_MINUTES:,} minutes (90 days) apart; 0: never."
        if errors:
            raise ValidationError(errors)


# The longest window, reminder time or age a rule can be given: 90 days.
MAX_WINDOW_MINUTES = 90 * 24 * 60
# monitoring.conditions stops counting a backlog here: a larger threshold could never be passed.
COUNT_CAP = 100_000
_SHARE = ("a percentage", 0, 100)
# kind: (unit, lowest, highest) of its threshold.
THRESHOLD_RANGES = {
    AlertRule.Kind.SYNC_ERROR_RATE: _SHARE,
    AlertRule.Kind.RATE_LIMITED_SHARE: _SHARE,
    AlertRule.Kind.DAILY_BUDGET: _SHARE,
    AlertRule.Kind.REJECTED_SHARE: _SHARE,
    AlertRule.Kind.UNOWNED_LEADS: _SHARE,
    AlertRule.Kind.CONSENT_MISSING: _SHARE,
    AlertRule.Kind.QUEUE_BACKLOG: ("a number of items", 0, COUNT_CAP - 1),
    AlertRule.Kind.STUCK_IN_RETRIES: ("a number of minutes", 0, MAX_WINDOW_MINUTES),
    AlertRule.Kind.WORKER_HEARTBEAT: ("a number of seconds", 0, MAX_WINDOW_MINUTES * 60),
    AlertRule.Kind.OLD_CONFLICTS: ("a number of days", 0, MAX_WINDOW_MINUTES // (24 * 60)),
}


class Alert(models.Model):
    """One episode of a rule's condition: opened when it starts to hold, resolved when it stops
    holding. One notification per channel when it opens (and a reminder, and the resolution),
    not one per check."""

    class State(models.TextChoices):
        FIRING = "firing", "Firing"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    state = models.CharField(max_length=15, choices=State.choices, default=State.FIRING)
    severity = models.CharField(max_length=10, choices=AlertRule.Severity.choices)
    summary = models.CharField(max_length=500)
    evidence = models.JSONField(default=dict, blank=True, help_text="The numbers that tripped it, as last checked.")
    link = models.CharField(max_length=500, blank=True, help_text="The admin list of what it is about.")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(help_text="The last evaluation that found the condition holding.")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    reminded_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        permissions = [("acknowledge_alert", "Can acknowledge alerts")]
        indexes = [models.Index(fields=["state", "started_at"], name="alert_state_started")]
        constraints = [
            # One episode at a time per rule, however many workers evaluate at once.
            models.UniqueConstraint(fields=["rule"], condition=~Q(state="resolved"), name="alert_one_open_per_rule"),
            models.CheckConstraint(condition=Q(state__in=["firing", "acknowledged", "resolved"]), name="alert_state_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.get_state_display().lower()} since {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.state != self.State.RESOLVED


class Notification(models.Model):
    """One message of an episode to one channel, and how sending it went. Retried with the
    outbound seam's backoff; a channel whose messages fail shows it here and on its page."""

    class Event(models.TextChoices):
        FIRING = "firing", "Firing"
        REMINDER = "reminder", "Reminder"
        RESOLVED = "resolved", "Resolved"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=10, choices=Event.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_error = models.TextField(blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due")]
        constraints = [
            models.CheckConstraint(condition=Q(status__in=["pending", "sent", "failed"]), name="notification_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} to {self.channel} ({self.status})"


class NotificationAttempt(models.Model):
    """One try at sending a notification: when, whether it went through, what the channel said."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempt_rows")
    attempted_at = models.DateTimeField()
    ok = models.BooleanField()
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-attempted_at", "-id"]

    def __str__(self) -> str:
        return f"{'sent' if self.ok else 'failed'} at {self.attempted_at:%Y-%m-%d %H:%M:%S}"
