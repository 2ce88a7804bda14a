"""Mapping from a sample: for senders whose fields are IDs or a form builder's own names (Gravity
Forms' "1.3", a custom form's "contact-mail"), RevOps pick a received submission, see every
field it holds (value redacted), choose a target for each, and the choices become draft rules,
to test and publish as any edit."""

from collections.abc import Iterable
from dataclasses import dataclass
import re
from typing import Any
import unicodedata

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from email_validator import EmailNotValidError, validate_email

from ingestion.models import Submission
from mapping.models import ATTRIBUTE_PREFIX, ATTRIBUTION_FIELDS, TARGETS, FieldRule, MappingSet
from mapping.services import FieldIndex, key_form, mapping_config_draft, redact, source_fields
from mapping.starters import GENERIC, starter_rule

_KEYS_MAX = FieldRule._meta.get_field("source_keys").max_length
_ATTRIBUTE_NAME_MAX = 60  # a long question ("How many people...?") makes a short attribute name


@dataclass(frozen=True)
class SampleField:
    name: str
    sample: str  # the value, redacted
    mapped_to: str  # the target of the draft rule that already reads it, '' when none does
    suggestion: str  # a target the name or value looks like, '' when none


def sample_fields(*, mapping_set: MappingSet, submission: Submission) -> list[SampleField]:
    """Every field of the submission as the draft's shape flattens it (with a reviewer's
    corrections), in the payload's order."""
    config = mapping_config_draft(mapping_set=mapping_set)
    fields = source_fields(submission=submission, shape=config["shape"])
    mapped = _mapped_to(config, fields)
    suggest = _suggester(fields, gravity=mapping_set.source.kind == "gravity_forms")
    return [SampleField(name, redact(value), mapped.get(name, ""), "" if name in mapped else suggest(name, value))
            for name, value in fields.items()]


def attribute_target(name: str) -> str:
    """The custom attribute a field is kept as: 'How did you hear?' -> attributes.how_did_you_hear."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", name.casefold()) if not unicodedata.combining(c))
    slug = re.sub(r"\W+", "_", plain, flags=re.ASCII)[:_ATTRIBUTE_NAME_MAX].strip("_") or "field"
    return ATTRIBUTE_PREFIX + (f"field_{slug}" if slug[0].isdigit() else slug)


def target_choices(name: str) -> list[tuple[str, str]]:
    """What a field can be mapped to, 'ignore' first."""
    return [("", "ignore"), *((t, t) for t in TARGETS),
            *((f"attribution.{a}", f"attribution.{a}") for a in ATTRIBUTION_FIELDS),
            (attribute_target(name), f"{attribute_target(name)} (custom attribute)")]


def name_error(name: str) -> str:
    """'' when a rule can name the field."""
    if "," in name:
        return "This field's name holds a comma, which a rule cannot name (rules separate names with commas)."
    return ""


def rules_from_sample(*, mapping_set: MappingSet, choices: Iterable[tuple[str, str]]) -> list[str]:
    """Write (field name, target) choices into the draft: a name becomes an alias of the rule
    that already has the target, or of a new rule with the target's usual steps. Returns what
    changed, as sentences. Raises ValidationError({name: message}), saving nothing, when a name
    cannot be added."""
    by_target: dict[str, list[str]] = {}
    for name, target in choices:
        by_target.setdefault(target, []).append(name)
    with transaction.atomic():
        rules = {rule.target: rule for rule in mapping_set.rules.select_for_update()}
        position = (mapping_set.rules.aggregate(n=Max("position"))["n"] or 0) + 1
        plans, errors = [], {}
        for target, names in by_target.items():
            rule = rules.get(target)
            if rule is None:
                rule, position = FieldRule(mapping_set=mapping_set, position=position, **starter_rule(target, "")), position + 1
            is_new = rule.pk is None
            if added := _add_names(rule, names, errors):
                plans.append((rule, added, is_new))
        if errors:
            raise ValidationError(errors)
        for rule, _, _ in plans:
            rule.full_clean(exclude=["mapping_set"])
            rule.save()
    return [f"{rule.target}: {'a new rule reading' if is_new else 'added'} {', '.join(repr(n) for n in added)}"
            for rule, added, is_new in plans]


def _add_names(rule: FieldRule, names: list[str], errors: dict[str, str]) -> list[str]:
    keys = rule.keys
    forms = {key_form(key) for key in keys}
    added = [name for name in dict.fromkeys(names) if key_form(name) not in forms]
    for name in added:
        if problem := name_error(name):
            errors[name] = problem
    joined = ", ".join([*keys, *added])
    if len(joined) > _KEYS_MAX:
        errors.update({name: f"The rule for {rule.target} would name more than {_KEYS_MAX} characters of fields; "
                             "remove aliases it no longer needs first." for name in added})
    rule.source_keys = joined
    return added


def _mapped_to(config: dict, fields: dict[str, Any]) -> dict[str, str]:
    view = FieldIndex(fields)
    mapped: dict[str, str] = {}
    for rule in config["rules"]:
        for name in view.named(rule["source_keys"]):
            mapped.setdefault(name, rule["target"])
    return mapped


# What the starter mappings call each field, for suggestions: 'Work Email' looks like email.
_KNOWN = {key_form(key): rule["target"] for rule in GENERIC for key in rule["source_keys"].split(",")
          if not rule["target"].startswith(ATTRIBUTE_PREFIX)}
_GRAVITY_INPUT = re.compile(r"(\d+)\.(\d+)")
# Gravity Forms' Name field keeps its parts as inputs .3 (first) and .6 (last); its Address
# field also has .3 and .6 (city, country) but always .1 (street) or .5 (postcode).
_GRAVITY_NAME = {"3": "first_name", "6": "last_name"}


def _suggester(fields: dict[str, Any], *, gravity: bool):
    def suggest(name: str, value: object) -> str:
        if target := _KNOWN.get(key_form(name)):
            return target
        if gravity and (match := _GRAVITY_INPUT.fullmatch(name)) and match[2] in _GRAVITY_NAME:
            if f"{match[1]}.1" not in fields and f"{match[1]}.5" not in fields:
                return _GRAVITY_NAME[match[2]]
        return "email" if _is_email(value) else ""
    return suggest


def _is_email(value: object) -> bool:
    if not isinstance(value, str) or "@" not in value:
        return False
    try:
        validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError:
        return False
    return True
