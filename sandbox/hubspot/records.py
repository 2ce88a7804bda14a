"""Records of the sandbox HubSpot (contacts, companies): what the object endpoints read and write.

Writes follow HubSpot's documented behaviour (docs/wire-contracts.md): values stored as strings, email
trimmed and lower-cased, one contact per email and one record per value of a unique property, a
refused property value refusing the whole request, a conflicting batch input failing alone.
Every function takes the object type (properties.CONTACTS, properties.COMPANIES) first.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any, Iterable

from django.db import transaction
from django.db.models import ExpressionWrapper, TextField
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from sandbox.hubspot.errors import HubSpotError, not_found, record_error, validation_error
from sandbox.hubspot.properties import (
    SYSTEM_PROPERTIES,
    ObjectType,
    Problem,
    PropertyDef,
    identifies,
    properties_clean,
    property_definitions,
    property_errors,
    unique_property,
)
from sandbox.limits import settings_get
from sandbox.models import SandboxRecord, SandboxSettings

CRM = "hubspot"
MAX_BATCH = 100  # HubSpot's limit for every batch endpoint


@dataclass(frozen=True)
class BatchOutcome:
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    started_at: datetime


@dataclass(frozen=True)
class UpsertInput:
    key: str
    id_property: str
    values: dict[str, str]


@dataclass(frozen=True)
class Clash:
    """A unique value the write would take from another record."""

    kind: ObjectType
    name: str
    value: str
    owner_id: int

    def message(self) -> str:
        if self.name == "email":
            return f"Contact already exists. Existing ID: {self.owner_id}"
        return f'A {self.kind.singular} with {self.name} "{self.value}" already exists. Existing ID: {self.owner_id}'


def iso(moment: datetime) -> str:
    """HubSpot's timestamp format: UTC, milliseconds, trailing Z."""
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- answers ----------------------------------------------------------------------------------

def record_values(record: SandboxRecord) -> dict[str, str]:
    """Stored values plus the ones HubSpot computes for every record."""
    return {**record.properties, "createdate": iso(record.created_at), "lastmodifieddate": iso(record.updated_at),
            "hs_object_id": str(record.pk)}


def record_json(record: SandboxRecord, *, wanted: list[str] | None = None) -> dict[str, Any]:
    """A record as HubSpot's SimplePublicObject. With `wanted`, only those properties (null when
    unset) and the computed ones; without, every property that has a value."""
    values = record_values(record)
    if wanted is not None:
        values = {name: values.get(name) for name in (*wanted, *SYSTEM_PROPERTIES)}
    return {"id": str(record.pk), "properties": values, "createdAt": iso(record.created_at),
            "updatedAt": iso(record.updated_at), "archived": record.archived}


def requested_properties(names: Iterable[str] | None, definitions: dict[str, PropertyDef]) -> list[str] | None:
    """The known names among those asked for (HubSpot ignores unknown ones); None: all set."""
    if not names:
        return None
    return [name for name in dict.fromkeys(names) if name in definitions]


# --- reads ------------------------------------------------------------------------------------

def record_find(kind: ObjectType, *, key: str, id_property: str = "hs_object_id",
                archived: bool | None = False) -> SandboxRecord | None:
    records = kind.model.objects.all() if archived is None else kind.model.objects.filter(archived=archived)
    if id_property == "hs_object_id":
        # 18 digits always fit a BigAutoField; anything longer cannot be an ID.
        return records.filter(pk=int(key)).first() if key.isdecimal() and len(key) <= 18 else None
    if id_property == "email" and kind.name == "contacts":
        return records.filter(email=key.strip().lower()).first()
    # A plain text comparison (not a JSON one) on the same expression as the *_ext_id indexes.
    key_value = ExpressionWrapper(KeyTextTransform(id_property, "properties"), output_field=TextField())
    return records.annotate(key_value=key_value).filter(key_value=key).first()


def record_get(kind: ObjectType, *, key: str, id_property: str | None, properties: list[str],
               archived: bool) -> dict[str, Any]:
    definitions = property_definitions(kind)
    id_property = unique_property(kind, id_property or "hs_object_id", definitions).name
    record = record_find(kind, key=key, id_property=id_property, archived=archived)
    if record is None:
        raise not_found("resource not found")
    return record_json(record, wanted=requested_properties(properties, definitions))


def records_page(kind: ObjectType, *, limit: int, after: int, properties: list[str],
                 archived: bool) -> tuple[list[dict], str | None]:
    """One page in ID order; the cursor is the last ID returned, when more remain."""
    wanted = requested_properties(properties, property_definitions(kind))
    rows = list(kind.model.objects.filter(archived=archived, pk__gt=after).order_by("pk")[: limit + 1])
    next_after = str(rows[limit - 1].pk) if len(rows) > limit else None
    return [record_json(row, wanted=wanted) for row in rows[:limit]], next_after


def records_batch_read(kind: ObjectType, *, inputs: Any, id_property: str | None, properties: Any,
                       archived: bool) -> BatchOutcome:
    started = timezone.now()
    _check_batch(inputs)
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise validation_error("Invalid input JSON: properties must be a list of property names.")
    definitions = property_definitions(kind)
    id_property = unique_property(kind, id_property or "hs_object_id", definitions).name
    wanted = requested_properties(properties, definitions)
    found, missing = [], []
    for key in dict.fromkeys(_read_key(raw) for raw in inputs):  # each record once, as HubSpot does
        record = record_find(kind, key=key, id_property=id_property, archived=archived)
        if record is None:
            missing.append(key)
        else:
            found.append(record_json(record, wanted=wanted))
    return BatchOutcome(found, [_not_found_in_batch(kind, missing)] if missing else [], started)


def _not_found_in_batch(kind: ObjectType, ids: list[str]) -> dict[str, Any]:
    message = (f"Could not get some {kind.singular.upper()} objects, they may be deleted or not exist. "
               "Check that ids are valid.")
    return record_error("OBJECT_NOT_FOUND", message, {"ids": ids})


def _read_key(raw: Any) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), (str, int)) or isinstance(raw.get("id"), bool):
        raise validation_error('Invalid input JSON: every input needs an "id".')
    return str(raw["id"])


def _check_batch(inputs: Any) -> None:
    if not isinstance(inputs, list):
        raise validation_error('Invalid input JSON: "inputs" must be a list.')
    if len(inputs) > MAX_BATCH:
        raise validation_error(f"Batch input size {len(inputs)} exceeds the maximum of {MAX_BATCH} inputs.")


# --- writes -----------------------------------------------------------------------------------

def record_create(kind: ObjectType, *, properties: Any) -> SandboxRecord:
    definitions = property_definitions(kind)
    values = _clean_or_refuse(properties, definitions)
    with transaction.atomic():
        _serialize_writes()
        clash = _clash(kind, values, definitions, record=None)
        if clash:
            raise HubSpotError(409, "CONFLICT", clash.message())
        return _save(kind.model(), values)


def record_update(kind: ObjectType, *, key: str, id_property: str | None, properties: Any) -> SandboxRecord:
    """PATCH one record found by ID (or another unique property): 404 when missing, 409 when a
    unique value belongs to another record."""
    definitions = property_definitions(kind)
    id_property = unique_property(kind, id_property or "hs_object_id", definitions).name
    values = _clean_or_refuse(properties, definitions)
    with transaction.atomic():
        _serialize_writes()
        record = record_find(kind, key=key, id_property=id_property)
        if record is None:
            raise not_found("resource not found")
        clash = _clash(kind, values, definitions, record)
        if clash:
            raise HubSpotError(409, "CONFLICT", clash.message())
        return _save(record, values)


def records_batch_create(kind: ObjectType, *, inputs: Any) -> BatchOutcome:
    """Create each input's record; one whose unique value is taken fails alone (207)."""
    started = timezone.now()
    definitions = property_definitions(kind)
    values = _batch_values(inputs, definitions, lambda raw: raw.get("properties", {}))
    results, errors = [], []
    with transaction.atomic():
        _serialize_writes()
        for index, item in enumerate(values):
            clash = _clash(kind, item, definitions, record=None)
            if clash:
                errors.append(record_error("CONFLICT", clash.message(), {"index": [str(index)], clash.name: [clash.value]}))
            else:
                results.append(record_json(_save(kind.model(), item)))
    return BatchOutcome(results, errors, started)


def records_batch_update(kind: ObjectType, *, inputs: Any) -> BatchOutcome:
    """Update records by record ID (HubSpot's batch update takes IDs only); unknown IDs and
    clashes fail alone (207), anything invalid refuses the batch."""
    started = timezone.now()
    definitions = property_definitions(kind)
    keys = [_read_key(raw) for raw in _checked_inputs(inputs)]
    if len(set(keys)) < len(keys):
        raise validation_error(f"Duplicate IDs found in batch input: {sorted(k for k, n in Counter(keys).items() if n > 1)}.")
    values = _batch_values(inputs, definitions, lambda raw: raw.get("properties", {}))
    results, errors, missing = [], [], []
    with transaction.atomic():
        _serialize_writes()
        for key, item in zip(keys, values):
            record = record_find(kind, key=key)
            clash = _clash(kind, item, definitions, record) if record else None
            if record is None:
                missing.append(key)
            elif clash:
                errors.append(record_error("CONFLICT", clash.message(), {"id": [key], clash.name: [clash.value]}))
            else:
                results.append(record_json(_save(record, item)))
    return BatchOutcome(results, errors + ([_not_found_in_batch(kind, missing)] if missing else []), started)


def records_upsert(kind: ObjectType, *, inputs: Any) -> BatchOutcome:
    """Create or update each input's record, found by its idProperty. All inputs are checked
    before anything is written; the batch is one transaction."""
    started = timezone.now()
    definitions = property_definitions(kind)
    items = _upsert_inputs(kind, inputs, definitions)
    results, errors = [], []
    with transaction.atomic():
        _serialize_writes()
        for item in items:
            result, error = _upsert_one(kind, item, definitions)
            results += [result] if result else []
            errors += [error] if error else []
    return BatchOutcome(results, errors, started)


def _clean_or_refuse(properties: Any, definitions: dict[str, PropertyDef]) -> dict[str, str]:
    values, problems = properties_clean(properties, definitions)
    if problems:
        raise property_errors(problems)
    return values


def _checked_inputs(inputs: Any) -> list[Any]:
    _check_batch(inputs)
    if not all(isinstance(raw, dict) for raw in inputs):
        raise validation_error("Invalid input JSON: every input must be an object.")
    return inputs


def _batch_values(inputs: Any, definitions: dict[str, PropertyDef], pick: Any) -> list[dict[str, str]]:
    """Every input's cleaned values; any refused value refuses the whole batch (400)."""
    cleaned, problems = [], []
    for raw in _checked_inputs(inputs):
        values, found = properties_clean(pick(raw), definitions)
        cleaned.append(values)
        problems += found
    if problems:
        raise property_errors(problems)
    return cleaned


def _upsert_inputs(kind: ObjectType, inputs: Any, definitions: dict[str, PropertyDef]) -> list[UpsertInput]:
    _check_batch(inputs)
    items, problems = [], []
    for raw in inputs:
        item, found = _upsert_input(kind, raw, definitions)
        items.append(item)
        problems += found
    if problems:
        raise property_errors(problems)
    counts = Counter((item.id_property, item.key) for item in items)
    duplicates = sorted(key for (_, key), seen in counts.items() if seen > 1)
    if duplicates:
        raise validation_error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
    return items


def _upsert_input(kind: ObjectType, raw: Any, definitions: dict[str, PropertyDef]) -> tuple[UpsertInput, list[Problem]]:
    if not isinstance(raw, dict) or raw.get("id") in (None, "") or not isinstance(raw.get("idProperty"), str):
        raise validation_error("Invalid input JSON: every upsert input needs id, idProperty and properties.")
    prop = unique_property(kind, raw["idProperty"], definitions)
    if prop.name == "hs_object_id":
        raise validation_error("hs_object_id cannot be set, so it cannot key an upsert; use a unique property.")
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        raise validation_error("Invalid input JSON: properties must be an object of property names to values.")
    # The key is written too, so a created record can be found by it next time.
    values, problems = properties_clean({**properties, prop.name: raw["id"]}, definitions)
    return UpsertInput(values.get(prop.name, str(raw["id"])), prop.name, values), problems


def _upsert_one(kind: ObjectType, item: UpsertInput, definitions: dict[str, PropertyDef]) -> tuple[dict | None, dict | None]:
    record = record_find(kind, key=item.key, id_property=item.id_property, archived=None)
    clash = _clash(kind, item.values, definitions, record)
    if clash:
        context = {"id": [item.key], "idProperty": [item.id_property], clash.name: [clash.value]}
        return None, record_error("CONFLICT", clash.message(), context)
    saved = _save(record or kind.model(), item.values)
    return {**record_json(saved), "new": record is None}, None


def _clash(kind: ObjectType, values: dict[str, str], definitions: dict[str, PropertyDef],
           record: SandboxRecord | None) -> Clash | None:
    for name, value in values.items():
        if not value or not identifies(kind, definitions[name]):
            continue
        owner = record_find(kind, key=value, id_property=name, archived=None)
        if owner is not None and (record is None or owner.pk != record.pk):
            return Clash(kind, name, value, owner.pk)
    return None


def _save(record: SandboxRecord, values: dict[str, str]) -> SandboxRecord:
    merged = {**record.properties, **values}
    record.properties = {name: value for name, value in merged.items() if value != ""}  # "" clears, as in HubSpot
    record.derive()
    record.updated_at = timezone.now()
    if record.pk is None:
        record.created_at = record.updated_at
    record.save()
    return record


def _serialize_writes() -> None:
    """Run concurrent writes one at a time, so two writes of a new unique value (a batch upsert
    keyed on it, or two creates) cannot both create a record. Every write of contacts and
    companies takes this lock before it looks for clashes, which makes the check race-free.

    On PostgreSQL this row lock does it (there is no row to lock for a key not yet written).
    SQLite ignores select_for_update, but its IMMEDIATE transactions already serialize writers.
    """
    settings_get(crm=CRM)
    SandboxSettings.objects.select_for_update().get(crm=CRM)
