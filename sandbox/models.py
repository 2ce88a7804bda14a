"""Tables of the built-in sandbox CRM. They belong to the sandbox alone: the product reaches
them only over HTTP, exactly as it reaches the real HubSpot."""

import re

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone


class SandboxRecord(models.Model):
    """What every HubSpot object of the sandbox stores: its property values and timestamps."""

    id = models.BigAutoField(primary_key=True)
    # Every property value as a string, as HubSpot stores and returns them.
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # lastmodifieddate (hs_lastmodifieddate for companies): indexed, because the sync poller's
    # search filters and sorts on it, and must stay quick at tens of thousands of records.
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    archived = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    # Set on a record merged away: reading its ID answers with this survivor; lists skip it.
    merged_into = models.BigIntegerField(null=True, blank=True)
    # Per property, its values newest first: [{"value", "timestamp", "sourceType", "sourceId"}]
    # (what HubSpot's propertiesWithHistory returns).
    history = models.JSONField(default=dict, blank=True)

    # Computed properties every answer carries, whichever were asked for, and the ones that
    # read the modification time (companies have HubSpot's hs_lastmodifieddate too).
    DEFAULT_PROPERTIES: tuple[str, ...] = ("createdate", "hs_object_id", "lastmodifieddate")
    MODIFIED_PROPERTIES: tuple[str, ...] = ("lastmodifieddate",)

    class Meta:
        abstract = True

    @property
    def live(self) -> bool:
        """Neither archived nor merged away: what searches, lists and upserts see."""
        return not self.archived and self.merged_into is None

    def derive(self) -> None:
        """Copy property values into the columns the database indexes or constrains."""


class SandboxContact(SandboxRecord):
    # Lower-cased copy of properties["email"], so the database enforces HubSpot's one contact
    # per email and lookups by email use an index.
    email = models.CharField(max_length=254, blank=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="sandbox_contact_unique_email"),
        ]
        # Every batch upsert from crmsync looks contacts up by this property.
        indexes = [models.Index(KeyTextTransform("crmsync_external_id", "properties"), name="sandbox_contact_ext_id")]

    def __str__(self) -> str:
        return self.email or f"contact {self.pk}"

    def derive(self) -> None:
        # An archived or merged-away contact frees its email, as in HubSpot: a new contact may take it.
        self.email = self.properties.get("email", "") if self.live else ""


class SandboxCompany(SandboxRecord):
    DEFAULT_PROPERTIES = ("createdate", "hs_lastmodifieddate", "hs_object_id", "lastmodifieddate")
    MODIFIED_PROPERTIES = ("lastmodifieddate", "hs_lastmodifieddate")

    class Meta:
        verbose_name_plural = "sandbox companies"
        indexes = [models.Index(KeyTextTransform("crmsync_external_id", "properties"), name="sandbox_company_ext_id")]

    def __str__(self) -> str:
        return self.properties.get("name") or self.properties.get("domain") or f"company {self.pk}"


class SandboxAssociation(models.Model):
    """A v4 association between two HubSpot records of the sandbox, one row per type. Unique, so
    creating an association twice (HubSpot's batch create is idempotent) leaves one row."""

    from_type = models.CharField(max_length=20)  # "contacts", "companies"
    from_id = models.BigIntegerField()
    to_type = models.CharField(max_length=20)
    to_id = models.BigIntegerField()
    category = models.CharField(max_length=30, default="HUBSPOT_DEFINED")
    type_id = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["from_type", "from_id", "to_type", "to_id", "category", "type_id"],
                                               name="sandbox_association_unique")]

    def __str__(self) -> str:
        return f"{self.from_type} {self.from_id} -> {self.to_type} {self.to_id} ({self.type_id})"


class SandboxProperty(models.Model):
    """A property created through the properties API. Built-in properties are constants in code
    (hubspot/properties.py, ObjectType.built_in), so a flushed test database still knows them."""

    object_type = models.CharField(max_length=20, default="contacts")  # "contacts", "companies"
    name = models.CharField(max_length=100)
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
        constraints = [models.UniqueConstraint(fields=["object_type", "name"], name="sandbox_property_unique_name")]

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
    # HubSpot's fixed 30 minutes by default; the Salesforce row is created with 2 h (limits.CRM_DEFAULTS).
    token_lifetime_seconds = models.PositiveIntegerField(
        default=1800, help_text="How long an access token issued by the sandbox's OAuth endpoint is accepted "
                                "(HubSpot: 1800 s; Salesforce: the org's session timeout, 2 h by default).")
    jwt_public_key = models.TextField(
        blank=True, help_text="Salesforce: PEM public key of the connected app's certificate; JWT bearer "
                              "assertions must be signed (RS256) by its private key.")
    duplicate_rule_enabled = models.BooleanField(
        default=False, help_text="Salesforce: block a new Lead whose Email an existing Lead has, unless the "
                                 "request sends Sforce-Duplicate-Rule-Header: allowSave=true.")
    clock_offset_seconds = models.IntegerField(
        default=0, help_text="The CRM's clock minus the real one (signed): every timestamp it stamps and its "
                             "Date header use real time plus this.")

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
        # Not a window: every data request of the CRM, numbered for reproducible fault decisions.
        SEQUENCE = "sequence"

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


class SandboxAccessToken(models.Model):
    """An access token the sandbox's OAuth endpoint issued. Only its SHA-256 is kept: the row
    proves the token was issued without being a credential itself."""

    crm = models.CharField(max_length=20)
    token_sha256 = models.CharField(max_length=64, unique=True)
    subject = models.CharField(max_length=255, blank=True)  # client ID or user name it was issued to
    issued_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.crm} token for {self.subject}"


class SandboxFaults(models.Model):
    """Faults the sandbox injects into one CRM's data calls, for a test run or a benchmark.

    The kinds that replace the answer (error, rate_limit, lock, timeout, lost_reply) exclude
    each other: one draw per request picks at most one, so their rates add up to at most 1.
    Every decision derives from (seed, the request's sequence number), so a run is repeatable.
    """

    crm = models.CharField(max_length=20, unique=True)
    seed = models.BigIntegerField(default=0)
    error_rate = models.FloatField(default=0.0, help_text="Share of calls answered 500/502/503, nothing applied.")
    rate_limit_rate = models.FloatField(default=0.0, help_text="Share of calls refused as rate limited, nothing applied.")
    lock_rate = models.FloatField(default=0.0, help_text="HubSpot: share of calls answered 423. Salesforce: share "
                                                         "of records failing with UNABLE_TO_LOCK_ROW.")
    timeout_rate = models.FloatField(default=0.0, help_text="Share of calls that wait timeout_seconds, then apply.")
    timeout_seconds = models.FloatField(default=30.0)
    lost_reply_rate = models.FloatField(default=0.0, help_text="Share of calls applied whose reply is dropped.")
    latency_ms = models.PositiveIntegerField(default=0, help_text="Added to every data call before answering.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "sandbox faults"
        constraints = [
            models.CheckConstraint(
                condition=Q(error_rate__gte=0, error_rate__lte=1, rate_limit_rate__gte=0, rate_limit_rate__lte=1,
                            lock_rate__gte=0, lock_rate__lte=1, timeout_rate__gte=0, timeout_rate__lte=1,
                            lost_reply_rate__gte=0, lost_reply_rate__lte=1, timeout_seconds__gte=0),
                name="sandbox_faults_rates_are_shares",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.crm} faults"

    def clean(self) -> None:
        if self.exclusive_total() > 1:
            raise ValidationError("The rates of error, rate limit, timeout and lost reply (and lock for HubSpot) "
                                  "add up to more than 1.")

    def exclusive_total(self) -> float:
        total = self.error_rate + self.rate_limit_rate + self.timeout_rate + self.lost_reply_rate
        return total + (self.lock_rate if self.crm == "hubspot" else 0.0)


class SandboxRequestLog(models.Model):
    """One data request a sandbox CRM received: what tests and the delivery benchmark count
    calls and check rate limits from. sandbox_reset() empties it."""

    class Fault(models.TextChoices):
        NONE = "none"
        ERROR = "error"
        RATE_LIMIT = "rate_limit"
        TIMEOUT = "timeout"
        LOST_REPLY = "lost_reply"
        LOCK = "lock"

    crm = models.CharField(max_length=20)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=500)
    status = models.PositiveSmallIntegerField()
    records = models.PositiveIntegerField(default=0, help_text="Inputs or records in the request body.")
    fault = models.CharField(max_length=20, choices=Fault.choices, default=Fault.NONE)
    started_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["crm", "started_at"], name="sandbox_request_log_crm")]

    def __str__(self) -> str:
        return f"{self.crm} {self.method} {self.path} {self.status}"


class SandboxSalesforceField(models.Model):
    """A custom field of a Salesforce object in the sandbox org (standard fields are constants
    in salesforce/schema.py). Names end in __c, as Salesforce requires of custom fields."""

    class Type(models.TextChoices):
        STRING = "string"
        EMAIL = "email"
        PHONE = "phone"
        URL = "url"
        TEXTAREA = "textarea"
        PICKLIST = "picklist"
        DOUBLE = "double"
        BOOLEAN = "boolean"

    sobject = models.CharField(max_length=40, choices=[("Lead", "Lead"), ("Contact", "Contact"), ("Account", "Account")])
    name = models.CharField(max_length=43, help_text="API name, ending in __c.")
    label = models.CharField(max_length=255)
    type = models.CharField(max_length=20, choices=Type.choices, default=Type.STRING)
    length = models.PositiveIntegerField(default=255, help_text="Maximum characters of a text value.")
    external_id = models.BooleanField(default=False, help_text="Can key upserts.")
    unique = models.BooleanField(default=False, help_text="At most one record per value (case-insensitive).")
    required = models.BooleanField(default=False)
    picklist_values = models.JSONField(default=list, blank=True, help_text='Picklist values, e.g. ["Gold", "Silver"].')
    restricted_picklist = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sobject", "name"], name="sandbox_salesforce_field_unique")]

    def __str__(self) -> str:
        return f"{self.sobject}.{self.name}"

    def clean(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}__c", self.name or "") or "___" in self.name:
            raise ValidationError({"name": "A custom field's API name is letters, digits and single underscores, "
                                           "ending in __c."})
        if not isinstance(self.picklist_values, list) or not all(isinstance(v, str) for v in self.picklist_values):
            raise ValidationError({"picklist_values": "A list of strings."})


class SandboxSalesforceRecord(models.Model):
    """A record of the sandbox Salesforce org: Lead, Contact or Account."""

    id = models.CharField(max_length=18, primary_key=True)  # 18-character ID with the object's key prefix
    sobject = models.CharField(max_length=40, db_index=True)
    fields = models.JSONField(default=dict, blank=True)  # API name -> value, as sent (Id and dates apart)
    created_at = models.DateTimeField(default=timezone.now)  # CreatedDate
    updated_at = models.DateTimeField(default=timezone.now)  # LastModifiedDate
    # SystemModstamp: moves on every change, deletes and merges included. Indexed with the object,
    # because sync polls filter and order on it.
    system_modstamp = models.DateTimeField(default=timezone.now)
    created_by_id = models.CharField(max_length=18, blank=True)
    last_modified_by_id = models.CharField(max_length=18, blank=True)
    # Soft delete (the recycle bin): `query` skips the row, `queryAll` returns it with IsDeleted.
    is_deleted = models.BooleanField(default=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    master_record_id = models.CharField(max_length=18, blank=True)  # set on the losers of a merge

    class Meta:
        indexes = [models.Index(fields=["sobject", "system_modstamp"], name="sandbox_sf_record_modstamp")]

    def __str__(self) -> str:
        return f"{self.sobject} {self.id}"


class SandboxSalesforceKey(models.Model):
    """A record's value of an external-ID or unique field, lower-cased (Salesforce matches them
    case-insensitively). The unique constraint is what makes two concurrent upserts of one new
    external ID create one record: the second INSERT waits for the first and then fails."""

    record = models.ForeignKey(SandboxSalesforceRecord, on_delete=models.CASCADE, related_name="keys")
    sobject = models.CharField(max_length=40)
    field = models.CharField(max_length=43)
    value = models.CharField(max_length=255)
    unique = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sobject", "field", "value"], condition=Q(unique=True),
                                               name="sandbox_salesforce_key_unique")]
        indexes = [models.Index(fields=["sobject", "field", "value"], name="sandbox_salesforce_key_lookup")]

    def __str__(self) -> str:
        return f"{self.sobject}.{self.field}={self.value}"


class RestAuth(models.TextChoices):
    """How the generic REST CRM wants to be called (credentials in sandbox/rest/__init__.py)."""

    NONE = "none"
    BEARER = "bearer"
    HEADER = "header"
    BASIC = "basic"
    OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials"
    OAUTH_REFRESH = "oauth_refresh"


class SandboxWebhookSubscription(models.Model):
    """A HubSpot app's webhook subscription in the sandbox: person edits, deletions and merges of
    contacts (or companies) are POSTed to `target_url`, signed v3 with `client_secret`."""

    object_type = models.CharField(max_length=20, default="contacts",
                                   choices=[("contacts", "contacts"), ("companies", "companies")])
    target_url = models.CharField(max_length=500, validators=[URLValidator(schemes=["http", "https"])])
    client_secret = models.CharField(max_length=255)
    property_changes = models.BooleanField(default=True, help_text="Send propertyChange events for person edits.")
    deletions = models.BooleanField(default=True, help_text="Send deletion events.")
    merges = models.BooleanField(default=True, help_text="Send merge events.")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.object_type} -> {self.target_url}"


class SandboxRestSettings(models.Model):
    """The generic REST CRM's behaviour switches (sandbox/rest/): one row, made on first use
    and changed per test over `PUT /sandbox/rest/_settings` or in the admin, so one fake can
    answer the way the many shapes of in-house and vertical CRMs do."""

    Auth = RestAuth

    create_status = models.PositiveSmallIntegerField(default=201, choices=[(200, "200"), (201, "201")],
                                                     help_text="Status of a successful create.")
    duplicate_status = models.PositiveSmallIntegerField(default=400, choices=[(400, "400"), (409, "409")],
                                                        help_text="Status when a create's email is already used.")
    errors_as_200 = models.BooleanField(default=False, help_text="Refusals (duplicate email, invalid input) answer "
                                                                 "200 with the error body instead of 4xx.")
    nested_ids = models.BooleanField(default=False, help_text='Wrap answers: {"data": {"lead": ...}} and '
                                                              '{"data": {"items": [...]}}.')
    auth = models.CharField(max_length=30, choices=Auth.choices, default=Auth.BEARER)
    batch_max = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1)],
                                            help_text="Most records one batch call may carry.")
    reply_delay_ms = models.PositiveIntegerField(
        default=0, help_text="When above 0, writes are committed first and the reply is sent this much later.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "sandbox REST settings"
        constraints = [
            models.CheckConstraint(condition=Q(create_status__in=(200, 201), duplicate_status__in=(400, 409),
                                               auth__in=RestAuth.values, batch_max__gte=1),
                                   name="sandbox_rest_settings_valid"),
        ]

    def __str__(self) -> str:
        return "REST CRM settings"


class SandboxRestRecord(models.Model):
    """A lead of the generic REST CRM. Its wire ID is "L" + the primary key (rest/records.py)."""

    id = models.BigAutoField(primary_key=True)
    # Lower-cased: the unique constraint makes the email case-insensitively unique, even
    # between two concurrent creates.
    email = models.CharField(max_length=254, unique=True)
    fields = models.JSONField(default=dict, blank=True)  # everything else sent, as sent (nulls included)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"L{self.pk} {self.email}"
