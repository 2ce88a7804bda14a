"""What we know about each person beyond the fields a form sent: the keys that identify them,
their company, the decisions taken about them, and the RevOps rules behind those decisions
(merge rules, scoring, customers, teams, owners, territories, campaign names)."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.fields import LEAD_FIELDS, bare_domain, source_error


def field_path_error(path: str) -> str:
    """'' when a scoring or territory rule may read `path`: a lead field, attributes.<name>,
    attribution.<name> or first_touch.<name>."""
    return source_error(path, extra=())


def new_external_id() -> str:
    # Our own stable key: every CRM write is an upsert on it, so any retry is safe.
    return f"lead_{uuid.uuid4().hex}"


class Lead(models.Model):
    """The canonical person, owned by us and pushed to every destination."""

    class Stage(models.TextChoices):
        LEAD = "lead", "Lead"
        MQL = "mql", "Marketing-qualified lead"
        SQL = "sql", "Sales-qualified lead"
        CUSTOMER = "customer", "Customer"

    external_id = models.CharField(max_length=64, unique=True, default=new_external_id, editable=False)
    email = models.CharField(max_length=254, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=50, blank=True)
    company = models.CharField(max_length=200, blank=True)
    country = models.CharField(max_length=100, blank=True)
    attribution = models.JSONField(default=dict, blank=True, help_text="Last touch: UTM values, referrer, landing page.")
    first_touch = models.JSONField(default=dict, blank=True, help_text="First touch, kept as it was.")
    attributes = models.JSONField(default=dict, blank=True, help_text="Custom attributes from mappings.")
    field_sources = models.JSONField(default=dict, blank=True, editable=False,
                                     help_text="field -> the source slug that set its value (merge rules).")
    # When each value changed at its origin (a submission's event time, a CRM's modification
    # time): an older value never replaces a newer one, whatever order they are processed in.
    field_times = models.JSONField(default=dict, blank=True, editable=False,
                                   help_text="field -> ISO time its value changed at its origin.")
    company_record = models.ForeignKey("Company", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="leads", verbose_name="company (by domain)")
    # Lifecycle and routing.
    lifecycle_stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.LEAD)
    score = models.IntegerField(default=0)
    team = models.ForeignKey("Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    owner = models.ForeignKey("Owner", null=True, blank=True, on_delete=models.SET_NULL, related_name="leads")
    # Consent: None means the person was never asked (or the source did not say); it is never
    # assumed, and a CRM receives nothing for it.
    marketing_opt_in = models.BooleanField(null=True, blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_text = models.CharField(max_length=1000, blank=True, help_text="The wording or its version.")
    consent_source = models.CharField(max_length=500, blank=True, help_text="Where it was given (form, page).")
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="merged_leads",
                                    editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "crmsync_lead"  # the table it had in the crmsync app
        ordering = ["-updated_at"]
        constraints = [
            # One lead per normalized email; concurrent submissions for one person make one row.
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="lead_unique_email"),
        ]
        indexes = [models.Index(fields=["last_name", "first_name"], name="lead_name")]

    def __str__(self) -> str:
        return self.email or self.external_id


class Company(models.Model):
    """One company per domain. Free-mail domains (gmail.com...) never become companies."""

    domain = models.CharField(max_length=253, unique=True)
    name = models.CharField(max_length=200, blank=True)
    is_customer = models.BooleanField(
        default=False, help_text="An existing customer: its people are routed to account management.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]
        verbose_name_plural = "companies"

    def __str__(self) -> str:
        return self.name or self.domain

    def save(self, *args, **kwargs) -> None:
        self.domain = bare_domain(self.domain)  # "https://www.ACME.com/" is acme.com, as leads find it
        super().save(*args, **kwargs)


class LeadIdentity(models.Model):
    """A key that identifies a lead besides its own columns: a source's record ID (a Stripe
    customer, a Meta lead, a Typeform response), or another email address of the same person
    (from a merge or a name + company match). Unique, so two leads can never hold one key."""

    class Kind(models.TextChoices):
        SOURCE_RECORD = "source_record", "Source record ID"
        EMAIL = "email", "Other email address"

    lead = models.ForeignKey("Lead", on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "lead identities"
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="leadidentity_unique_key")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.value}"


class LeadDecision(models.Model):
    """Why a lead looks the way it does: every match, merge, CRM adoption, stage change and
    owner assignment, with what changed. Shown on the lead in the admin."""

    class Action(models.TextChoices):
        CREATED = "created", "Created a new lead"
        MATCHED = "matched", "Matched an existing lead"
        MERGED = "merged", "Merged by a reviewer"
        CRM_MATCHED = "crm_matched", "Adopted a CRM record found by email"
        STAGE = "stage", "Lifecycle stage"
        ROUTED = "routed", "Owner assigned"
        CUSTOMER = "customer", "Existing customer"
        CRM_CHANGED = "crm_changed", "Changed in a CRM"
        CONFLICT = "conflict", "Sync conflict"

    lead = models.ForeignKey("Lead", on_delete=models.CASCADE, related_name="decisions")
    submission = models.ForeignKey("ingestion.Submission", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    matched_by = models.CharField(max_length=30, blank=True, help_text="The key that matched, for matches.")
    detail = models.TextField(blank=True)
    changes = models.JSONField(default=dict, blank=True, help_text="field -> [before, after], and what was kept.")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    correlation_id = models.CharField(
        max_length=64, blank=True, db_index=True,
        help_text="The correlation ID of the submission (or push) whose processing made this decision.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["lead", "created_at"], name="leaddecision_lead")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} ({self.created_at:%Y-%m-%d %H:%M})" if self.created_at else self.action


class MergeRule(models.Model):
    """Which value wins when a known person sends a field again. Without a rule the newest
    non-blank value wins. Blank values never overwrite stored ones, whatever the rule."""

    class Mode(models.TextChoices):
        NEWEST = "newest", "Newest non-blank value wins"
        FIRST = "first", "Keep the first value; later ones only fill a blank"
        PRIORITY = "priority", "Sources in the order listed win; others only fill a blank"

    field = models.CharField(max_length=100, unique=True,
                             help_text="A lead field (email, first_name, ...) or attributes.<name>.")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.NEWEST)
    source_order = models.CharField(
        max_length=500, blank=True,
        help_text="Priority mode: source slugs, most trusted first, comma-separated. A source of equal or "
                  "higher rank than the one that set the value replaces it.")

    class Meta:
        ordering = ["field"]

    def __str__(self) -> str:
        return f"{self.field}: {self.get_mode_display()}"

    @property
    def sources(self) -> list[str]:
        return [s.strip() for s in self.source_order.split(",") if s.strip()]

    def clean(self) -> None:
        errors = {}
        if self.field not in LEAD_FIELDS and not self.field.startswith("attributes."):
            errors["field"] = f"Use one of {', '.join(LEAD_FIELDS)} or attributes.<name>."
        if self.mode == self.Mode.PRIORITY and not self.sources:
            errors["source_order"] = "List the source slugs in order of trust."
        if errors:
            raise ValidationError(errors)


class ScoringRule(models.Model):
    """Points for a lead whose field matches. The total decides its lifecycle stage."""

    class Operator(models.TextChoices):
        EQUALS = "equals", "equals"
        CONTAINS = "contains", "contains"
        IN = "in", "is one of (comma-separated)"
        PRESENT = "present", "is not blank"

    name = models.CharField(max_length=200, blank=True)
    field = models.CharField(max_length=100, help_text="A lead field, attributes.<name> or attribution.<name>.")
    operator = models.CharField(max_length=10, choices=Operator.choices, default=Operator.EQUALS)
    value = models.CharField(max_length=500, blank=True, help_text="Compared without regard to case.")
    points = models.IntegerField(help_text="May be negative.")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["field", "id"]

    def __str__(self) -> str:
        return f"{self.describe()}: {self.points:+d}"

    def describe(self) -> str:
        return self.name or f"{self.field} {self.operator} {self.value}".strip()

    def clean(self) -> None:
        errors = {}
        if message := field_path_error(self.field):
            errors["field"] = message
        if self.operator != self.Operator.PRESENT and not self.value.strip():
            errors["value"] = "Give the value to compare with."
        if errors:
            raise ValidationError(errors)


class StageThreshold(models.Model):
    """The score from which a lead becomes a marketing- or sales-qualified lead."""

    class Stage(models.TextChoices):
        MQL = "mql", "Marketing-qualified lead"
        SQL = "sql", "Sales-qualified lead"

    stage = models.CharField(max_length=10, choices=Stage.choices, unique=True)
    min_score = models.IntegerField()

    class Meta:
        ordering = ["min_score"]

    def __str__(self) -> str:
        return f"{self.get_stage_display()} from {self.min_score}"


class CustomerEntry(models.Model):
    """The customer list: an email address or a whole domain that belongs to an existing customer."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email address"
        DOMAIN = "domain", "Domain"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.CharField(max_length=254)
    account_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["kind", "value"]
        verbose_name = "customer list entry"
        verbose_name_plural = "customer list"
        constraints = [models.UniqueConstraint(fields=["kind", "value"], name="customerentry_unique")]

    def __str__(self) -> str:
        return self.value

    def clean(self) -> None:
        self.value = self.value.strip().lower().lstrip("@")  # as save() stores it
        if self.kind == self.Kind.EMAIL and "@" not in self.value:
            raise ValidationError({"value": "An email address needs an @."})
        if self.kind == self.Kind.DOMAIN and ("@" in self.value or "." not in self.value):
            raise ValidationError({"value": "A domain looks like example.com."})

    def save(self, *args, **kwargs) -> None:
        # Leads' emails and domains are lower-case; so is the list, however it was typed.
        self.value = self.value.strip().lower().lstrip("@")
        super().save(*args, **kwargs)


class Team(models.Model):
    """Owners who share leads round-robin."""

    name = models.CharField(max_length=200, unique=True)
    is_default = models.BooleanField(default=False, help_text="Gets the new leads no territory rule claims.")
    handles_customers = models.BooleanField(
        default=False, help_text="Account management: gets the people of existing customers.")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["is_default"], condition=Q(is_default=True), name="team_one_default"),
            models.UniqueConstraint(fields=["handles_customers"], condition=Q(handles_customers=True),
                                    name="team_one_for_customers"),
        ]

    def __str__(self) -> str:
        return self.name


class Owner(models.Model):
    """A salesperson. Their CRM user IDs are pushed to the CRM's owner field."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="owners")
    name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    weight = models.PositiveIntegerField(default=1, help_text="A weight of 2 gets twice the leads of a weight of 1.")
    is_away = models.BooleanField(default=False, help_text="Skipped by round-robin while set.")
    hubspot_owner_id = models.CharField(max_length=50, blank=True, help_text="HubSpot owner ID (hubspot_owner_id).")
    salesforce_user_id = models.CharField(max_length=18, blank=True, help_text="Salesforce User ID (OwnerId).")
    assigned = models.PositiveIntegerField(default=0, editable=False, help_text="Leads assigned so far.")

    class Meta:
        ordering = ["team", "name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.weight < 1:
            raise ValidationError({"weight": "At least 1; mark the owner away instead."})


class TerritoryRule(models.Model):
    """Leads whose field (country by default) is one of the values go to this team."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="territories")
    field = models.CharField(max_length=100, default="country",
                             help_text="country, or attributes.<name> for a region or state.")
    values = models.CharField(max_length=1000, help_text="Comma-separated, compared without regard to case: DE, AT, CH.")
    position = models.PositiveIntegerField(default=0, help_text="Lower first; the first matching rule wins.")

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.field} in {self.values} → {self.team}"

    @property
    def value_set(self) -> set[str]:
        return {v.strip().lower() for v in self.values.split(",") if v.strip()}

    def clean(self) -> None:
        errors = {}
        if message := field_path_error(self.field):
            errors["field"] = message
        if not self.value_set:
            errors["values"] = "List at least one value."
        if errors:
            raise ValidationError(errors)


class CampaignAlias(models.Model):
    """Campaign names as people type them, mapped to the one name reports use."""

    raw = models.CharField(max_length=200, unique=True, help_text="Compared without regard to case, spaces or hyphens.")
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name", "raw"]
        verbose_name_plural = "campaign aliases"

    def __str__(self) -> str:
        return f"{self.raw} → {self.name}"

    def save(self, *args, **kwargs) -> None:
        self.raw = campaign_key(self.raw)
        super().save(*args, **kwargs)


def campaign_key(value: str) -> str:
    return "".join(ch for ch in value.strip().lower() if ch.isalnum())
