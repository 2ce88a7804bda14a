from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from audit.logging import correlation_id_new
from ingestion.presets import AUTH_CHOICES, KIND_CHOICES, PRESETS, Auth, Preset
from ingestion.signatures import GenericHmacOptions


class Source(models.Model):
    """Something that sends leads: a website form or a SaaS webhook."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in the intake URL.")
    kind = models.CharField(max_length=40, choices=KIND_CHOICES, default="web_form",
                            help_text="A preset: content types, signature scheme, idempotency key, parsing.")
    auth = models.CharField(max_length=20, choices=AUTH_CHOICES, blank=True, default="",
                            help_text="How senders prove who they are. Empty: the preset's default.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    max_body_bytes = models.PositiveIntegerField(default=256 * 1024, help_text="Larger bodies get 413.")
    # Public web forms
    allowed_origins = models.TextField(
        blank=True, help_text="Web forms: one origin per line (https://www.example.com). Empty: any origin.")
    honeypot_field = models.CharField(
        max_length=100, blank=True, default="_gotcha",
        help_text="Web forms: a hidden field people leave empty; if filled, the submission is kept as spam.")
    ip_limit_per_minute = models.PositiveIntegerField(default=30, help_text="Web forms: requests per IP per minute.")
    source_limit_per_minute = models.PositiveIntegerField(default=1200, help_text="Web forms: requests per minute in all.")
    idempotency_field = models.CharField(
        max_length=100, blank=True, default="_idempotency_key",
        help_text="Web forms: a hidden field holding a key made when the form loaded; a repeated key makes no "
                  "second submission (the Idempotency-Key header works too). Empty: header only.")
    success_url = models.URLField(
        blank=True, help_text="Web forms posted by a browser: where the visitor goes once the submission is stored "
                              "(303 See Other). Empty: a JSON answer.")
    error_url = models.URLField(
        blank=True, help_text="Web forms posted by a browser: where the visitor goes when the submission is refused "
                              "(its code is added as ?error=...). Empty: refusals are answered as JSON.")
    # Generic HMAC
    hmac_header = models.CharField(max_length=100, blank=True, default="X-Signature")
    hmac_algorithm = models.CharField(max_length=10, default="sha256",
                                      choices=[("sha1", "SHA-1"), ("sha256", "SHA-256"), ("sha512", "SHA-512")])
    hmac_encoding = models.CharField(max_length=10, default="hex", choices=[("hex", "hex"), ("base64", "base64")])
    hmac_prefix = models.CharField(max_length=30, blank=True, help_text="e.g. sha256= before the digest.")
    hmac_timestamp_header = models.CharField(
        max_length=100, blank=True, help_text="If set, the signed message is '{timestamp}.{body}'.")
    hmac_window_seconds = models.PositiveIntegerField(default=300)
    # Meta Lead Ads
    graph_base_url = models.URLField(
        default="https://graph.facebook.com/v19.0", help_text="Meta Lead Ads: where leads are fetched from.")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def intake_path(self) -> str:
        return f"/api/v1/sources/{self.slug}/submissions"

    @property
    def preset(self) -> Preset:
        return PRESETS[self.kind]

    @property
    def auth_method(self) -> str:
        return self.auth or self.preset.auth

    @property
    def origins(self) -> list[str]:
        return [line.strip().rstrip("/") for line in self.allowed_origins.splitlines() if line.strip()]

    def hmac_options(self) -> GenericHmacOptions:
        return GenericHmacOptions(
            header=self.hmac_header, algorithm=self.hmac_algorithm, encoding=self.hmac_encoding,
            prefix=self.hmac_prefix, timestamp_header=self.hmac_timestamp_header,
            window_seconds=self.hmac_window_seconds,
        )

    def clean(self) -> None:
        if self.auth_method == Auth.SIGNATURE and not self.preset.signature_scheme:
            raise ValidationError({"auth": f"{self.preset.label} has no signature scheme; use a URL token or an API key."})
        if self.auth_method == Auth.GENERIC_HMAC:
            try:
                self.hmac_options()
            except ValueError as exc:
                raise ValidationError({"hmac_header": str(exc)}) from exc
        for origin in self.origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                raise ValidationError({"allowed_origins": f"'{origin}' is not an origin like https://www.example.com."})


class SourceSecret(models.Model):
    """A credential a source's sender uses. Two may be active per purpose, so a secret can be
    rotated without refusing the sender's in-flight requests."""

    class Purpose(models.TextChoices):
        SIGNING = "signing", "Signing secret (HMAC)"
        API_KEY = "api_key", "API key"
        URL_TOKEN = "url_token", "URL token"
        META_VERIFY = "meta_verify", "Meta verify token (handshake)"
        META_PAGE_TOKEN = "meta_page_token", "Meta page access token (Graph API)"

    # Keys and tokens we generate are random, so only their hash is kept; secrets a provider
    # gives us must be usable again (to compute an HMAC or call an API), so they are encrypted.
    HASHED = (Purpose.API_KEY, Purpose.URL_TOKEN)
    MAX_ACTIVE = 2

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="secrets")
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    label = models.CharField(max_length=100, blank=True)
    value_hash = models.CharField(max_length=64, blank=True, editable=False)
    value_encrypted = models.TextField(blank=True, editable=False)
    hint = models.CharField(max_length=12, blank=True, editable=False, help_text="The last characters, to tell secrets apart.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["source", "purpose", "-created_at"]

    def __str__(self) -> str:
        return f"{self.get_purpose_display()} …{self.hint}"


class SourceCounter(models.Model):
    """Requests per source and outcome, including the refused ones that leave no submission."""

    class Outcome(models.TextChoices):
        DUPLICATE = "duplicate", "Duplicate"
        REFUSED_AUTH = "refused_auth", "Refused (auth)"
        THROTTLED = "throttled", "Throttled"
        OVERSIZE = "oversize", "Oversize"
        BAD_REQUEST = "bad_request", "Bad request"
        BAD_ORIGIN = "bad_origin", "Origin not allowed"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="counters")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    count = models.PositiveBigIntegerField(default=0)
    last_at = models.DateTimeField(auto_now=True)
    last_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "outcome"], name="sourcecounter_unique")]


class Submission(models.Model):
    """One inbound request, stored verbatim before anything else happens to it."""

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"  # committed and acknowledged, not yet mapped
        PROCESSED = "processed", "Processed"  # mapped into a lead
        REJECTED = "rejected", "Rejected"  # kept with reasons for a reviewer
        SPAM = "spam", "Spam"  # the honeypot was filled: kept, never processed
        DISMISSED = "dismissed", "Dismissed"  # a reviewer decided it is not a lead (the reason is kept)

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
    notes = models.JSONField(default=list, blank=True, help_text="What intake changed, e.g. dropped file uploads.")
    enrichment = models.JSONField(default=dict, blank=True, help_text="Data fetched for this submission (Meta leads).")
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When a worker last claimed it for processing.")
    fetch_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    field_overrides = models.JSONField(
        default=dict, blank=True,
        help_text="A reviewer's corrections of the source fields (name -> value), read over the payload when it "
                  "is processed; the raw body and the payload stay as received (see its corrections).")
    dismissed_reason = models.TextField(blank=True)
    correlation_id = models.CharField(
        max_length=64, blank=True, db_index=True, editable=False, default=correlation_id_new,
        help_text="Made at intake; carried by the lead's decisions, push jobs, sync log rows and log lines.")
    # Both are NULL when a submission is inserted: a partial index (lead) or none (version,
    # whose rows are never deleted) keeps the intake's one INSERT from maintaining them.
    lead = models.ForeignKey(
        "leads.Lead", null=True, blank=True, on_delete=models.SET_NULL, related_name="submissions", db_index=False
    )
    mapping_version = models.ForeignKey(
        "mapping.MappingVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="submissions",
        db_index=False, help_text="The published mapping that processed it.",
    )

    class Meta:
        ordering = ["-received_at"]
        permissions = [("reprocess_submission", "Can reprocess rejected submissions")]
        indexes = [
            models.Index(fields=["status", "received_at"], name="submission_status_received"),
            models.Index(fields=["lead"], condition=Q(lead__isnull=False), name="submission_lead"),
        ]
        constraints = [
            # Enforced by the database so concurrent retries of one sender's event make one row.
            models.UniqueConstraint(
                fields=["source", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="submission_unique_idempotency_key",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "processed", "rejected", "spam", "dismissed"]),
                name="submission_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"Submission {self.pk} ({self.source.slug}, {self.status})"


class SubmissionCorrection(models.Model):
    """What a reviewer did to a submission and why: corrected source fields (old and new value)
    or dismissed it. Never edited; the submission's raw body and payload are never changed."""

    class Action(models.TextChoices):
        CORRECT = "correct", "Corrected fields"
        DISMISS = "dismiss", "Dismissed"

    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="corrections")
    action = models.CharField(max_length=10, choices=Action.choices)
    changes = models.JSONField(default=dict, blank=True, help_text="field -> [old value, new value].")
    note = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} submission {self.submission_id}"
