"""Tables of the built-in sandbox CRM. They belong to the sandbox alone: the product reaches
them only over HTTP, exactly as it reaches the real HubSpot."""

from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone


class SandboxContact(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Every property value as a string, as HubSpot stores and returns them.
    properties = models.JSONField(default=dict, blank=True)
    # Lower-cased copy of properties["email"], so the database enforces HubSpot's one contact
    # per email and lookups by email use an index.
    email = models.CharField(max_length=254, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    archived = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="sandbox_contact_unique_email"),
        ]
        # Every batch upsert from crmsync looks contacts up by this property.
        indexes = [models.Index(KeyTextTransform("crmsync_external_id", "properties"), name="sandbox_contact_ext_id")]

    def __str__(self) -> str:
        return self.email or f"contact {self.pk}"


class SandboxProperty(models.Model):
    """A contact property created through the properties API. Built-in properties are constants
    in code (properties.BUILT_IN), so a flushed test database still knows them."""

    name = models.CharField(max_length=100, unique=True)
    label = models.CharField(max_length=255)
    type = models.CharField(max_length=20)
    field_type = models.CharField(max_length=30)
    group_name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    options = models.JSONField(default=list, blank=True)
    has_unique_value = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "sandbox properties"

    def __str__(self) -> str:
        return self.name


class SandboxSettings(models.Model):
    """Knobs of one simulated CRM, created with defaults on first use and editable in the admin
    (a demo can slow replies down or lower the limits)."""

    crm = models.CharField(max_length=20, unique=True)
    rate_limit_max = models.PositiveIntegerField(default=190, help_text="Requests per interval (HubSpot Pro: 190 per 10 s).")
    rate_limit_interval_ms = models.PositiveIntegerField(default=10_000)
    daily_limit = models.PositiveIntegerField(default=1_000_000)
    search_limit_per_second = models.PositiveIntegerField(default=5, help_text="HubSpot's search endpoints allow 5 per second.")
    reply_delay_ms = models.PositiveIntegerField(
        default=0,
        help_text="When above 0, writes are committed first and the reply is sent this much later "
                  "(simulates a reply lost after the CRM applied the write).",
    )

    class Meta:
        verbose_name_plural = "sandbox settings"

    def __str__(self) -> str:
        return self.crm


class SandboxRateWindow(models.Model):
    """One request counter per CRM and window kind, shared by every web process through the
    database (process memory or LocMemCache would give each gunicorn worker its own budget)."""

    class Window(models.TextChoices):
        TEN_SECONDLY = "ten_secondly"
        DAILY = "daily"
        SEARCH_SECONDLY = "search_secondly"

    crm = models.CharField(max_length=20)
    window = models.CharField(max_length=20, choices=Window.choices)
    # Start of the current window in epoch milliseconds; a request in a later window resets count.
    window_start = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["crm", "window"], name="sandbox_rate_window_unique")]

    def __str__(self) -> str:
        return f"{self.crm} {self.window}"


class SandboxMetaLead(models.Model):
    """A lead of the sandbox Meta Lead Ads, served as Graph API's Lead node
    (GET /{version}/{leadgen_id}): what the product fetches after a leadgen webhook."""

    leadgen_id = models.CharField(max_length=64, unique=True)
    page_id = models.CharField(max_length=64, blank=True)
    form_id = models.CharField(max_length=64, blank=True)
    ad_id = models.CharField(max_length=64, blank=True)  # blank for organic and test-tool leads
    created_time = models.DateTimeField(default=timezone.now)
    # Graph's own shape: [{"name": "email", "values": ["ada@example.com"]}, ...]
    field_data = models.JSONField(default=list, blank=True)
    # The page access token that may read this lead. Indexed: a token no lead has is refused
    # as unparseable (code 190), one of another page's leads as missing permissions (code 100).
    access_token = models.CharField(max_length=255, db_index=True)

    def __str__(self) -> str:
        return self.leadgen_id
