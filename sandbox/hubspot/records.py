"""Records of the sandbox HubSpot (contacts, companies): what the object endpoints read and write.

Writes follow HubSpot's documented behaviour (docs/wire-contracts.md): values stored as strings, email
trimmed and lower-cased, one contact per email and one record per value of a unique property, a
refused property value refusing the whole request, a conflicting batch input failing alone.
Every function takes the object type (properties.CONTACTS, properties.COMPANIES) first.

For two-way sync: every write stamps the CRM's clock (sandbox/clock.py) and records, per changed
property, who changed it (`history`, served as propertiesWithHistory: sourceType INTEGRATION for
the API client, CRM_UI for a person). DELETE archives (archivedAt); a merge keeps the primary,
lists the merged IDs on it (hs_merged_object_ids) and answers reads of a merged-away ID with the
survivor. Archived and merged-away records are never matched by an upsert or a unique value.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any, Iterable

from django.db import transaction
from django.db.models import ExpressionWrapper, TextField
from django.db.models.fields.json import KeyTextTransform

from sandbox.clock import Actor, acting_as, crm_now, current_actor
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
MAX_BATCH_WITH_HISTORY = 50  # a batch read with propertiesWithHistory takes at most 50 inputs
HISTORY_KEPT = 20  # values kept per property (HubSpot keeps a bounded history too)
# The sandbox app's ID: the sourceId of its writes, the appId of its webhooks.
APP_ID = "2026001"
BULK_MAX = 50_000  # records one bulk-create control call may make


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
    modified = iso(record.updated_at)
    return {**record.properties, "createdate": iso(record.created_at), "hs_object_id": str(record.pk),
            **{name: modified for name in record.MODIFIED_PROPERTIES}}


def record_json(record: SandboxRecord, *, wanted: list[str] | None = None,
                with_history: list[str] | None = None) -> dict[str, Any]:
    """A record as HubSpot's SimplePublicObject(WithAssociations). With `wanted`, only those
    properties (null when unset) and the computed ones; without, every property that has a
    value. `with_history` adds propertiesWithHistory for those properties, newest first."""
    values = record_values(record)
    if wanted is not None:
        values = {name: values.get(name) for name in (*wanted, *record.DEFAULT_PROPERTIES)}
    body = {"id": str(record.pk), "properties": values, "createdAt": iso(record.created_at),
            "updatedAt": iso(record.updated_at), "archived": record.archived}
    if record.archived and record.archived_at:
        body["archivedAt"] = iso(record.archived_at)
    if with_history:
        body["propertiesWithHistory"] = {name: record.history.get(name, []) for name in with_history}
    return body


def requested_properties(names: Iterable[str] | None, definitions: dict[str, PropertyDef]) -> list[str] | None:
    """The known names among those asked for (HubSpot ignores unknown ones); None: all set."""
    if not names:
        return None
    return [name for name in dict.fromkeys(names) if name in definitions]


# --- reads ------------------------------------------------------------------------------------

def _scope(kind: ObjectType, archived: bool | None):
    """Live records (archived False), archived ones (True) or any (None). Merged-away records
    are neither live nor archived: only their survivor answers for them."""
    if archived is None:
        return kind.model.objects.all()
    return kind.model.objects.filter(archived=archived, merged_into__isnull=True)


def record_find(kind: ObjectType, *, key: str, id_property: str = "hs_object_id",
                archived: bool | None = False) -> SandboxRecord | None:
    records = _scope(kind, archived)
    if id_property == "hs_object_id":
        # 18 digits always fit a BigAutoField; anything longer cannot be an ID.
        if not (key.isdecimal() and len(key) <= 18):
            return None
        return _survivor(kind, int(key)) if archived is False else records.filter(pk=int(key)).first()
    if id_property == "email" and kind.name == "contacts":
        return records.filter(email=key.strip().lower()).first()
    # A plain text comparison (not a JSON one) on the same expression as the *_ext_id indexes.
    key_value = ExpressionWrapper(KeyTextTransform(id_property, "properties"), output_field=TextField())
    return records.annotate(key_value=key_value).filter(key_value=key).first()


def _survivor(kind: ObjectType, pk: int) -> SandboxRecord | None:
    """The live record with this ID, or the one it was merged into (through several merges)."""
    record = kind.model.objects.filter(pk=pk).first()
    for _ in range(20):  # a chain of merges, never a loop; bounded all the same
        if record is None or record.merged_into is None:
            break
        record = kind.model.objects.filter(pk=record.merged_into).first()
    return record if record is not None and record.live else None


def record_get(kind: ObjectType, *, key: str, id_property: str | None, properties: list[str],
               archived: bool, history: list[str] | None = None) -> dict[str, Any]:
    definitions = property_definitions(kind)
    id_property = unique_property(kind, id_property or "hs_object_id", definitions).name
    record = record_find(kind, key=key, id_property=id_property, archived=archived)
    if record is None:
        raise not_found("resource not found")
    return record_json(record, wanted=requested_properties(properties, definitions),
                       with_history=requested_properties(history, definitions))


def records_page(kind: ObjectType, *, limit: int, after: int, properties: list[str],
                 archived: bool, history: list[str] | None = None) -> tuple[list[dict], str | None]:
    """One page in ID order; the cursor is the last ID returned, when more remain."""
    definitions = property_definitions(kind)
    wanted, with_history = requested_properties(properties, definitions), requested_properties(history, definitions)
    rows = list(_scope(kind, archived).filter(pk__gt=after).order_by("pk")[: limit + 1])
    next_after = str(rows[limit - 1].pk) if len(rows) > limit else None
    return [record_json(row, wanted=wanted, with_history=with_history) for row in rows[:limit]], next_after


def records_batch_read(kind: ObjectType, *, inputs: Any, id_property: str | None, properties: Any,
                       archived: bool, history: Any = None) -> BatchOutcome:
    """Each asked record once; an ID merged away answers with its survivor (under the
    survivor's ID), as HubSpot does."""
    started = crm_now(crm=CRM)
    _check_batch(inputs)
    for names in (properties, history or []):
        if not isinstance(names, list) or not all(isinstance(p, str) for p in names):
            raise validation_error("Invalid input JSON: properties and propertiesWithHistory must be lists of "
                                   "property names.")
    if history and len(inputs) > MAX_BATCH_WITH_HISTORY:
        raise validation_error(f"Batch input size {len(inputs)} exceeds the maximum of {MAX_BATCH_WITH_HISTORY} "
                               "inputs when propertiesWithHistory is requested.")
    definitions = property_definitions(kind)
    id_property = unique_property(kind, id_property or "hs_object_id", definitions).name
    wanted, with_history = requested_properties(properties, definitions), requested_properties(history, definitions)
    found: dict[int, dict[str, Any]] = {}
    missing = []
    for key in dict.fromkeys(_read_key(raw) for raw in inputs):  # each record once, as HubSpot does
        record = record_find(kind, key=key, id_property=id_property, archived=archived)
        if record is None:
            missing.append(key)
        else:
            found.setdefault(record.pk, record_json(record, wanted=wanted, with_history=with_history))
    return BatchOutcome(list(found.values()), [_not_found_in_batch(kind, missing)] if missing else [], started)


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
    started = crm_now(crm=CRM)
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
    started = crm_now(crm=CRM)
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
    started = crm_now(crm=CRM)
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
    # Live records only: an upsert keyed on an archived contact's value creates a new contact.
    record = record_find(kind, key=item.key, id_property=item.id_property)
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
        owner = record_find(kind, key=value, id_property=name)
        if owner is not None and (record is None or owner.pk != record.pk):
            return Clash(kind, name, value, owner.pk)
    return None


def _save(record: SandboxRecord, values: dict[str, str], *, now: datetime | None = None,
          actor: Actor | None = None, commit: bool = True) -> SandboxRecord:
    """Apply the values, stamp the CRM's time and note each changed property's history."""
    now = now or crm_now(crm=CRM)
    history_note(record, values, now=now, actor=actor or current_actor())
    merged = {**record.properties, **values}
    record.properties = {name: value for name, value in merged.items() if value != ""}  # "" clears, as in HubSpot
    record.derive()
    record.updated_at = now
    if record.pk is None:
        record.created_at = record.updated_at
    if commit:
        record.save()
    return record


def history_source(actor: Actor) -> dict[str, str]:
    """HubSpot's change source: a person in the CRM's UI, or this sandbox's app."""
    if actor.is_person:
        return {"sourceType": "CRM_UI", "sourceId": actor.person}
    return {"sourceType": "INTEGRATION", "sourceId": APP_ID}


def history_note(record: SandboxRecord, values: dict[str, str], *, now: datetime, actor: Actor) -> None:
    """A history entry, newest first, for each property whose value the write changes."""
    source = history_source(actor)
    history = dict(record.history)
    for name, value in values.items():
        if record.properties.get(name, "") == value:
            continue
        entry = {"value": value, "timestamp": iso(now), **source}
        history[name] = [entry, *history.get(name, [])][:HISTORY_KEPT]
    record.history = history


def record_person_edit(kind: ObjectType, *, record: SandboxRecord, properties: Any, person: str) -> SandboxRecord:
    """What a person saving the record in the CRM's UI does (the sandbox admin): the given values
    replace the stored ones (a property left out is cleared), recorded as that person's change."""
    if not isinstance(properties, dict):
        raise validation_error("The properties must be a JSON object of property names to values.")
    cleared = {name: "" for name in record.properties if name not in properties and name not in SYSTEM_PROPERTIES}
    changes = {**cleared, **{name: value for name, value in properties.items() if name not in SYSTEM_PROPERTIES}}
    with acting_as(Actor(person=person)):
        return record_update(kind, key=str(record.pk), id_property=None, properties=changes)


# --- archive, merge, bulk ---------------------------------------------------------------------

def record_archive(kind: ObjectType, *, key: str) -> SandboxRecord | None:
    """DELETE .../{id}: archive the live record (HubSpot answers 204 whether or not it existed).
    Its unique values are freed: a later upsert keyed on them creates a new record."""
    with transaction.atomic():
        _serialize_writes()
        record = record_find(kind, key=key)
        if record is None:
            return None
        record.archived, record.archived_at = True, crm_now(crm=CRM)
        record.derive()
        record.save()
    return record


def records_merge(kind: ObjectType, *, body: dict[str, Any]) -> tuple[SandboxRecord, int]:
    """POST .../merge {"primaryObjectId", "objectIdToMerge"}: the primary survives with its own
    values, takes the merged record's values for properties it lacks (unique ones apart), and
    lists every ID merged into it in hs_merged_object_ids. Returns the survivor and the merged ID."""
    primary_key, merged_key = (str(body.get(name) or "") for name in ("primaryObjectId", "objectIdToMerge"))
    if not primary_key or not merged_key:
        raise validation_error("Invalid input JSON: primaryObjectId and objectIdToMerge are required.")
    definitions = property_definitions(kind)
    with transaction.atomic():
        _serialize_writes()
        primary, merged = record_find(kind, key=primary_key), record_find(kind, key=merged_key)
        if primary is None or merged is None:
            raise not_found(f"{kind.singular.capitalize()} {primary_key if primary is None else merged_key} was not found.")
        if primary.pk == merged.pk:
            raise validation_error(f"Cannot merge {kind.singular} {primary.pk} with itself.")
        fill = {name: value for name, value in merged.properties.items()
                if name in definitions and not identifies(kind, definitions[name])
                and name != "hs_merged_object_ids" and not primary.properties.get(name)}
        ids = [*_merged_ids(primary), str(merged.pk), *_merged_ids(merged)]
        merged.merged_into = primary.pk
        merged.derive()  # frees its email before the survivor is saved
        merged.save()
        kind.model.objects.filter(merged_into=merged.pk).update(merged_into=primary.pk)
        _save(primary, {**fill, "hs_merged_object_ids": ";".join(dict.fromkeys(ids))})
    return primary, merged.pk


def _merged_ids(record: SandboxRecord) -> list[str]:
    return [i for i in record.properties.get("hs_merged_object_ids", "").split(";") if i]


def records_bulk_create(kind: ObjectType, *, records: list[Any], actor: Actor) -> list[SandboxRecord]:
    """The sandbox's shortcut for tests and benchmarks: create many records in a few queries.
    Values are checked as on any create; their modification times are one millisecond apart,
    ending now, so a poll sorting on them sees a strict order."""
    if not isinstance(records, list) or not 0 < len(records) <= BULK_MAX:
        raise validation_error(f"records must be a list of 1 to {BULK_MAX} property objects.")
    definitions = property_definitions(kind)
    values = _batch_values_unbounded(records, definitions)
    end = crm_now(crm=CRM)
    rows = [_save(kind.model(), item, now=end - timedelta(milliseconds=len(values) - 1 - index), actor=actor,
                  commit=False) for index, item in enumerate(values)]
    with transaction.atomic():
        _serialize_writes()
        _bulk_clashes(kind, rows, definitions)
        return kind.model.objects.bulk_create(rows, batch_size=500)


def _batch_values_unbounded(records: list[Any], definitions: dict[str, PropertyDef]) -> list[dict[str, str]]:
    cleaned, problems = [], []
    for raw in records:
        values, found = properties_clean(raw, definitions)
        cleaned.append(values)
        problems += found
    if problems:
        raise property_errors(problems[:20])
    return cleaned


def _bulk_clashes(kind: ObjectType, rows: list[SandboxRecord], definitions: dict[str, PropertyDef]) -> None:
    """Refuse the whole bulk when a unique value repeats or is already taken, in a few queries."""
    for name in (n for n, d in definitions.items() if identifies(kind, d) and n != "hs_object_id"):
        given = [row.properties[name] for row in rows if row.properties.get(name)]
        repeated = sorted(v for v, n in Counter(given).items() if n > 1)[:5]
        if repeated:
            raise validation_error(f"{name} repeats within the records: {', '.join(repeated)}")
        for start in range(0, len(given), 500):
            taken = _taken(kind, name, given[start:start + 500])
            if taken is not None:
                raise HubSpotError(409, "CONFLICT", f"A {kind.singular} with that {name} already exists. "
                                                    f"Existing ID: {taken.pk}")


def _taken(kind: ObjectType, name: str, values: list[str]) -> SandboxRecord | None:
    live = _scope(kind, False)
    if name == "email" and kind.name == "contacts":
        return live.filter(email__in=values).first()
    key_value = ExpressionWrapper(KeyTextTransform(name, "properties"), output_field=TextField())
    return live.annotate(key_value=key_value).filter(key_value__in=values).first()


def _serialize_writes() -> None:
    """Run concurrent writes one at a time, so two writes of a new unique value (a batch upsert
    keyed on it, or two creates) cannot both create a record. Every write of contacts and
    companies takes this lock before it looks for clashes, which makes the check race-free.

    On PostgreSQL this row lock does it (there is no row to lock for a key not yet written).
    SQLite ignores select_for_update, but its IMMEDIATE transactions already serialize writers.
    """
    settings_get(crm=CRM)
    SandboxSettings.objects.select_for_update().get(crm=CRM)
