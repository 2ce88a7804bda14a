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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.operation} {self.lead_external_id} → {self.destination_name}"
