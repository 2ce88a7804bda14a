"""The delivery stage's tables: destinations and their field maps, what each CRM holds for a
lead, the shared rate budgets and the outbox. Moved from the crmsync app with their tables."""

import json

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core import secrets
from core.fields import CONSENT_SOURCES, source_error
from delivery.rest_recipe import Recipe, RecipeError, recipe_parse
from leads.models import Lead


class Destination(models.Model):
    """A CRM or endpoint that leads are pushed to."""

    class Kind(models.TextChoices):
        HUBSPOT = "hubspot", "HubSpot"
        SALESFORCE = "salesforce", "Salesforce"
        REST = "rest", "REST/JSON endpoint"

    class Auth(models.TextChoices):
        PRIVATE_APP = "private_app", "HubSpot private-app token"
        OAUTH = "oauth", "HubSpot OAuth (refresh token)"
        CLIENT_CREDENTIALS = "client_credentials", "Salesforce client credentials"
        JWT_BEARER = "jwt_bearer", "Salesforce JWT bearer"
        BEARER = "bearer", "Static bearer token"
        NONE = "none", "None (headers and signing only)"
        HEADER = "header", "Custom header with a stored secret (X-Api-Key, Authorization: Token …)"
        BASIC = "basic", "HTTP basic (username and password)"
        OAUTH2_CLIENT_CREDENTIALS = "oauth2_client_credentials", "OAuth2 client credentials"
        OAUTH2_REFRESH_TOKEN = "oauth2_refresh_token", "OAuth2 refresh token"

    class ObjectModel(models.TextChoices):
        CONTACT = "contact", "HubSpot contact"
        CONTACT_COMPANY = "contact_company", "HubSpot contact + company associated by domain"
        LEAD = "lead", "Salesforce Lead"
        CONTACT_ACCOUNT = "contact_account", "Salesforce Contact + Account"
        RECORD = "record", "One JSON record per lead (REST)"

    # Which auth methods and object models each kind accepts (checked in clean()).
    AUTH_BY_KIND = {
        Kind.HUBSPOT: (Auth.PRIVATE_APP, Auth.OAUTH),
        Kind.SALESFORCE: (Auth.CLIENT_CREDENTIALS, Auth.JWT_BEARER),
        Kind.REST: (Auth.NONE, Auth.BEARER, Auth.HEADER, Auth.BASIC, Auth.OAUTH2_CLIENT_CREDENTIALS,
                    Auth.OAUTH2_REFRESH_TOKEN),
    }
    OBJECTS_BY_KIND = {
        Kind.HUBSPOT: (ObjectModel.CONTACT, ObjectModel.CONTACT_COMPANY),
        Kind.SALESFORCE: (ObjectModel.LEAD, ObjectModel.CONTACT_ACCOUNT),
        Kind.REST: (ObjectModel.RECORD,),
    }

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.HUBSPOT)
    auth_method = models.CharField(max_length=30, choices=Auth.choices, default=Auth.PRIVATE_APP)
    base_url = models.URLField(
        help_text="HubSpot: https://api.hubapi.com. Salesforce: your login or My Domain URL, e.g. "
                  "https://acme.my.salesforce.com. REST: the endpoint URL. Or the built-in sandbox.")
    api_version = models.CharField(max_length=10, default="62.0", blank=True, help_text="Salesforce REST API version.")
    object_model = models.CharField(max_length=30, choices=ObjectModel.choices, default=ObjectModel.CONTACT)
    upsert_property = models.CharField(
        max_length=100,
        default="crmsync_external_id",
        help_text="The upsert key: a unique HubSpot property, or a Salesforce External ID field "
                  "(e.g. Crmsync_External_Id__c), holding our lead's external ID.",
    )
    company_upsert_property = models.CharField(
        max_length=100, blank=True, default="crmsync_domain",
        help_text="Unique company property (HubSpot) or Account External ID field (Salesforce) "
                  "holding the company's domain.")
    credentials_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of an environment variable holding the token, or a JSON object of "
                  "credentials. Takes precedence over stored credentials.",
    )
    credentials_encrypted = models.TextField(blank=True, editable=False)
    # Short-lived access tokens (OAuth, Salesforce), shared by every worker through the database.
    access_token_encrypted = models.TextField(blank=True, editable=False)
    access_token_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    instance_url = models.URLField(blank=True, editable=False, help_text="Salesforce: returned with the token.")
    # REST destinations.
    http_method = models.CharField(max_length=10, default="POST", choices=[(m, m) for m in ("POST", "PUT", "PATCH")])
    headers = models.JSONField(default=dict, blank=True, help_text="Extra request headers (not secret).")
    body_template = models.TextField(
        blank=True,
        help_text='REST: a JSON template; "{{ field }}" strings are replaced by the lead\'s mapped '
                  "values (empty: the mapped fields as one JSON object).")
    signature_header = models.CharField(
        max_length=100, blank=True, help_text="REST: send an HMAC-SHA256 of the body in this header.")
    rest_recipe = models.JSONField(
        default=dict, blank=True,
        help_text='REST: the requests to create, update, look up and batch records and how to read the answers, '
                  'e.g. {"create": {"url": "/leads"}, "update": {"method": "PATCH", "url": "/leads/{{ crm_record_id }}"}, '
                  '"lookup": {"url": "/leads?email={{ email }}", "id_path": "results[*].id"}}. Empty: POST the body '
                  'template to the base URL. See the README, "Pointing it at any REST endpoint".')
    # Pace and batching.
    rate_limit_requests = models.PositiveIntegerField(
        default=100, help_text="At most this many requests per window, across all workers.")
    rate_limit_window_seconds = models.PositiveIntegerField(default=10)
    daily_budget = models.PositiveIntegerField(default=250_000, help_text="Requests per day (UTC), across all workers.")
    batch_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Records per call; empty for the CRM's maximum (HubSpot 100, Salesforce 200).")
    batch_wait_seconds = models.FloatField(
        default=10.0,
        help_text="A new lead waits up to this long for others to share its batch call; a full batch "
                  "goes at once. 0 sends every lead as soon as it is due.")
    changed_fields_only = models.BooleanField(
        default=True, help_text="Send only the fields that changed since the last successful push.")
    lookup_existing = models.BooleanField(
        default=True, help_text="Before creating a record, look for one the CRM already has with the lead's "
                                "email (typed in by hand, imported) and update that one instead.")
    # Two-way sync: reading the CRM's changes back.
    poll_interval_seconds = models.PositiveIntegerField(
        default=0, help_text="Read changes back from the CRM every this many seconds (0: never). Only fields whose "
                             "direction is 'from the CRM' or 'both' are read.")
    clock_margin_seconds = models.PositiveIntegerField(
        default=30, help_text="'Most recent' rule: two changes closer than this (after correcting for the CRM's "
                              "clock) are a tie, and a tie goes to the CRM's value.")
    # The CRM's clock minus ours, as measured at the last poll (its Date header).
    clock_offset_seconds = models.FloatField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_reason = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "crmsync_destination"  # the table it had in the crmsync app
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_paused(self) -> bool:
        return self.paused_at is not None

    def recipe(self) -> Recipe:
        """The REST recipe, with the simple method and body template as its create request's
        defaults (raises RecipeError)."""
        return recipe_parse(self.rest_recipe, http_method=self.http_method, body_template=self.body_template)

    def clean(self) -> None:
        if self.body_template.strip():
            try:
                json.loads(self.body_template)
            except ValueError as exc:
                raise ValidationError({"body_template": f"Not valid JSON: {exc}"}) from None
        if self.kind != self.Kind.REST:
            return
        try:
            recipe = self.recipe()
        except RecipeError as exc:
            raise ValidationError({"rest_recipe": [f"{where}: {what}" for where, what in exc.errors.items()]}) from None
        errors = {}
        if self.lookup_existing and recipe.lookup is None:
            errors["lookup_existing"] = "Looking up existing records needs a lookup request in the REST recipe; add one or untick this."
        if recipe.batch is None and self.batch_size not in (None, 1):
            errors["batch_size"] = "Without a batch request in the REST recipe, every record is its own call: leave this empty or 1."
        elif recipe.batch is not None and self.batch_size and self.batch_size > recipe.batch.max:
            errors["batch_size"] = f"The recipe's batch request takes at most {recipe.batch.max} records."
        if errors:
            raise ValidationError(errors)
        # The dispatcher reads the batch size from this column: one call per record unless
        # the recipe can batch.
        self.batch_size = self.batch_size or (recipe.batch.max if recipe.batch else 1)

    # --- credentials: encrypted JSON, never shown again ---

    def set_credentials(self, values: dict[str, str]) -> None:
        """Merge non-empty values into the stored credentials."""
        current = self.stored_credentials()
        current.update({k: v for k, v in values.items() if v})
        self.credentials_encrypted = secrets.encrypt(json.dumps(current))
        self.access_token_encrypted, self.access_token_expires_at = "", None

    def stored_credentials(self) -> dict[str, str]:
        if not self.credentials_encrypted:
            return {}
        plain = secrets.decrypt(self.credentials_encrypted)
        try:
            value = json.loads(plain)
        except ValueError:
            value = None
        return value if isinstance(value, dict) else {"token": plain}

    def credentials(self) -> dict[str, str]:
        """The credentials in use: from the environment variable if named, else stored."""
        if self.credentials_env:
            raw = secrets.from_env(self.credentials_env)
            try:
                value = json.loads(raw)
            except ValueError:
                value = None
            return value if isinstance(value, dict) else {"token": raw}
        return self.stored_credentials()

    def set_token(self, token: str) -> None:
        self.set_credentials({"token": token})

    def get_token(self) -> str:
        return self.credentials().get("token", "")


class DestinationField(models.Model):
    """One line of a destination's field map: a canonical lead field to a CRM property, the way
    its changes travel, and who wins when both sides changed it."""

    class Object(models.TextChoices):
        PRIMARY = "primary", "Contact / Lead / record"
        COMPANY = "company", "Company / Account"

    class Direction(models.TextChoices):
        TO_CRM = "to_crm", "To the CRM"
        FROM_CRM = "from_crm", "From the CRM"
        BOTH = "both", "Both ways"

    class Rule(models.TextChoices):
        OURS = "ours", "Ours wins"
        CRM = "crm", "The CRM's wins"
        CRM_UNLESS_BLANK = "crm_unless_blank", "The CRM's wins unless blank"
        MOST_RECENT = "most_recent", "The most recent change wins"
        MANUAL = "manual", "Manual review"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="fields")
    source = models.CharField(
        max_length=100,
        help_text="Lead field: email, first_name, last_name, phone, company, country, domain, company_name "
                  "(company, else the company record's name or domain), external_id, "
                  "lifecycle_stage, score, team, owner.<name|email|hubspot_owner_id|salesforce_user_id>, "
                  "marketing_opt_in, consent_at, consent_text, consent_source, attributes.<name>, "
                  "attribution.<name> (last touch) or first_touch.<name>.")
    target = models.CharField(max_length=100, help_text="CRM property or field API name.")
    object = models.CharField(max_length=10, choices=Object.choices, default=Object.PRIMARY)
    value_map = models.JSONField(
        default=dict, blank=True, help_text='Optional: our value -> CRM picklist value, e.g. {"de": "Germany"}.')
    default = models.CharField(max_length=255, blank=True, help_text="Sent when the lead has no value.")
    direction = models.CharField(
        max_length=10, choices=Direction.choices, default=Direction.TO_CRM,
        help_text="To the CRM: we send it. From the CRM: we send it only to fill a new record, then the CRM's "
                  "changes come back to the lead. Both: changes travel both ways; the rule decides when both changed.")
    rule = models.CharField(
        max_length=20, choices=Rule.choices, blank=True,
        help_text="Both ways: who wins when both sides changed the field since the last sync. Empty: the field's "
                  "default (owner and lifecycle stage: the CRM's unless blank; consent: the most recent; "
                  "anything else: manual review).")

    class Meta:
        db_table = "crmsync_destinationfield"  # the table it had in the crmsync app
        ordering = ["destination", "object", "id"]
        constraints = [
            models.UniqueConstraint(fields=["destination", "object", "target"], name="destinationfield_unique_target"),
        ]

    def __str__(self) -> str:
        return f"{self.source} → {self.target}"

    @property
    def reads_back(self) -> bool:
        return self.direction in (self.Direction.FROM_CRM, self.Direction.BOTH)

    def effective_rule(self) -> str:
        return self.rule or default_rule(self.source.strip())

    def clean(self) -> None:
        errors = {}
        source = self.source.strip()
        if message := source_error(source):
            errors["source"] = message
        if source in CONSENT_SOURCES and self.default:
            errors["default"] = "Consent is never defaulted: a lead without an answer sends nothing for it."
        if self.reads_back:
            if message := pull_error(source, obj=self.object, kind=self.destination.kind if self.destination_id else ""):
                errors["direction"] = message
            elif self.rule and self.direction == self.Direction.FROM_CRM and self.rule != self.Rule.CRM:
                errors["rule"] = "A field that comes from the CRM always takes the CRM's value; leave the rule empty."
            elif source in CONSENT_SOURCES and self.rule and self.rule not in (self.Rule.MOST_RECENT, self.Rule.MANUAL):
                errors["rule"] = "Consent is only ever the person's latest answer: use 'most recent' or manual review."
        if errors:
            raise ValidationError(errors)


# Lead fields the CRM's changes may be written back to (owner by its CRM user ID; consent as the
# person's latest opt-in answer). Anything else a field map reads is computed or is our key.
PULLABLE_SOURCES = frozenset({"first_name", "last_name", "phone", "company", "country", "lifecycle_stage",
                              "owner.hubspot_owner_id", "owner.salesforce_user_id", "marketing_opt_in"})


def pull_error(source: str, *, obj: str = "primary", kind: str = "") -> str:
    """'' when changes to `source` can be read back from the CRM; else why not, for RevOps."""
    if kind == Destination.Kind.REST:
        return "REST destinations are written only: nothing reads their records back. Use 'To the CRM'."
    if obj == DestinationField.Object.COMPANY:
        return "Company and Account fields are only sent to the CRM. Use 'To the CRM'."
    if source in PULLABLE_SOURCES or (source.startswith("attributes.") and len(source) > len("attributes.")):
        return ""
    if source == "email":
        return ("The email is the key that finds the person across sources; a change in the CRM cannot be written back "
                "(merge the leads instead). Use 'To the CRM'.")
    if source in ("owner.name", "owner.email"):
        return "The owner is read back by its CRM user ID: map owner.hubspot_owner_id or owner.salesforce_user_id instead."
    return f"{source} is computed by crmsync (or is its key), so a CRM value cannot be written into it. Use 'To the CRM'."


def default_rule(source: str) -> str:
    """Who wins by default when both sides changed a two-way field."""
    if source == "lifecycle_stage" or source.startswith("owner."):
        return DestinationField.Rule.CRM_UNLESS_BLANK
    if source in CONSENT_SOURCES:
        return DestinationField.Rule.MOST_RECENT
    return DestinationField.Rule.MANUAL


class LeadDelivery(models.Model):
    """What a destination holds for a lead: its record IDs and the values last pushed
    successfully, so the next push sends only what changed (or nothing)."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="deliveries")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="deliveries")
    crm_record_id = models.CharField(max_length=100, blank=True)
    company_crm_id = models.CharField(max_length=100, blank=True)
    pushed = models.JSONField(default=dict, blank=True, help_text="CRM field -> value as last pushed.")
    pushed_at = models.DateTimeField(null=True, blank=True)
    # When the CRM was asked for a record with the lead's email before the first create. Once
    # asked, retries skip the lookup: anything created since carries our upsert key.
    looked_up_at = models.DateTimeField(null=True, blank=True)

    class CrmState(models.TextChoices):
        LINKED = "", "In sync"
        DELETED = "deleted", "Deleted in the CRM: held for review"
        MERGED = "merged", "Merged in the CRM: held for review"
        UNLINKED = "unlinked", "No longer synced (a reviewer's decision)"

    # While not LINKED, nothing is pushed for the lead to this destination.
    crm_state = models.CharField(max_length=10, choices=CrmState.choices, blank=True, default="")
    # The record's last modification time as the CRM reported it (its clock), at the last poll.
    crm_modified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "crmsync_leaddelivery"  # the table it had in the crmsync app
        constraints = [models.UniqueConstraint(fields=["lead", "destination"], name="leaddelivery_unique")]

    def __str__(self) -> str:
        return f"{self.lead} @ {self.destination}"


class RateBudget(models.Model):
    """A destination's request budget, shared by every worker on every machine through the
    database: the start times of recent requests (a sliding window, so no window of that length
    ever holds more than the limit), the day's count, and a block set by the CRM's own signals
    (429, Retry-After, rate-limit headers)."""

    destination = models.OneToOneField(Destination, on_delete=models.CASCADE, related_name="rate_budget")
    recent_ms = models.JSONField(default=list, blank=True)
    day = models.CharField(max_length=10, blank=True)
    day_count = models.PositiveIntegerField(default=0)
    blocked_until_ms = models.BigIntegerField(default=0)
    blocked_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        db_table = "crmsync_ratebudget"  # the table it had in the crmsync app

    def __str__(self) -> str:
        return f"budget of {self.destination}"


class PushJob(models.Model):
    """The outbox: one lead change to deliver to one destination."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        SUCCEEDED = "succeeded", "Succeeded"
        REVIEW = "review", "Needs review"  # the CRM refused the record; a person must act
        DEAD = "dead", "Dead letter"
        # Handed back while a newer pending job for the same lead and destination exists: that
        # one sends the lead as it is now, so this one has nothing left to do.
        SUPERSEDED = "superseded", "Superseded by a newer job"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="push_jobs")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="push_jobs")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    # Set just before the current attempt's CRM call: a worker killed before it never reached
    # the CRM, and the claim that takes the job over does not count that attempt.
    request_sent = models.BooleanField(default=False, editable=False)
    last_error = models.TextField(blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    operation = models.CharField(max_length=20, blank=True, help_text="create, update or noop, once succeeded.")
    crm_record_id = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    correlation_id = models.CharField(
        max_length=64, blank=True, db_index=True,
        help_text="The correlation ID of the submission whose processing created or last refreshed this job.")

    class Meta:
        db_table = "crmsync_pushjob"  # the table it had in the crmsync app
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
                condition=Q(status__in=["pending", "in_progress", "succeeded", "review", "dead", "superseded"]),
                name="pushjob_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"PushJob {self.pk} ({self.status})"



class SyncCursor(models.Model):
    """Where a destination's reconciliation poll stands for one object: the CRM-clock watermark
    (moved forward only once a page is applied, in the page's transaction), the open query's
    next page, and what the polls read and applied."""

    class Object(models.TextChoices):
        PRIMARY = "primary", "Contacts / Leads"
        COMPANY = "company", "Companies / Accounts"

    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="sync_cursors")
    object = models.CharField(max_length=10, choices=Object.choices, default=Object.PRIMARY)
    watermark = models.DateTimeField(null=True, blank=True, help_text="Changes up to here (CRM clock) are applied.")
    cursor = models.TextField(blank=True, help_text="The next page of the poll in progress.")
    deletions_checked_at = models.DateTimeField(null=True, blank=True)
    deletions_watermark = models.DateTimeField(null=True, blank=True)
    # Record IDs a CRM webhook named: read directly at the next poll.
    hinted_ids = models.JSONField(default=list, blank=True)
    poll_requested_at = models.DateTimeField(null=True, blank=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_records_read = models.PositiveIntegerField(default=0)
    last_changes_applied = models.PositiveIntegerField(default=0)
    last_calls = models.PositiveIntegerField(default=0)
    records_read = models.BigIntegerField(default=0)
    changes_applied = models.BigIntegerField(default=0)
    polls = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["destination", "object"], name="synccursor_unique")]

    def __str__(self) -> str:
        return f"{self.destination} {self.object} poll"


class Conflict(models.Model):
    """Something a reviewer decides: a field both sides changed to different values under the
    'manual review' rule, or a CRM record that was deleted or merged away. One open row per
    lead, destination, field and kind."""

    class Kind(models.TextChoices):
        FIELD = "field", "Both sides changed a field"
        DELETED = "deleted", "Record deleted in the CRM"
        MERGED = "merged", "Record merged in the CRM"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved by a reviewer"
        CLOSED = "closed", "Closed by itself (the sides agree)"

    class Resolution(models.TextChoices):
        KEEP_OURS = "keep_ours", "Kept ours (pushed to the CRM)"
        TAKE_CRM = "take_crm", "Took the CRM's"
        VALUE = "value", "Entered a value (both sides)"
        CONVERGED = "converged", "Both sides came to agree"
        RECREATE = "recreate", "Recreated the record in the CRM"
        UNLINK = "unlink", "Stopped syncing the lead here"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="conflicts")
    destination = models.ForeignKey(Destination, on_delete=models.CASCADE, related_name="conflicts")
    field = models.ForeignKey(DestinationField, null=True, blank=True, on_delete=models.SET_NULL, related_name="conflicts")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FIELD)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    target = models.CharField(max_length=100, blank=True, help_text="The CRM field.")
    source = models.CharField(max_length=100, blank=True, help_text="The lead field.")
    crm_record_id = models.CharField(max_length=100, blank=True)
    merged_into = models.CharField(max_length=100, blank=True, help_text="Merges: the CRM record that survived.")
    # Values as the CRM holds them (after the field's value map).
    base = models.JSONField(null=True, blank=True, help_text="The value last synced.")
    ours = models.JSONField(null=True, blank=True)
    theirs = models.JSONField(null=True, blank=True)
    ours_at = models.DateTimeField(null=True, blank=True)
    ours_by = models.CharField(max_length=200, blank=True, help_text="The source that set our value.")
    theirs_at = models.DateTimeField(null=True, blank=True, help_text="In our clock (the CRM's corrected).")
    theirs_by = models.CharField(max_length=200, blank=True, help_text="Who changed it in the CRM.")
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="+")
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    resolved_value = models.JSONField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("resolve_conflict", "Can resolve two-way sync conflicts")]
        indexes = [models.Index(fields=["status", "created_at"], name="conflict_status_age")]
        constraints = [
            models.UniqueConstraint(fields=["lead", "destination", "target", "kind"], condition=Q(status="open"),
                                    name="conflict_one_open"),
        ]

    def __str__(self) -> str:
        what = self.target if self.kind == self.Kind.FIELD else self.get_kind_display().lower()
        return f"{self.lead} @ {self.destination}: {what}"
