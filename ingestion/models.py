from django.db import models
from django.db.models import Q


class Source(models.Model):
    """Something that sends leads: a website form or a SaaS webhook."""

    class Kind(models.TextChoices):
        WEB_FORM = "web_form", "Web form (public)"
        JSON_WEBHOOK = "json_webhook", "Generic JSON webhook"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in the intake URL.")
    kind = models.CharField(max_length=40, choices=Kind.choices, default=Kind.WEB_FORM)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def intake_path(self) -> str:
        return f"/api/v1/sources/{self.slug}/submissions"


class Submission(models.Model):
    """One inbound request, stored verbatim before anything else happens to it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"  # committed and acknowledged, not yet mapped
        PROCESSED = "processed", "Processed"  # mapped into a lead
        REJECTED = "rejected", "Rejected"  # kept with reasons for a reviewer

    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="submissions")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED)
    reasons = models.JSONField(default=list, blank=True, help_text="Per-field reasons for a rejection.")
    raw_body = models.BinaryField(help_text="The exact bytes received.")
    content_type = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict, help_text="The parsed body.")
    headers = models.JSONField(default=dict, help_text="Request headers with secrets removed.")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    lead = models.ForeignKey(
        "crmsync.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions"
    )

    class Meta:
        ordering = ["-received_at"]
        indexes = [models.Index(fields=["status", "received_at"], name="submission_status_received")]
        constraints = [
            # Enforced by the database so concurrent retries of one sender's event make one row.
            models.UniqueConstraint(
                fields=["source", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="submission_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "processed", "rejected"]),
                name="submission_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Submission {self.pk} ({self.source.slug}, {self.status})"
