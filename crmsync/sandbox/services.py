"""Contacts of the sandbox HubSpot: what the contacts endpoints read and write.

Writes follow HubSpot's documented behaviour (CRM_CONTRACTS.md): values stored as strings, email
trimmed and lower-cased, one contact per email and per value of a unique property, a refused
property value refusing the whole request, a conflicting batch input failing alone.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone as dt_timezone
from typing import Any, Iterable

from django.db import transaction
from django.db.models import ExpressionWrapper, TextField
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from crmsync.sandbox.errors import HubSpotError, not_found, record_error, validation_error
from crmsync.sandbox.limits import settings_get
from crmsync.sandbox.models import SandboxContact, SandboxSettings
from crmsync.sandbox.properties import (
    SYSTEM_PROPERTIES, PropertyDef, Problem, identifies, properties_clean, property_definitions, property_errors,
    unique_property,
)

CRM = "hubspot"
MAX_BATCH = 100  # HubSpot's limit for every batch endpoint
NOT_FOUND_IN_BATCH = "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid."


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
    """A unique value the write would take from another contact."""

    name: str
    value: str
    owner_id: int

    def message(self) -> str:
        if self.name == "email":
            return f"Contact already exists. Existing ID: {self.owner_id}"
        return f'A contact with {self.name} "{self.value}" already exists. Existing ID: {self.owner_id}'


def iso(moment: datetime) -> str:
    """HubSpot's timestamp format: UTC, milliseconds, trailing Z."""
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- answers ----------------------------------------------------------------------------------

def contact_values(contact: SandboxContact) -> dict[str, str]:
    """Stored values plus the ones HubSpot computes for every contact."""
    return {**contact.properties, "createdate": iso(contact.created_at), "lastmodifieddate": iso(contact.updated_at),
            "hs_object_id": str(contact.pk)}


def contact_json(contact: SandboxContact, *, wanted: list[str] | None = None) -> dict[str, Any]:
    """A contact as HubSpot's SimplePublicObject. With `wanted`, only those properties (null when
    unset) and the computed ones; without, every property that has a value."""
    values = contact_values(contact)
    if wanted is not None:
        values = {name: values.get(name) for name in (*wanted, *SYSTEM_PROPERTIES)}
    return {"id": str(contact.pk), "properties": values, "createdAt": iso(contact.created_at),
            "updatedAt": iso(contact.updated_at), "archived": contact.archived}


def requested_properties(names: Iterable[str] | None, definitions: dict[str, PropertyDef]) -> list[str] | None:
    """The known names among those asked for (HubSpot ignores unknown ones); None: all set."""
    if not names:
        return None
    return [name for name in dict.fromkeys(names) if name in definitions]


# --- reads ------------------------------------------------------------------------------------

def contact_find(*, key: str, id_property: str = "hs_object_id", archived: bool | None = False) -> SandboxContact | None:
    contacts = SandboxContact.objects.all() if archived is None else SandboxContact.objects.filter(archived=archived)
    if id_property == "hs_object_id":
        # 18 digits always fit a BigAutoField; anything longer cannot be an ID.
        return contacts.filter(pk=int(key)).first() if key.isdecimal() and len(key) <= 18 else None
    if id_property == "email":
        return contacts.filter(email=key.strip().lower()).first()
    # A plain text comparison (not a JSON one) on the same expression as the sandbox_contact_ext_id index.
    key_value = ExpressionWrapper(KeyTextTransform(id_property, "properties"), output_field=TextField())
    return contacts.annotate(key_value=key_value).filter(key_value=key).first()


def contact_get(*, key: str, id_property: str | None, properties: list[str], archived: bool) -> dict[str, Any]:
    definitions = property_definitions()
    id_property = unique_property(id_property or "hs_object_id", definitions).name
    contact = contact_find(key=key, id_property=id_property, archived=archived)
    if contact is None:
        raise not_found("resource not found")
    return contact_json(contact, wanted=requested_properties(properties, definitions))


def contacts_page(*, limit: int, after: int, properties: list[str], archived: bool) -> tuple[list[dict], str | None]:
    """One page in ID order; the cursor is the last ID returned, when more remain."""
    wanted = requested_properties(properties, property_definitions())
    rows = list(SandboxContact.objects.filter(archived=archived, pk__gt=after).order_by("pk")[: limit + 1])
    next_after = str(rows[limit - 1].pk) if len(rows) > limit else None
    return [contact_json(row, wanted=wanted) for row in rows[:limit]], next_after


def contacts_batch_read(*, inputs: Any, id_property: str | None, properties: Any, archived: bool) -> BatchOutcome:
    started = timezone.now()
    _check_batch(inputs)
    if not isinstance(properties, list) or not all(isinstance(p, str) for p in properties):
        raise validation_error("Invalid input JSON: properties must be a list of property names.")
    definitions = property_definitions()
    id_property = unique_property(id_property or "hs_object_id", definitions).name
    wanted = requested_properties(properties, definitions)
    found, missing = [], []
    for key in dict.fromkeys(_read_key(raw) for raw in inputs):  # each record once, as HubSpot does
        contact = contact_find(key=key, id_property=id_property, archived=archived)
        if contact is None:
            missing.append(key)
        else:
            found.append(contact_json(contact, wanted=wanted))
    errors = [record_error("OBJECT_NOT_FOUND", NOT_FOUND_IN_BATCH, {"ids": missing})] if missing else []
    return BatchOutcome(found, errors, started)


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

def contact_create(*, properties: Any) -> SandboxContact:
    definitions = property_definitions()
    values, problems = properties_clean(properties, definitions)
    if problems:
        raise property_errors(problems)
    with transaction.atomic():
        _serialize_writes()
        clash = _clash(values, definitions, contact=None)
        if clash:
            raise HubSpotError(409, "CONFLICT", clash.message())
        return _save(SandboxContact(), values)


def contacts_upsert(*, inputs: Any) -> BatchOutcome:
    """Create or update each input's contact, found by its idProperty. All inputs are checked
    before anything is written; the batch is one transaction."""
    started = timezone.now()
    definitions = property_definitions()
    items = _upsert_inputs(inputs, definitions)
    results, errors = [], []
    with transaction.atomic():
        _serialize_writes()
        for item in items:
            result, error = _upsert_one(item, definitions)
            results += [result] if result else []
            errors += [error] if error else []
    return BatchOutcome(results, errors, started)


def _upsert_inputs(inputs: Any, definitions: dict[str, PropertyDef]) -> list[UpsertInput]:
    _check_batch(inputs)
    items, problems = [], []
    for raw in inputs:
        item, found = _upsert_input(raw, definitions)
        items.append(item)
        problems += found
    if problems:
        raise property_errors(problems)
    counts = Counter((item.id_property, item.key) for item in items)
    duplicates = sorted(key for (_, key), seen in counts.items() if seen > 1)
    if duplicates:
        raise validation_error(f"Duplicate IDs found in batch input: {duplicates}. IDs must be unique")
    return items


def _upsert_input(raw: Any, definitions: dict[str, PropertyDef]) -> tuple[UpsertInput, list[Problem]]:
    if not isinstance(raw, dict) or raw.get("id") in (None, "") or not isinstance(raw.get("idProperty"), str):
        raise validation_error("Invalid input JSON: every upsert input needs id, idProperty and properties.")
    prop = unique_property(raw["idProperty"], definitions)
    if prop.name == "hs_object_id":
        raise validation_error("hs_object_id cannot be set, so it cannot key an upsert; use a unique property.")
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        raise validation_error("Invalid input JSON: properties must be an object of property names to values.")
    # The key is written too, so a created contact can be found by it next time.
    values, problems = properties_clean({**properties, prop.name: raw["id"]}, definitions)
    return UpsertInput(values.get(prop.name, str(raw["id"])), prop.name, values), problems


def _upsert_one(item: UpsertInput, definitions: dict[str, PropertyDef]) -> tuple[dict | None, dict | None]:
    contact = contact_find(key=item.key, id_property=item.id_property, archived=None)
    clash = _clash(item.values, definitions, contact)
    if clash:
        context = {"id": [item.key], "idProperty": [item.id_property], clash.name: [clash.value]}
        return None, record_error("CONFLICT", clash.message(), context)
    saved = _save(contact or SandboxContact(), item.values)
    return {**contact_json(saved), "new": contact is None}, None


def _clash(values: dict[str, str], definitions: dict[str, PropertyDef], contact: SandboxContact | None) -> Clash | None:
    for name, value in values.items():
        if not value or not identifies(definitions[name]):
            continue
        owner = contact_find(key=value, id_property=name, archived=None)
        if owner is not None and (contact is None or owner.pk != contact.pk):
            return Clash(name, value, owner.pk)
    return None


def _save(contact: SandboxContact, values: dict[str, str]) -> SandboxContact:
    merged = {**contact.properties, **values}
    contact.properties = {name: value for name, value in merged.items() if value != ""}  # "" clears, as in HubSpot
    contact.email = contact.properties.get("email", "")
    contact.updated_at = timezone.now()
    if contact.pk is None:
        contact.created_at = contact.updated_at
    contact.save()
    return contact


def _serialize_writes() -> None:
    """Run concurrent writes one at a time, so two upserts of a new key cannot both create it.

    On PostgreSQL this row lock does it (there is no row to lock for a key not yet written).
    SQLite ignores select_for_update, but its IMMEDIATE transactions already serialize writers.
    """
    settings_get(crm=CRM)
    SandboxSettings.objects.select_for_update().get(crm=CRM)
