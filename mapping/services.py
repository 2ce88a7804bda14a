"""The mapping stage: publishing mapping versions, and turning a stored submission's untrusted
payload into canonical lead values (or per-field reasons to reject it), noting drift on the way.
It returns what it made; the pipeline (`crmsync.pipeline`) hands that to identity resolution."""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
import difflib
import json
import logging
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import BigIntegerField, Case, DateTimeField, F, Max, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from email_validator import EmailNotValidError, validate_email

from ingestion.models import Source, Submission
from mapping import extractors, transforms
from mapping.models import (
    ATTRIBUTE_PREFIX,
    ATTRIBUTION_PREFIX,
    FULL_NAME,
    DomainBlock,
    DriftOverflow,
    FieldPresence,
    FieldRule,
    MappingSet,
    MappingVersion,
    UnmappedField,
)

log = logging.getLogger(__name__)


@dataclass
class MappedLead:
    values: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    attribution: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    dropped: list[dict[str, str]] = field(default_factory=list)
    full_name: str = ""  # what a full_name rule gave: split into first and last name where missing


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
        if mapping_set.is_active:
            drift_resolve(mapping_set=mapping_set, config=config)
    mapping_set.published = version
    return version


def mapping_diff(*, old: dict, new: dict) -> list[str]:
    """A unified diff of two configurations, for the admin."""
    def lines(config: dict) -> list[str]:
        return json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), "before", "after", lineterm=""))


# --- Applying ------------------------------------------------------------------------------


def source_fields(*, submission: Submission, shape: str) -> dict[str, Any]:
    """The submission's flat view, with a reviewer's corrections (field_overrides) read over it."""
    fields = extractors.extract(submission.payload, shape=shape, enrichment=submission.enrichment)
    return {**fields, **submission.field_overrides}


def mapping_apply(*, config: dict, fields: dict[str, Any]) -> MappedLead:
    """Run every rule over the flat fields. Never raises for bad data: each problem is a
    per-field reason in `errors` (or a note in `dropped`)."""
    mapped = MappedLead()
    view = FieldIndex(fields)
    blocked = set(DomainBlock.objects.values_list("domain", flat=True))
    context = _context(config, view, blocked)
    for rule in config["rules"]:
        _apply_rule(rule, view, context, blocked, mapped)
    _split_full_name(mapped)
    return mapped


def key_form(name: str) -> str:
    """How a rule's field name finds a payload's: case, spaces, underscores and hyphens aside,
    so 'Last Name', 'last_name', 'lastName' and 'last-name' are one name. Dots count: Gravity
    Forms' '1.3' is not field '13'."""
    return _SEPARATORS.sub("", name).casefold()


_SEPARATORS = re.compile(r"[\s_\-]+")


class FieldIndex:
    """The flat fields with their names indexed by key_form(), built once per submission."""

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields
        self.forms: dict[str, list[str]] = {}
        for key in fields:
            self.forms.setdefault(key_form(key), []).append(key)

    def first_present(self, keys: list[str]) -> tuple[str | None, Any]:
        """The first alias with a value; an alias sent exactly as written wins over its
        differently written twins."""
        for key in keys:
            for candidate in (key, *self.forms.get(key_form(key), ())):
                value = self.fields.get(candidate)
                if value not in (None, "", [], {}) and not (isinstance(value, str) and not value.strip()):
                    return candidate, value
        return None, None

    def named(self, keys: Iterable[str]) -> set[str]:
        """The payload's field names that any of `keys` finds."""
        return {name for key in keys for name in self.forms.get(key_form(key), ())}


def _context(config: dict, view: FieldIndex, blocked: set[str]) -> transforms.Context:
    """The mapping's region and time zone; a lead who gives a country has their phone number
    read in that country rather than the mapping's default region."""
    context = transforms.Context(default_region=config.get("default_region", ""), timezone=config.get("timezone", "UTC"))
    for rule in config["rules"]:
        if rule["target"] == "country":
            probe = MappedLead()
            _apply_rule(rule, view, context, blocked, probe)
            if region := transforms.phone_region(probe.values.get("country", "")):
                return replace(context, default_region=region)
    return context


def _apply_rule(rule: dict, view: FieldIndex, context, blocked: set[str], mapped: MappedLead) -> None:
    key, raw = view.first_present(rule["source_keys"])
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


def _split_full_name(mapped: MappedLead) -> None:
    """First and last name from a full name where the submission gave none (Stripe's
    customer_details.name, Meta's full_name). A single word is a first name only."""
    full = mapped.full_name
    if not full.strip():
        return
    parts = {"first_name": "first", "last_name": "last"} if len(full.split()) > 1 else {"first_name": "first"}
    for target, part in parts.items():
        if not mapped.values.get(target) and (name := str(transforms.apply_chain(full, [{"op": "split_name", "part": part}]))):
            mapped.values[target] = name


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
    if target == FULL_NAME:
        mapped.full_name = str(value)
        mapped.attributes[FULL_NAME] = value
    elif target.startswith(ATTRIBUTE_PREFIX):
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


def mapping_preview(*, mapping_set: MappingSet, payload: dict, enrichment: dict | None = None,
                    overrides: dict | None = None) -> Preview:
    """What the draft would make of a payload (with a reviewer's corrections of a past
    submission read over it, as processing does). Saves nothing, pushes nothing."""
    config = mapping_config_draft(mapping_set=mapping_set)
    fields = {**extractors.extract(payload, shape=config["shape"], enrichment=enrichment or {}), **(overrides or {})}
    return Preview(fields, mapping_apply(config=config, fields=fields), _unmapped(config, fields))


# --- Drift ---------------------------------------------------------------------------------

# Unmapped names recorded per submission, and kept per source: a body with thousands of keys
# (a bug, or a form builder posting everything) must not write thousands of rows. Names past
# either limit are counted in the source's DriftOverflow instead.
DRIFT_NEW_PER_SUBMISSION = 50
DRIFT_KEPT_PER_SOURCE = 500
_IN_CHUNK = 500  # names per IN (...) lookup, well under SQLite's parameter limit

# A mapped field has stopped arriving when the source's last STOPPED_AFTER mapped submissions
# all lacked it, and at least PRESENT_SHARE of the HISTORY submissions before them had it: a
# field the form always sent (80 % allows for optional answers some senders leave out).
STOPPED_AFTER = 5
HISTORY = 20
PRESENT_SHARE = 0.8
_PRESENCE_MASK = (1 << (STOPPED_AFTER + HISTORY)) - 1


def _config_names(config: dict) -> list[str]:
    return [key for rule in config["rules"] for key in rule["source_keys"]]


def _unmapped(config: dict, fields: dict) -> list[str]:
    named = FieldIndex(fields).named(_config_names(config))
    # Some shapes offer one answer under two keys (Typeform ref and id, Tally key and label,
    # Jotform q3_email and email); the twin of a mapped key is not drift.
    used = [fields[key] for key in named]
    return sorted(key for key, value in fields.items() if key not in named and value not in used)


def drift_record(*, source: Source, config: dict, fields: dict) -> list[str]:
    """Count fields the mapping does not name; returns the names recorded for the first time.
    At most DRIFT_NEW_PER_SUBMISSION new names per submission and DRIFT_KEPT_PER_SOURCE per
    source are recorded; the others are counted as left out."""
    unmapped = {name[:300]: fields[name] for name in _unmapped(config, fields)}
    if not unmapped:
        return []
    known = _count_known(source, sorted(unmapped))
    fresh = [name for name in unmapped if name not in known]
    if not fresh:
        return []
    room = max(0, min(DRIFT_NEW_PER_SUBMISSION, DRIFT_KEPT_PER_SOURCE - UnmappedField.objects.filter(source=source).count()))
    recorded = fresh[:room]
    # Sorted inserts take their locks in one order, so concurrent submissions cannot deadlock.
    UnmappedField.objects.bulk_create([UnmappedField(source=source, name=name, sample=redact(unmapped[name]))
                                       for name in sorted(recorded)], ignore_conflicts=True)
    if len(fresh) > len(recorded):
        _overflow_add(source, len(fresh) - len(recorded))
    return recorded


def _count_known(source: Source, names: list[str]) -> set[str]:
    """Count one more sighting of the names already recorded; returns those names."""
    known: set[str] = set()
    now = timezone.now()
    for start in range(0, len(names), _IN_CHUNK):
        rows = UnmappedField.objects.filter(source=source, name__in=names[start : start + _IN_CHUNK])
        found = set(rows.values_list("name", flat=True))
        if found:
            UnmappedField.objects.filter(source=source, name__in=sorted(found)).update(count=F("count") + 1, last_seen=now)
        known |= found
    return known


def _overflow_add(source: Source, count: int) -> None:
    now = timezone.now()
    changes = {"names_left_out": F("names_left_out") + count, "last_left_out_at": now}
    if DriftOverflow.objects.filter(source=source).update(**changes):
        return
    try:
        with transaction.atomic():
            DriftOverflow.objects.create(source=source, names_left_out=count, last_left_out_at=now)
    except IntegrityError:  # created concurrently
        DriftOverflow.objects.filter(source=source).update(**changes)


def presence_record(*, source: Source, config: dict, fields: dict) -> list[str]:
    """Note which of the mapping's fields this submission had; returns the names found, with
    it, to have stopped arriving (see STOPPED_AFTER). One UPDATE for all of the source's
    fields and one INSERT for names seen for the first time: no counting of submissions."""
    present = sorted({name[:300] for name in FieldIndex(fields).named(_config_names(config))})
    now = timezone.now()
    here = Q(name__in=present)
    shifted = F("recent").bitleftshift(1)
    count, moment = BigIntegerField(), DateTimeField()
    FieldPresence.objects.filter(source=source).update(
        recent=Case(When(here, then=shifted.bitor(1).bitand(_PRESENCE_MASK)), default=shifted.bitand(_PRESENCE_MASK),
                    output_field=count),
        seen=Case(When(here, then=F("seen") + 1), default=F("seen"), output_field=count),
        misses_in_a_row=Case(When(here, then=Value(0)), default=F("misses_in_a_row") + 1, output_field=count),
        last_seen_at=Case(When(here, then=Value(now)), default=F("last_seen_at"), output_field=moment),
        stopped_at=Case(When(here, then=Value(None)), default=F("stopped_at"), output_field=moment),
    )
    FieldPresence.objects.bulk_create([FieldPresence(source=source, name=name, seen=1, recent=1, last_seen_at=now)
                                       for name in present], ignore_conflicts=True)
    return _stopped_arriving(source, now)


def _stopped_arriving(source: Source, now) -> list[str]:
    """Fields whose run of misses reached STOPPED_AFTER with this submission, and that were
    regular before it."""
    candidates = FieldPresence.objects.filter(source=source, misses_in_a_row=STOPPED_AFTER, stopped_at__isnull=True)
    before = PRESENT_SHARE * HISTORY
    stopped = {pk: name for pk, name, recent in candidates.values_list("pk", "name", "recent")
               if (recent >> STOPPED_AFTER).bit_count() >= before}
    if stopped:
        FieldPresence.objects.filter(pk__in=stopped).update(stopped_at=now)
        log.warning("fields stopped arriving", extra={"source": source.slug, "fields": sorted(stopped.values())})
    return sorted(stopped.values())


def drift_resolve(*, mapping_set: MappingSet, config: dict) -> None:
    """After a publish: unmapped fields the published rules now name are no longer drift, and
    fields they no longer name are no longer watched for stopping."""
    forms = {key_form(name) for name in _config_names(config)}
    unmapped = UnmappedField.objects.filter(source_id=mapping_set.source_id)
    mapped_now = [pk for pk, name in unmapped.values_list("pk", "name") if key_form(name) in forms]
    UnmappedField.objects.filter(pk__in=mapped_now).delete()
    watched = FieldPresence.objects.filter(source_id=mapping_set.source_id)
    unnamed = [pk for pk, name in watched.values_list("pk", "name") if key_form(name) not in forms]
    FieldPresence.objects.filter(pk__in=unnamed).delete()


def drift_acknowledge(*, unmapped_ids: list[int]) -> int:
    """A person has seen these unmapped fields: stop warning about them, and about the names
    their sources' limits left out. Returns how many were acknowledged."""
    rows = UnmappedField.objects.filter(pk__in=unmapped_ids)
    DriftOverflow.objects.filter(source_id__in=rows.values("source_id")).update(names_left_out=0)
    return rows.update(acknowledged=True)


def presence_dismiss(*, presence_ids: list[int]) -> int:
    """A person says these fields stopped on purpose: stop warning until they arrive and stop again."""
    return FieldPresence.objects.filter(pk__in=presence_ids, stopped_at__isnull=False).update(stopped_at=None)


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
    fields no rule names and which named ones it had (drift, both ways), and apply the rules.
    Saves nothing on the submission."""
    mapping_set = MappingSet.objects.filter(source=submission.source, is_active=True).select_related("published").first()
    if mapping_set is None or mapping_set.published is None:
        reasons = [{"field": "", "target": "", "message": "The source has no active, published mapping."}]
        return SubmissionMapped(None, MappedLead(), reasons)
    version = mapping_set.published
    fields = source_fields(submission=submission, shape=version.config["shape"])
    drift_record(source=submission.source, config=version.config, fields=fields)
    presence_record(source=submission.source, config=version.config, fields=fields)
    mapped = mapping_apply(config=version.config, fields=fields)
    return SubmissionMapped(version, mapped, mapped.errors)
