"""HubSpot's v4 associations between the sandbox's contacts and companies.

HubSpot shows an association from both sides, each with its own type ID (contact to company
279, company to contact 280; the primary company 1 and 2), so a write stores both directions.
Rows are unique per pair and type: creating an association again changes nothing, as in HubSpot.
"""

from typing import Any

from django.utils import timezone

from sandbox.hubspot.errors import not_found, record_error, validation_error
from sandbox.hubspot.properties import COMPANIES, CONTACTS, ObjectType
from sandbox.hubspot.records import MAX_BATCH, BatchOutcome, record_find
from sandbox.models import SandboxAssociation

HUBSPOT_DEFINED = "HUBSPOT_DEFINED"
PAGE_MAX = 500
# (from, to) -> {type ID: label}; labels as HubSpot lists them (None for the unlabeled type).
TYPES: dict[tuple[str, str], dict[int, str | None]] = {
    (CONTACTS.name, COMPANIES.name): {279: None, 1: "Primary"},
    (COMPANIES.name, CONTACTS.name): {280: None, 2: "Primary"},
}
INVERSE = {279: 280, 280: 279, 1: 2, 2: 1}
DEFAULT_TYPE = {(CONTACTS.name, COMPANIES.name): 279, (COMPANIES.name, CONTACTS.name): 280}


def association_default_create(*, from_kind: ObjectType, from_id: str, to_kind: ObjectType,
                               to_id: str) -> list[dict[str, Any]]:
    """PUT .../associations/default/...: the unlabeled association, both directions."""
    _types(from_kind, to_kind)
    pair = _pair(from_kind, from_id, to_kind, to_id)
    if pair is None:
        raise not_found(f"No {from_kind.singular} {from_id} or no {to_kind.singular} {to_id}.")
    type_id = DEFAULT_TYPE[(from_kind.name, to_kind.name)]
    _store(from_kind, pair[0], to_kind, pair[1], type_id)
    return [_default_json(pair[0], pair[1], type_id), _default_json(pair[1], pair[0], INVERSE[type_id])]


def associations_batch_create(*, from_kind: ObjectType, to_kind: ObjectType, inputs: Any) -> BatchOutcome:
    """POST .../batch/create: each input's types between its pair; a missing record fails alone."""
    started = timezone.now()
    allowed = _types(from_kind, to_kind)
    results, errors = [], []
    for raw in _inputs(inputs):
        type_ids = _type_ids(raw.get("types"), allowed)
        from_id, to_id = _object_id(raw.get("from")), _object_id(raw.get("to"))
        pair = _pair(from_kind, from_id, to_kind, to_id)
        if pair is None:
            errors.append(record_error("OBJECT_NOT_FOUND", f"No {from_kind.singular} {from_id} or no "
                                       f"{to_kind.singular} {to_id}.", {"fromObjectId": [from_id], "toObjectId": [to_id]}))
            continue
        for type_id in type_ids:
            _store(from_kind, pair[0], to_kind, pair[1], type_id)
        results.append({"fromObjectTypeId": from_kind.type_id, "fromObjectId": pair[0], "toObjectTypeId": to_kind.type_id,
                        "toObjectId": pair[1], "labels": [allowed[t] for t in type_ids if allowed[t]]})
    return BatchOutcome(results, errors, started)


def associations_list(*, from_kind: ObjectType, from_id: str, to_kind: ObjectType, limit: int,
                      after: int) -> tuple[list[dict[str, Any]], str | None]:
    """The records of `to_kind` associated with one record, in ID order, with their types."""
    allowed = _types(from_kind, to_kind)
    if not from_id.isdecimal() or len(from_id) > 18:
        raise not_found(f"No {from_kind.singular} {from_id}.")
    rows = (SandboxAssociation.objects.filter(from_type=from_kind.name, from_id=int(from_id), to_type=to_kind.name,
                                              to_id__gt=after).order_by("to_id", "type_id"))
    by_target: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if len(by_target) == limit and row.to_id not in by_target:
            return _listed(by_target), str(max(by_target))
        by_target.setdefault(row.to_id, []).append(
            {"category": row.category, "typeId": row.type_id, "label": allowed.get(row.type_id)})
    return _listed(by_target), None


def _listed(by_target: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [{"toObjectId": to_id, "associationTypes": types} for to_id, types in by_target.items()]


def _types(from_kind: ObjectType, to_kind: ObjectType) -> dict[int, str | None]:
    allowed = TYPES.get((from_kind.name, to_kind.name))
    if allowed is None:
        raise validation_error(f"The sandbox has no association types from {from_kind.name} to {to_kind.name}.")
    return allowed


def _inputs(inputs: Any) -> list[dict[str, Any]]:
    if not isinstance(inputs, list) or not all(isinstance(raw, dict) for raw in inputs):
        raise validation_error('Invalid input JSON: "inputs" must be a list of objects.')
    if len(inputs) > MAX_BATCH:
        raise validation_error(f"Batch input size {len(inputs)} exceeds the maximum of {MAX_BATCH} inputs.")
    return inputs


def _type_ids(raw: Any, allowed: dict[int, str | None]) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise validation_error("Invalid input JSON: every input needs a list of types.")
    type_ids = []
    for spec in raw:
        if not isinstance(spec, dict) or spec.get("associationCategory") != HUBSPOT_DEFINED \
                or spec.get("associationTypeId") not in allowed:
            raise validation_error(f"Invalid association type {spec!r}; HUBSPOT_DEFINED types here: "
                                   f"{', '.join(map(str, allowed))}.")
        type_ids.append(spec["associationTypeId"])
    return type_ids


def _object_id(raw: Any) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), (str, int)) or isinstance(raw.get("id"), bool):
        raise validation_error('Invalid input JSON: "from" and "to" need an "id".')
    return str(raw["id"])


def _pair(from_kind: ObjectType, from_id: str, to_kind: ObjectType, to_id: str) -> tuple[int, int] | None:
    source, target = record_find(from_kind, key=from_id), record_find(to_kind, key=to_id)
    return (source.pk, target.pk) if source and target else None


def _store(from_kind: ObjectType, from_id: int, to_kind: ObjectType, to_id: int, type_id: int) -> None:
    # ignore_conflicts: an association created before (or concurrently) is simply kept.
    SandboxAssociation.objects.bulk_create([
        SandboxAssociation(from_type=from_kind.name, from_id=from_id, to_type=to_kind.name, to_id=to_id,
                           category=HUBSPOT_DEFINED, type_id=type_id),
        SandboxAssociation(from_type=to_kind.name, from_id=to_id, to_type=from_kind.name, to_id=from_id,
                           category=HUBSPOT_DEFINED, type_id=INVERSE[type_id]),
    ], ignore_conflicts=True)


def _default_json(from_id: int, to_id: int, type_id: int) -> dict[str, Any]:
    return {"from": {"id": str(from_id)}, "to": {"id": str(to_id)},
            "associationSpec": {"associationCategory": HUBSPOT_DEFINED, "associationTypeId": type_id}}
