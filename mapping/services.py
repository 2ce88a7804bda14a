"""The mapping stage: publishing mapping versions, and turning a stored submission's untrusted
payload into canonical lead values (or per-field reasons to reject it), noting drift on the way.
It returns what it made; the pipeline (`crmsync.pipeline`) hands that to identity resolution."""

from dataclasses import dataclass, field
import difflib
import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from email_validator import EmailNotValidError, validate_email

from ingestion.models import Source, Submission
from mapping import extractors, transforms
from mapping.models import ATTRIBUTE_PREFIX, ATTRIBUTION_PREFIX, DomainBlock, FieldRule, MappingSet, MappingVersion, UnmappedField

log = logging.getLogger(__name__)


@dataclass
class MappedLead:
    values: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    attribution: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    dropped: list[dict[str, str]] = field(default_factory=list)


# --- Configuration -------------------------------------------------------------------------


def mapping_config_draft(*, mapping_set: MappingSet) -> dict[str, Any]:
    """The set's current (unpublished) rules and settings, in the shape versions store."""
    return {
        "shape": mapping_set.shape or extractors.shape_for_kind(mapping_set.source.kind),
        "default_region": mapping_set.default_region.upper(),
        "timezone": mapping_set.timezone,
        "rules": [rule.as_config() for rule in mapping_set.rules.all()],
    }


def mapping_config_check(*, mapping_set: MappingSet) -> list[str]:
    """Every configuration problem of the draft, as sentences; [] when it can be published."""
    problems = []
    for item in (mapping_set, *mapping_set.rules.all()):
        try:
            item.full_clean(exclude=["mapping_set", "published"])
        except ValidationError as exc:
            problems += [f"{item}: {message}" for message in exc.messages]
    return problems


def mapping_publish(*, mapping_set: MappingSet, user=None, note: str = "") -> MappingVersion:
    """Freeze the draft into a new immutable version and make it the one in use."""
    if problems := mapping_config_check(mapping_set=mapping_set):
        raise ValidationError(problems)
    return _publish(mapping_set, mapping_config_draft(mapping_set=mapping_set), user, note)


def mapping_rollback(*, version: MappingVersion, user=None) -> MappingVersion:
    """Publish an old version's configuration again (history stays linear) and restore the
    draft rules to it, so the next edit starts from what is live."""
    mapping_set = version.mapping_set
    with transaction.atomic():
        mapping_set.rules.all().delete()
        FieldRule.objects.bulk_create(
            FieldRule(mapping_set=mapping_set, position=i, source_keys=", ".join(rule["source_keys"]),
                      target=rule["target"], transforms=rule["transforms"], required=rule["required"],
                      on_invalid=rule["on_invalid"], default=rule["default"], max_length=rule["max_length"])
            for i, rule in enumerate(version.config["rules"]))
        return _publish(mapping_set, version.config, user, f"Rollback to v{version.number}")


def _publish(mapping_set: MappingSet, config: dict, user, note: str) -> MappingVersion:
    with transaction.atomic():
        MappingSet.objects.select_for_update().get(pk=mapping_set.pk)  # numbers stay unique and gapless
        number = (mapping_set.versions.aggregate(n=Max("number"))["n"] or 0) + 1
        version = MappingVersion.objects.create(mapping_set=mapping_set, number=number, config=config,
                                                published_by=user if user and user.is_authenticated else None,
                                                note=note)
        MappingSet.objects.filter(pk=mapping_set.pk).update(published=version)
    mapping_set.published = version
    return version


def mapping_diff(*, old: dict, new: dict) -> list[str]:
    """A unified diff of two configurations, for the admin."""
    def lines(config: dict) -> list[str]:
        return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), "before", "after", lineterm=""))


# --- Applying ------------------------------------------------------------------------------


def source_fields(*, submission: Submission, shape: str) -> dict[str, Any]:
    return extractors.extract(submission.payload, shape=shape, enrichment=submission.enrichment)


def mapping_apply(*, config: dict, fields: dict[str, Any]) -> MappedLead:
    """Run every rule over the flat fields. Never raises for bad data: each problem is a
    per-field reason in `errors` (or a note in `dropped`)."""
    mapped = MappedLead()
    context = transforms.Context(default_region=config.get("default_region", ""), timezone=config.get("timezone", "UTC"))
    blocked = set(DomainBlock.objects.values_list("domain", flat=True))
    for rule in config["rules"]:
        _apply_rule(rule, fields, context, blocked, mapped)
    return mapped


def _apply_rule(rule: dict, fields: dict, context, blocked: set[str], mapped: MappedLead) -> None:
    key, raw = _first_present(fields, rule["source_keys"])
    if key is None:
        if rule["default"]:
            _store(mapped, rule["target"], rule["default"])
        elif rule["required"]:
            names = " or ".join(f"'{k}'" for k in rule["source_keys"])
            mapped.errors.append(_reason(rule, rule["source_keys"][0], f"{names} is required but missing or empty."))
        return
    try:
        value = _validate(rule, transforms.apply_chain(raw, rule["transforms"], context=context), blocked)
    except transforms.TransformError as exc:
        _invalid(rule, key, str(exc), mapped)
        return
    if value in (None, "", []):
        if rule["required"]:
            mapped.errors.append(_reason(rule, key, f"'{key}' is required but empty after normalizing."))
        return
    _store(mapped, rule["target"], value)


def _first_present(fields: dict, keys: list[str]) -> tuple[str | None, Any]:
    for key in keys:
        value = fields.get(key)
        if value not in (None, "", [], {}) and not (isinstance(value, str) and not value.strip()):
            return key, value
    return None, None


def _validate(rule: dict, value: Any, blocked: set[str]) -> Any:
    """Raises TransformError for a value the target cannot hold; returns the value, parsed
    where the target has a type (consent)."""
    if rule["target"] == "email" and value not in (None, ""):
        _validate_email(str(value), blocked)
    if rule["target"] == "marketing_opt_in" and value not in (None, ""):
        value = transforms.apply_chain(value, [{"op": "boolean"}])
    if rule["target"] == "consent_at" and value not in (None, ""):
        if parse_datetime(str(value)) is None:
            raise transforms.TransformError(f"'{str(value)[:40]}' is not a date and time; add a 'datetime' step.")
    if rule["max_length"] and isinstance(value, str) and len(value) > rule["max_length"]:
        raise transforms.TransformError(f"'{value[:40]}' is longer than {rule['max_length']} characters.")
    return value


def _validate_email(value: str, blocked: set[str]) -> None:
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise transforms.TransformError(f"'{value}' is not a valid email address: {exc}") from exc
    domain = value.rsplit("@", 1)[-1].lower()
    if domain in blocked or any(domain.endswith("." + d) for d in blocked):
        raise transforms.TransformError(f"'{domain}' is a blocked email domain (disposable or test).")


def _invalid(rule: dict, key: str, message: str, mapped: MappedLead) -> None:
    if rule["on_invalid"] == FieldRule.OnInvalid.DEFAULT:
        _store(mapped, rule["target"], rule["default"])
    elif rule["on_invalid"] == FieldRule.OnInvalid.DROP:
        mapped.dropped.append(_reason(rule, key, message))
    else:
        mapped.errors.append(_reason(rule, key, message))


def _reason(rule: dict, key: str, message: str) -> dict[str, str]:
    return {"field": key, "target": rule["target"], "message": message}


def _store(mapped: MappedLead, target: str, value: Any) -> None:
    if target.startswith(ATTRIBUTE_PREFIX):
        mapped.attributes[target.removeprefix(ATTRIBUTE_PREFIX)] = value
    elif target.startswith(ATTRIBUTION_PREFIX):
        mapped.attribution[target.removeprefix(ATTRIBUTION_PREFIX)] = str(value)
    else:
        mapped.values[target] = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)


@dataclass
class Preview:
    fields: dict[str, Any]
    mapped: MappedLead
    unmapped: list[str]


def mapping_preview(*, mapping_set: MappingSet, payload: dict, enrichment: dict | None = None) -> Preview:
    """What the draft would make of a payload. Saves nothing, pushes nothing."""
    config = mapping_config_draft(mapping_set=mapping_set)
    fields = extractors.extract(payload, shape=config["shape"], enrichment=enrichment or {})
    return Preview(fields, mapping_apply(config=config, fields=fields), _unmapped(config, fields))


# --- Drift ---------------------------------------------------------------------------------


def _unmapped(config: dict, fields: dict) -> list[str]:
    named = {key for rule in config["rules"] for key in rule["source_keys"]}
    # Some shapes offer one answer under two keys (Typeform ref and id, Tally key and label,
    # Jotform q3_email and email); the twin of a mapped key is not drift.
    used = [fields[key] for key in named if key in fields]
    return sorted(key for key, value in fields.items() if key not in named and value not in used)


def drift_record(*, source: Source, config: dict, fields: dict) -> list[str]:
    """Count fields the mapping does not name; returns the names seen for the first time."""
    new = []
    for name in _unmapped(config, fields):
        sample = redact(fields[name])
        updated = UnmappedField.objects.filter(source=source, name=name[:300]).update(
            count=F("count") + 1, last_seen=timezone.now(), sample=sample)
        if not updated:
            try:
                with transaction.atomic():
                    UnmappedField.objects.create(source=source, name=name[:300], sample=sample)
                new.append(name)
            except IntegrityError:  # seen concurrently
                pass
    return new


def redact(value: Any) -> str:
    """Enough to recognise the kind of value, never the personal data itself."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, (int, float)):
        return "<number>"
    if isinstance(value, (list, dict)):
        return f"<{type(value).__name__} of {len(value)}>"
    text = str(value)
    if "@" in text:
        return "…@" + text.rsplit("@", 1)[1][:40]
    return f"{text[:2]}… ({len(text)} characters)" if len(text) > 2 else "…"


# --- Mapping a submission ----------------------------------------------------------------


@dataclass
class SubmissionMapped:
    """What the source's published mapping made of a submission: the version used (None when
    the source has none), the mapped lead, and the reasons to reject it (empty when it maps)."""

    version: MappingVersion | None
    mapped: MappedLead
    reasons: list[dict[str, str]]

    @property
    def rejected(self) -> bool:
        return bool(self.reasons)

    @property
    def notes(self) -> list[dict[str, str]]:
        """Values dropped under the 'drop' rule, to keep on the processed submission."""
        return [{**d, "message": f"dropped: {d['message']}"} for d in self.mapped.dropped]


def submission_map(*, submission: Submission) -> SubmissionMapped:
    """Flatten the submission's payload with its source's published mapping version, record the
    fields no rule names (drift), and apply the rules. Saves nothing on the submission."""
    mapping_set = MappingSet.objects.filter(source=submission.source, is_active=True).select_related("published").first()
    if mapping_set is None or mapping_set.published is None:
        reasons = [{"field": "", "target": "", "message": "The source has no active, published mapping."}]
        return SubmissionMapped(None, MappedLead(), reasons)
    version = mapping_set.published
    fields = source_fields(submission=submission, shape=version.config["shape"])
    drift_record(source=submission.source, config=version.config, fields=fields)
    mapped = mapping_apply(config=version.config, fields=fields)
    return SubmissionMapped(version, mapped, mapped.errors)
