import uuid

from django.db import models
from django.db.models import Q

from crmsync import secrets


def new_external_id() -> str:
    # Our own stable key: every CRM write is an upsert on it, so any retry is safe.
    return f"lead_{uuid.uuid4().hex}"


class Lead(models.Model):
    """The canonical person, owned by us and pushed to every destination."""

    external_id = models.CharField(max_length=64, unique=True, default=new_external_id, editable=False)
    email = models.CharField(max_length=254, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    company = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=100, blank=True)
    attribution = models.JSONField(default=dict, blank=True)
    attributes = models.JSONField(default=dict, blank=True, help_text="Custom attributes from mappings.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            # One lead per normalized email; concurrent submissions for one person make one row.
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="lead_unique_email"),
        ]

    def __str__(self) -> str:
        return self.email or self.external_id


class Destination(models.Model):
    """A CRM or endpoint that leads are pushed to."""

    class Kind(models.TextChoices):
        HUBSPOT = "hubspot", "HubSpot"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HUBSPOT)
    base_url = models.URLField(help_text="e.g. https://api.hubapi.com, or the built-in sandbox.")
    credentials_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of an environment variable holding the token. Takes precedence over a stored token.",
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)
    upsert_property = models.CharField(
        max_length=100,
        default="crmsync_external_id",
        help_text="A unique CRM property that holds our lead's external ID.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_token(self, token: str) -> None:
        self.credentials_encrypted = secrets.encrypt(token)

    def get_token(self) -> str:
        if self.credentials_env:
            return secrets.from_env(self.credentials_env)
        return secrets.decrypt(self.credentials_encrypted) if self.credentials_encrypted else ""


class PushJob(models.Model):
    """The outbox: one lead change to deliver to one destination."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed (needs review)"
        DEAD = "dead", "Dead letter"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="push_jobs")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="push_jobs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    crm_record_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="pushjob_due"),
            models.Index(fields=["status", "leased_until"], name="pushjob_lease"),
        ]
        constraints = [
            # A lead changed twice before delivery needs one pending job, not two: the
            # dispatcher always sends the lead as it is now.
            models.UniqueConstraint(
                fields=["lead", "destination"],
                condition=Q(status="pending"),
                name="pushjob_one_pending_per_lead_destination",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["pending", "in_progress", "succeeded", "failed", "dead"]),
                name="pushjob_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"PushJob {self.pk} ({self.status})"

