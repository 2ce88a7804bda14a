"""Mapping configuration. RevOps edit a MappingSet's rules as a draft; publishing freezes them
into an immutable MappingVersion, and submissions are processed by the published version."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from core.fields import CONSENT_FIELDS
from core.fields import LEAD_FIELDS as CANONICAL_FIELDS
from mapping import extractors, transforms

# The canonical lead fields a rule may target; anything else goes to "attributes.<key>".
ATTRIBUTE_PREFIX = "attributes."
ATTRIBUTION_PREFIX = "attribution."
ATTRIBUTION_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "referrer", "landing_page")
# Keys that identify the person: our own external ID (a form may send it back) and the source's
# record ID (Stripe customer, Meta lead, Typeform response). Matched before the email.
IDENTITY_FIELDS = ("external_id", "source_record_id")
# A person's whole name, for sources that send no first and last name: kept as
# attributes.full_name and split into first_name and last_name where those are not given.
FULL_NAME = "full_name"
# Consent (CONSENT_FIELDS) is mapped explicitly and never defaulted: no default value, no constant step.
TARGETS = (*CANONICAL_FIELDS, FULL_NAME, *IDENTITY_FIELDS, *CONSENT_FIELDS)


def target_error(target: str) -> str:
    """'' when the target names a lead field, an attribution field or a custom attribute."""
    if target in TARGETS:
        return ""
    if target.startswith(ATTRIBUTION_PREFIX) and target.removeprefix(ATTRIBUTION_PREFIX) in ATTRIBUTION_FIELDS:
        return ""
    if target.startswith(ATTRIBUTE_PREFIX) and target.removeprefix(ATTRIBUTE_PREFIX).isidentifier():
        return ""
    return (f"Use one of {', '.join(TARGETS)}, attribution.<{'|'.join(ATTRIBUTION_FIELDS)}> "
            "or attributes.<name>.")


class MappingSet(models.Model):
    """How one source's payload becomes a canonical lead. One active set per source."""

    source = models.ForeignKey("ingestion.Source", on_delete=models.CASCADE, related_name="mapping_sets")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    shape = models.CharField(max_length=40, blank=True,
                             help_text="How the payload is flattened into fields. Empty: the source kind's default.")
    default_region = models.CharField(max_length=2, blank=True, help_text="ISO country for phone numbers without +code.")
    timezone = models.CharField(max_length=64, default="UTC", help_text="IANA zone for dates without an offset.")
    published = models.ForeignKey("MappingVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                  help_text="The version new submissions are processed with.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["source__name", "name"]
        permissions = [("publish_mappingset", "Can publish and roll back mappings")]
        constraints = [
            models.UniqueConstraint(
                fields=["source"], condition=Q(is_active=True), name="mappingset_one_active_per_source"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = transforms.context_errors(transforms.Context(default_region=self.default_region,
                                                              timezone=self.timezone))
        if self.shape and self.shape not in extractors.SHAPES:
            errors["shape"] = f"Unknown shape; use one of {', '.join(extractors.SHAPES)}."
        if errors:
            raise ValidationError(errors)


class FieldRule(models.Model):
    """One canonical field from the first source key present, through a transform chain."""

    class OnInvalid(models.TextChoices):
        REJECT = "reject", "Reject the submission"
        DROP = "drop", "Drop the field"
        DEFAULT = "default", "Use the default value"

    mapping_set = models.ForeignKey(MappingSet, on_delete=models.CASCADE, related_name="rules")
    position = models.PositiveIntegerField(default=0)
    source_keys = models.CharField(
        max_length=500,
        help_text="Field names in the payload, comma-separated; the first one present wins (aliases). Case, spaces, "
                  "underscores and hyphens do not matter: last_name also finds 'Last Name', lastName and last-name.")
    target = models.CharField(
        max_length=200,
        help_text=f"A lead field ({', '.join(TARGETS)}), attribution.<{'|'.join(ATTRIBUTION_FIELDS)}> "
                  "or attributes.<name> for a custom attribute. full_name is split into first_name and last_name "
                  "when the submission gives no first or last name.")
    transforms = models.JSONField(default=list, blank=True,
                                  help_text='A chain of steps, e.g. [{"op": "trim"}, {"op": "lower"}].')
    required = models.BooleanField(default=False)
    on_invalid = models.CharField(max_length=10, choices=OnInvalid.choices, default=OnInvalid.REJECT)
    default = models.CharField(max_length=500, blank=True, help_text="Used when missing, or when invalid if chosen above.")
    max_length = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mapping_set", "target"], name="fieldrule_unique_target"),
        ]

    def __str__(self) -> str:
        return f"{self.source_keys} → {self.target}"

    @property
    def keys(self) -> list[str]:
        return [key.strip() for key in self.source_keys.split(",") if key.strip()]

    def clean(self) -> None:
        errors = {}
        if message := target_error(self.target):
            errors["target"] = message
        if not self.keys:
            errors["source_keys"] = "Name at least one source field."
        if problems := transforms.validate_chain(self.transforms):
            errors["transforms"] = problems
        if self.on_invalid == self.OnInvalid.DEFAULT and not self.default:
            errors["default"] = "Give the default value to use."
        if self.target in CONSENT_FIELDS:
            errors.update(consent_rule_errors(self.default, self.on_invalid, self.transforms))
        if errors:
            raise ValidationError(errors)

    def as_config(self) -> dict:
        return {"source_keys": self.keys, "target": self.target, "transforms": self.transforms,
                "required": self.required, "on_invalid": self.on_invalid, "default": self.default,
                "max_length": self.max_length}


def consent_rule_errors(default: str, on_invalid: str, chain: object) -> dict[str, str]:
    """Consent comes from the person or not at all: a rule may not make one up."""
    errors = {}
    if default:
        errors["default"] = "Consent is never defaulted: leave it empty, so a missing answer stays missing."
    if on_invalid == FieldRule.OnInvalid.DEFAULT:
        errors["on_invalid"] = "Consent is never defaulted: reject the submission or drop the field."
    if isinstance(chain, list) and any(isinstance(s, dict) and s.get("op") in ("constant", "default") for s in chain):
        errors["transforms"] = "Consent is never defaulted: remove the constant or default step."
    return errors


class MappingVersion(models.Model):
    """An immutable published configuration: who published it, when, why, and exactly what."""

    mapping_set = models.ForeignKey(MappingSet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    config = models.JSONField(help_text="The rules and settings as published.")
    note = models.CharField(max_length=500, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mapping_set", "-number"]
        constraints = [models.UniqueConstraint(fields=["mapping_set", "number"], name="mappingversion_unique_number")]

    def __str__(self) -> str:
        return f"{self.mapping_set} v{self.number}"


class DomainBlock(models.Model):
    """Email domains that never become leads: disposable inboxes, test domains."""

    domain = models.CharField(max_length=253, unique=True)
    reason = models.CharField(max_length=200, blank=True, default="disposable or test domain")

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain

    def save(self, *args, **kwargs) -> None:
        self.domain = self.domain.strip().lower().lstrip("@")
        super().save(*args, **kwargs)


class UnmappedField(models.Model):
    """Schema drift: a field a source sends that its mapping does not name."""

    source = models.ForeignKey("ingestion.Source", on_delete=models.CASCADE, related_name="unmapped_fields")
    name = models.CharField(max_length=300)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(auto_now=True)
    count = models.PositiveBigIntegerField(default=1)
    sample = models.CharField(max_length=200, blank=True, help_text="A redacted example value.")
    acknowledged = models.BooleanField(default=False, help_text="Seen by a person; no longer warned about.")

    class Meta:
        ordering = ["acknowledged", "-last_seen"]
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="unmappedfield_unique")]

    def __str__(self) -> str:
        return f"{self.source}: {self.name}"


class DriftOverflow(models.Model):
    """Unmapped field names a source sent that were not recorded, because a submission brought
    more new names than are recorded at once or the source already has as many as are kept
    (mapping.services.DRIFT_NEW_PER_SUBMISSION, DRIFT_KEPT_PER_SOURCE)."""

    source = models.OneToOneField("ingestion.Source", on_delete=models.CASCADE, related_name="drift_overflow")
    names_left_out = models.PositiveBigIntegerField(default=0, help_text="Unmapped names seen but not recorded, "
                                                                          "counted once per submission.")
    last_left_out_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.source}: {self.names_left_out} unmapped names not recorded"


class FieldPresence(models.Model):
    """How regularly a source sends a field its mapping uses, updated as each submission is
    mapped, so that a field that stops arriving (renamed on the form, say) is noticed without
    counting submissions. The rule is in mapping.services.presence_record."""

    source = models.ForeignKey("ingestion.Source", on_delete=models.CASCADE, related_name="field_presence")
    name = models.CharField(max_length=300)
    seen = models.PositiveBigIntegerField(default=0, help_text="Mapped submissions that had it.")
    last_seen_at = models.DateTimeField(null=True, blank=True)
    misses_in_a_row = models.PositiveIntegerField(default=0, help_text="Mapped submissions without it since.")
    recent = models.PositiveIntegerField(
        default=0, help_text="One bit per recent mapped submission of the source, the latest lowest: 1 when it had it.")
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was found to have stopped arriving; cleared when it arrives again.")

    class Meta:
        ordering = ["source", "name"]
        verbose_name_plural = "field presence"
        constraints = [models.UniqueConstraint(fields=["source", "name"], name="fieldpresence_unique")]
        indexes = [models.Index(fields=["stopped_at"], condition=Q(stopped_at__isnull=False),
                                name="fieldpresence_stopped")]

    def __str__(self) -> str:
        return f"{self.source}: {self.name}"
