from django.db import models


class SyncLog(models.Model):
    """One row per record per CRM call. Audit rows outlive what they describe, so the
    foreign keys are nullable and the identifiers are copied."""

    class Operation(models.TextChoices):
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        NOOP = "noop", "No change"
        ERROR = "error", "Error"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    destination = models.ForeignKey(
        "delivery.Destination", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    destination_name = models.CharField(max_length=200, blank=True)
    push_job = models.ForeignKey("delivery.PushJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="sync_logs")
    lead = models.ForeignKey("leads.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="sync_logs")
    lead_external_id = models.CharField(max_length=64, db_index=True)
    operation = models.CharField(max_length=20, choices=Operation.choices)
    outcome = models.CharField(
        max_length=20, blank=True,
        help_text="create, update, noop, permanent (review), transient (retried), rate_limited or auth.")
    crm_record_id = models.CharField(max_length=100, blank=True)
    http_status = models.PositiveIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    request = models.JSONField(default=dict, blank=True, help_text="What we sent for this record.")
    response = models.JSONField(default=dict, blank=True, help_text="What came back for this record.")
    attempt = models.PositiveIntegerField(default=1)
    duration_ms = models.PositiveIntegerField(default=0)
    correlation_id = models.CharField(
        max_length=64, blank=True, db_index=True,
        help_text="The correlation ID of the submission whose push job made this call (see its timeline).")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.operation} {self.lead_external_id} → {self.destination_name}"


class WorkerHeartbeat(models.Model):
    """One row per running worker process (`manage.py worker`), rewritten every few seconds:
    /readyz fails when the newest is older than CRMSYNC_WORKER_HEARTBEAT_MAX_AGE_SECONDS."""

    name = models.CharField(max_length=200, unique=True, help_text="host:pid of the worker process.")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-beat_at"]

    def __str__(self) -> str:
        return f"{self.name} (last beat {self.beat_at:%Y-%m-%d %H:%M:%S})"


class HourlyCount(models.Model):
    """Counts kept as work happens, one row per hour, metric, subject (a source's or a
    destination's ID, 0 for none) and outcome, so the dashboard and alerts read a few hundred
    rows however many leads there are (audit.buckets writes them)."""

    hour = models.DateTimeField(help_text="The start of the hour (UTC).")
    metric = models.CharField(max_length=40)
    subject_id = models.BigIntegerField(default=0)
    outcome = models.CharField(max_length=40)
    count = models.BigIntegerField(default=0, help_text="Events in the hour, or a gauge's highest sample.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["metric", "hour", "subject_id", "outcome"],
                                               name="hourlycount_unique")]

    def __str__(self) -> str:
        return f"{self.metric} {self.subject_id} {self.outcome} @ {self.hour:%Y-%m-%d %H:00}: {self.count}"
