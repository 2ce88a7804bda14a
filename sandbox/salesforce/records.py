"""Records of the sandbox Salesforce org: creates (as a person in the UI would make them), upserts
by external ID (one record, or an sObject Collection of up to 200), Collection updates by record
ID, SOQL queries and the API usage limit.

Per-record errors carry Salesforce's codes (docs/wire-contracts.md). A record's external-ID and unique
values are also rows of SandboxSalesforceKey, whose unique constraint decides a race between two
upserts of one new value: the loser's INSERT fails, and it retries the record as an update.

For two-way sync: every write stamps the org's clock (sandbox/clock.py) into LastModifiedDate and
SystemModstamp and records LastModifiedById: the integration user's ID for API writes, a stable
fake user ID per person for `X-Sandbox-Actor: person:<name>` writes. DELETE is a soft delete
(IsDeleted, the recycle bin): `query` skips such rows, `queryAll` returns them; a merge deletes
the losers with MasterRecordId set. Queries filter and sort on those columns in SQL, and a
query's later batches read the IDs its first batch found (a snapshot, as Salesforce's locators).
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
import hashlib
import operator
import secrets
import string
from typing import Any, Callable

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from sandbox.clock import Actor, acting_as, crm_now, current_actor
from sandbox.models import SandboxSalesforceKey, SandboxSalesforceRecord
from sandbox.salesforce.schema import CRM, SANDBOX_USER_ID, SOBJECTS, FieldDef, SObject, field_definitions, org_settings
from sandbox.salesforce.soql import Condition, Query, SoqlError, soql_datetime, soql_parse
from sandbox.validators import is_email

MAX_COLLECTION = 200  # sObject Collections take at most 200 records
MIN_VERSION = 46.0  # upsert answers `created` from 46.0 on (docs/wire-contracts.md)
TEXT_TYPES = frozenset({"string", "email", "phone", "url", "textarea", "picklist", "reference", "id"})
ID_CHARS = string.ascii_letters + string.digits
CHECKSUM_CHARS = string.ascii_uppercase + "012345"
ROLLED_BACK = ("ALL_OR_NONE_OPERATION_ROLLED_BACK",
               "Record rolled back because not all records were valid and the request was using AllOrNone header")
LOCKED = ("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record or 1 records")
# Rows per query answer; Salesforce's default batch size, which Sforce-Query-Options may lower to 200.
QUERY_BATCH = 2000
QUERY_BATCH_MIN = 200
QUERY_LOCATOR_SECONDS = 15 * 60  # Salesforce drops a query locator after 15 minutes unused
REPLICATION_DAYS = 30  # getUpdated/getDeleted look back at most this far
MERGE_MAX = 2  # Salesforce merges up to three records: the master and two more
# Fields kept in columns, not in `fields`: what queries filter and sort on in SQL.
COLUMNS = {"Id": "id", "CreatedDate": "created_at", "LastModifiedDate": "updated_at", "SystemModstamp": "system_modstamp",
           "IsDeleted": "is_deleted", "CreatedById": "created_by_id", "LastModifiedById": "last_modified_by_id"}
LOOKUPS = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}


class SalesforceError(Exception):
    """A request Salesforce refuses as a whole: `[{"message", "errorCode", "fields"?}]`."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: list[Any] = [{"message": message, "errorCode": code, **({"fields": fields} if fields is not None else {})}]


class MultipleMatches(SalesforceError):
    """300: an upsert key matching several records; the body lists their URLs."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(300, "MULTIPLE_CHOICES", "More than one record found for the external ID.")
        self.body = urls


@dataclass(frozen=True)
class RecordError:
    code: str
    message: str
    fields: tuple[str, ...] = ()

    def json(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


@dataclass
class Outcome:
    """One record's result: saved (id, created) or refused (errors), or ambiguous (matches)."""

    id: str | None = None
    created: bool | None = False  # None: an update, whose SaveResult has no `created`
    errors: list[RecordError] = field(default_factory=list)
    matches: list[str] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        if self.errors:
            return {"success": False, "errors": [e.json() for e in self.errors]}
        saved = {"id": self.id, "success": True, "errors": []}
        return saved if self.created is None else {**saved, "created": self.created}


@dataclass(frozen=True)
class WriteOptions:
    allow_duplicates: bool = False  # Sforce-Duplicate-Rule-Header: allowSave=true
    locked: Callable[[int], bool] = lambda index: False  # injected UNABLE_TO_LOCK_ROW, by record index


# --- objects and versions ---------------------------------------------------------------------

def version_check(version: str) -> None:
    if float(version) < MIN_VERSION:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def sobject_get(name: str) -> SObject:
    found = SOBJECTS.get(name) or next((o for o in SOBJECTS.values() if o.name.lower() == name.lower()), None)
    if found is None:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
    return found


def _key_field(sobject: SObject, name: str) -> FieldDef:
    found = field_definitions(sobject).get(name.lower())
    if found is None or not (found.external_id or found.name == "Id"):
        raise SalesforceError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {name}")
    return found


def record_url(version: str, record: SandboxSalesforceRecord) -> str:
    return f"/services/data/v{version}/sobjects/{record.sobject}/{record.id}"


# --- upserts ----------------------------------------------------------------------------------

def records_upsert(*, sobject_name: str, key_name: str, body: Any, options: WriteOptions) -> list[dict[str, Any]]:
    """PATCH composite/sobjects/{SObject}/{ExternalIdField}: one result per record, in order.
    With allOrNone, any failure rolls every record back."""
    sobject = sobject_get(sobject_name)
    key = _key_field(sobject, key_name)
    records, all_or_none = _collection(body)
    duplicates = _repeated_keys(records, key)
    outcomes = []
    with transaction.atomic():
        for index, raw in enumerate(records):
            if options.locked(index):
                outcomes.append(Outcome(errors=[RecordError(*LOCKED)]))
                continue
            value = _value_of(raw, key)
            if value is not None and str(value).lower() in duplicates:
                outcomes.append(Outcome(errors=[RecordError("DUPLICATE_VALUE", f"Duplicate external id specified: {value}",
                                                            (key.name,))]))
                continue
            outcomes.append(_upsert_saved(sobject, key, value, raw, options))
        if all_or_none and any(o.errors or o.matches for o in outcomes):
            transaction.set_rollback(True)
            return [_rolled_back(o) for o in outcomes]
    return [o.json() if not o.matches else _ambiguous(key, o).json() for o in outcomes]


def record_upsert(*, sobject_name: str, key_name: str, key_value: str, body: Any, options: WriteOptions,
                  version: str) -> Outcome:
    """PATCH sobjects/{SObject}/{ExternalIdField}/{value}: raises SalesforceError for a refused
    record, MultipleMatches when the key matches several."""
    sobject = sobject_get(sobject_name)
    key = _key_field(sobject, key_name)
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The body must be a JSON object of field values.")
    if options.locked(0):
        raise SalesforceError(400, *LOCKED)
    with transaction.atomic():
        outcome = _upsert_saved(sobject, key, key_value, body, options)
    if outcome.matches:
        raise MultipleMatches([f"/services/data/v{version}/sobjects/{sobject.name}/{m}" for m in outcome.matches])
    if outcome.errors:
        raise _refusal(outcome.errors)
    return outcome


def _refusal(errors: list[RecordError]) -> SalesforceError:
    """A refused single-record write: 400 with every error of the record."""
    error = SalesforceError(400, errors[0].code, errors[0].message, list(errors[0].fields))
    error.body = [{"message": e.message, "errorCode": e.code, "fields": list(e.fields)} for e in errors]
    return error


def record_create(*, sobject_name: str, body: Any, options: WriteOptions) -> Outcome:
    """POST sobjects/{SObject}: a new record without any key. Raises SalesforceError when refused."""
    sobject = sobject_get(sobject_name)
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The body must be a JSON object of field values.")
    if any(name.lower() == "id" for name in body):
        raise SalesforceError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", "Unable to create/update fields: Id. "
                                                                       "Please check the security settings of this field.")
    with transaction.atomic():
        outcome = _write(sobject, None, {k: v for k, v in body.items() if k != "attributes"}, options)
    if outcome.errors:
        raise _refusal(outcome.errors)
    return outcome


def records_update(*, body: Any, options: WriteOptions) -> list[dict[str, Any]]:
    """PATCH composite/sobjects: update each record found by its Id, of the type its attributes
    name; one SaveResult per record, in order. With allOrNone, any failure rolls every record back."""
    records, all_or_none = _collection(body)
    sobjects = [_typed(raw) for raw in records]
    outcomes = []
    with transaction.atomic():
        for index, (raw, sobject) in enumerate(zip(records, sobjects)):
            outcomes.append(Outcome(errors=[RecordError(*LOCKED)]) if options.locked(index)
                            else _update_saved(sobject, raw, options))
        if all_or_none and any(o.errors for o in outcomes):
            transaction.set_rollback(True)
            return [_rolled_back(o) for o in outcomes]
    return [o.json() for o in outcomes]


def _typed(raw: dict[str, Any]) -> SObject:
    """The record's sObject from its attributes: without one the request is malformed."""
    attributes = raw.get("attributes")
    name = attributes.get("type") if isinstance(attributes, dict) else None
    if not isinstance(name, str) or not name:
        raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    try:
        return sobject_get(name)
    except SalesforceError:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.") from None


def _update_saved(sobject: SObject, raw: dict[str, Any], options: WriteOptions) -> Outcome:
    try:
        with transaction.atomic():
            return _update_one(sobject, raw, options)
    except IntegrityError:  # a concurrent write took one of its unique values since we checked
        return Outcome(errors=[RecordError("DUPLICATE_VALUE", "duplicate value found")])


def _update_one(sobject: SObject, raw: dict[str, Any], options: WriteOptions) -> Outcome:
    record_id = next((value for name, value in raw.items() if name.lower() == "id"), None)
    if record_id in (None, ""):
        return Outcome(errors=[RecordError("MISSING_ARGUMENT", "Id not specified in an update call", ("Id",))])
    record = SandboxSalesforceRecord.objects.filter(sobject=sobject.name, pk=str(record_id)).first()
    if record is None:
        return Outcome(errors=[RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("Id",))])
    if record.is_deleted:
        return Outcome(errors=[RecordError("ENTITY_IS_DELETED", "entity is deleted")])
    fields = {name: v for name, v in raw.items() if name != "attributes" and name.lower() != "id"}
    outcome = _write(sobject, record, fields, options)
    return Outcome(id=outcome.id, created=None, errors=outcome.errors)


def _collection(body: Any) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SalesforceError(400, "JSON_PARSER_ERROR", 'The body must be {"allOrNone": ..., "records": [...]}.')
    records = body["records"]
    if len(records) > MAX_COLLECTION:
        raise SalesforceError(400, "EXCEEDED_ID_LIMIT", f"record limit reached. cannot submit more than "
                                                        f"{MAX_COLLECTION} records into this call")
    if not all(isinstance(raw, dict) for raw in records):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Every record must be a JSON object.")
    return records, body.get("allOrNone") is True


def _repeated_keys(records: list[dict[str, Any]], key: FieldDef) -> set[str]:
    counts = Counter(str(v).lower() for v in (_value_of(raw, key) for raw in records) if v not in (None, ""))
    return {value for value, seen in counts.items() if seen > 1}


def _value_of(raw: dict[str, Any], field_def: FieldDef) -> Any:
    return next((value for name, value in raw.items() if name.lower() == field_def.name.lower()), None)


def _rolled_back(outcome: Outcome) -> dict[str, Any]:
    if outcome.errors:
        return outcome.json()
    return {"success": False, "errors": [RecordError(*ROLLED_BACK).json()]}


def _ambiguous(key: FieldDef, outcome: Outcome) -> Outcome:
    return Outcome(errors=[RecordError("DUPLICATE_EXTERNAL_ID", f"{key.name}: more than one record found for "
                                       f"external id field: {outcome.matches}", (key.name,))])


class _Raced(Exception):
    """Another request created a record with our new key since we looked for it."""


def _upsert_saved(sobject: SObject, key: FieldDef, value: Any, raw: dict[str, Any], options: WriteOptions) -> Outcome:
    """Upsert one record in a savepoint. A concurrent request that creates the same key first
    makes our INSERT fail (or shows up before it): the next try finds its record and updates it."""
    for attempt in (1, 2, 3):
        try:
            with transaction.atomic():
                return _upsert_one(sobject, key, value, raw, options)
        except (IntegrityError, _Raced):
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def _upsert_one(sobject: SObject, key: FieldDef, value: Any, raw: dict[str, Any], options: WriteOptions) -> Outcome:
    matches = _matches(sobject, key, value)
    if len(matches) > 1:
        return Outcome(matches=[m.id for m in matches])
    if not matches and key.name != "Id" and value in (None, ""):
        return Outcome(errors=[RecordError("MISSING_ARGUMENT", f"{key.name} not specified", (key.name,))])
    if not matches and key.name == "Id" and value not in (None, ""):
        return Outcome(errors=[RecordError("NOT_FOUND", f"Provided external ID field does not exist or is not "
                                           f"accessible: {value}", ("Id",))])
    record = matches[0] if matches else None
    fields = {name: v for name, v in raw.items() if name != "attributes" and name.lower() != "id"}
    if key.name != "Id":
        fields = {name: v for name, v in fields.items() if name.lower() != key.name.lower()} | {key.name: value}
    outcome = _write(sobject, record, fields, options)
    if record is None and any(e.code == "DUPLICATE_VALUE" and e.fields == (key.name,) for e in outcome.errors):
        raise _Raced()  # our key was free when we looked; a concurrent upsert has created it since
    return outcome


def _write(sobject: SObject, record: SandboxSalesforceRecord | None, fields: dict[str, Any],
           options: WriteOptions) -> Outcome:
    """Create (record None) or update the record with the fields, unless Salesforce would refuse them."""
    definitions = field_definitions(sobject)
    values, errors = _clean(sobject, fields, definitions, creating=record is None)
    merged = {**(record.fields if record else {}), **values}
    errors += _record_errors(sobject, definitions, merged, record, options)
    if errors:
        return Outcome(errors=errors)
    return Outcome(id=_save(sobject, definitions, record, merged).id, created=record is None)


def _matches(sobject: SObject, key: FieldDef, value: Any) -> list[SandboxSalesforceRecord]:
    if value in (None, ""):
        return []
    records = SandboxSalesforceRecord.objects.filter(sobject=sobject.name, is_deleted=False)
    if key.name == "Id":
        return list(records.filter(pk=str(value)))
    return list(records.filter(keys__field=key.name, keys__value=str(value).lower()).distinct().order_by("id")[:10])


# --- values -----------------------------------------------------------------------------------

def _clean(sobject: SObject, raw: dict[str, Any], definitions: dict[str, FieldDef], *,
           creating: bool) -> tuple[dict[str, Any], list[RecordError]]:
    """Values by canonical field name, and what Salesforce would refuse of them."""
    values, errors = {}, []
    for name, value in raw.items():
        field_def = definitions.get(name.lower())
        if field_def is None:
            errors.append(RecordError("INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject.name}",
                                      (name,)))
            continue
        if not (field_def.createable if creating else field_def.updateable):
            errors.append(RecordError("INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: "
                                      f"{field_def.name}. Please check the security settings of this field.", (field_def.name,)))
            continue
        cleaned, error = _clean_value(field_def, value)
        if error:
            errors.append(error)
        else:
            values[field_def.name] = cleaned
    return values, errors


def _clean_value(field_def: FieldDef, value: Any) -> tuple[Any, RecordError | None]:
    name = field_def.name
    if value is None or value == "":
        return None, None
    if isinstance(value, (dict, list)) or (field_def.type in TEXT_TYPES and isinstance(value, bool)):
        return None, RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field_def.label}: value not of required type: "
                                 f"{value}", (name,))
    if field_def.type == "boolean":
        if not isinstance(value, bool):
            return None, RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field_def.label}: value not of required "
                                     f"type: {value}", (name,))
        return value, None
    if field_def.type == "double":
        try:
            return float(value), None
        except (TypeError, ValueError):
            return None, RecordError("INVALID_TYPE_ON_FIELD_IN_RECORD", f"{field_def.label}: value not of "
                                     f"required type: {value}", (name,))
    text = str(value)
    return text, _text_problem(field_def, text)


def _text_problem(field_def: FieldDef, text: str) -> RecordError | None:
    name = field_def.name
    if field_def.length and len(text) > field_def.length:
        return RecordError("STRING_TOO_LONG", f"{field_def.label}: data value too large: {text[:80]} "
                           f"(max length={field_def.length})", (name,))
    if field_def.type == "email" and not is_email(text):
        return RecordError("INVALID_EMAIL_ADDRESS", f"{field_def.label}: invalid email address: {text}", (name,))
    if field_def.restricted and text not in field_def.picklist:
        return RecordError("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{field_def.label}: bad value for "
                           f"restricted picklist field: {text}", (name,))
    return None


def _record_errors(sobject: SObject, definitions: dict[str, FieldDef], merged: dict[str, Any],
                   record: SandboxSalesforceRecord | None, options: WriteOptions) -> list[RecordError]:
    """What the whole record would break: required fields, unique values, the duplicate rule."""
    if record is None:
        for field_def in definitions.values():
            if field_def.default is not None and merged.get(field_def.name) is None:
                merged[field_def.name] = field_def.default
    missing = [f.name for f in definitions.values()
               if not f.nillable and f.createable and merged.get(f.name) in (None, "")]
    if missing:
        return [RecordError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                            tuple(missing))]
    taken = _unique_clash(sobject, definitions, merged, record)
    if taken:
        return [taken]
    if record is None and not options.allow_duplicates and _duplicate_lead(sobject, merged):
        return [RecordError("DUPLICATES_DETECTED", "You're creating a duplicate record. We recommend you use an "
                                                   "existing record instead.")]
    return []


def _unique_clash(sobject: SObject, definitions: dict[str, FieldDef], merged: dict[str, Any],
                  record: SandboxSalesforceRecord | None) -> RecordError | None:
    for field_def in definitions.values():
        value = merged.get(field_def.name)
        if not field_def.unique or value in (None, ""):
            continue
        owner = _key_owner(sobject, field_def, value, record)
        if owner:
            return RecordError("DUPLICATE_VALUE", f"duplicate value found: {field_def.name} duplicates value on "
                                                  f"record with id: {owner}", (field_def.name,))
    return None


def _key_owner(sobject: SObject, field_def: FieldDef, value: Any, record: SandboxSalesforceRecord | None) -> str | None:
    """The other record holding this unique value, if any."""
    owners = SandboxSalesforceKey.objects.filter(sobject=sobject.name, field=field_def.name, value=str(value).lower(),
                                                 unique=True)
    if record is not None:
        owners = owners.exclude(record_id=record.id)
    return owners.values_list("record_id", flat=True).first()


def _duplicate_lead(sobject: SObject, merged: dict[str, Any]) -> bool:
    email = merged.get("Email")
    if sobject.name != "Lead" or not email or not org_settings().duplicate_rule_enabled:
        return False
    return SandboxSalesforceRecord.objects.filter(sobject="Lead", is_deleted=False, fields__Email__iexact=email).exists()


def _save(sobject: SObject, definitions: dict[str, FieldDef], record: SandboxSalesforceRecord | None,
          merged: dict[str, Any]) -> SandboxSalesforceRecord:
    now, user = crm_now(crm=CRM), user_id(current_actor())
    if record is None:
        record = SandboxSalesforceRecord(id=new_id(sobject.key_prefix), sobject=sobject.name, created_at=now,
                                         created_by_id=user)
    # System fields live in columns (IsDeleted's default included), never in `fields`.
    record.fields = {name: value for name, value in merged.items() if value is not None and name not in COLUMNS}
    record.updated_at = record.system_modstamp = now
    record.last_modified_by_id = user
    record.save()
    record.keys.all().delete()
    SandboxSalesforceKey.objects.bulk_create([
        SandboxSalesforceKey(record=record, sobject=sobject.name, field=f.name, value=str(record.fields[f.name]).lower(),
                             unique=f.unique)
        for f in definitions.values() if f.keyed and record.fields.get(f.name) not in (None, "")])
    return record


def user_id(actor: Actor) -> str:
    """Whose change: the integration user (the org's API user, whom userinfo names), or a stable
    fake user ID per person (005 prefix, derived from the name)."""
    if not actor.is_person:
        return SANDBOX_USER_ID
    digest = hashlib.sha256(actor.person.encode()).digest()
    return with_checksum("0055g0" + "".join(ID_CHARS[b % len(ID_CHARS)] for b in digest[:9]))


def new_id(prefix: str) -> str:
    """An 18-character ID as Salesforce makes them: key prefix, instance, a unique part, and the
    3-character suffix that encodes which of the first 15 characters are upper case."""
    return with_checksum(prefix + "5g0" + "".join(secrets.choice(ID_CHARS) for _ in range(9)))


def with_checksum(base: str) -> str:
    suffix = ""
    for chunk in (base[0:5], base[5:10], base[10:15]):
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += CHECKSUM_CHARS[bits]
    return base + suffix


# --- queries ----------------------------------------------------------------------------------

def query_run(*, soql: str, version: str, batch_size: int = QUERY_BATCH, all_rows: bool = False) -> dict[str, Any]:
    """GET query?q= (or queryAll?q=, `all_rows`: deleted rows too): the first batch of rows;
    `nextRecordsUrl` leads to the next while not done."""
    batch_size = min(max(batch_size, QUERY_BATCH_MIN), QUERY_BATCH)
    sobject, selected, ids = _query_ids(soql, all_rows=all_rows)
    cursor = {"sobject": sobject.name, "fields": [f.name for f in selected], "ids": ids, "batch_size": batch_size,
              "path": "queryAll" if all_rows else "query"}
    return _query_batch(cursor, version, offset=0, locator=secrets.token_hex(8))


def query_more(*, locator: str, offset: int, version: str) -> dict[str, Any]:
    """GET query/{locator}-{offset}: a later batch of the rows the query found at first (their
    current values)."""
    cursor = cache.get(_locator_key(locator))
    if cursor is None:
        raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    return _query_batch(cursor, version, offset=offset, locator=locator)


def _query_batch(cursor: dict[str, Any], version: str, *, offset: int, locator: str) -> dict[str, Any]:
    sobject = SOBJECTS[cursor["sobject"]]
    definitions = field_definitions(sobject)
    selected = [definitions[name.lower()] for name in cursor["fields"]]
    ids, batch_size = cursor["ids"], cursor["batch_size"]
    page = ids[offset: offset + batch_size]
    rows = SandboxSalesforceRecord.objects.in_bulk(page)
    records = [{"attributes": {"type": sobject.name, "url": record_url(version, rows[i])},
                **{f.name: _value(rows[i], f) for f in selected}} for i in page if i in rows]
    body = {"totalSize": len(ids), "done": offset + batch_size >= len(ids), "records": records}
    if not body["done"]:
        cache.set(_locator_key(locator), cursor, QUERY_LOCATOR_SECONDS)
        body["nextRecordsUrl"] = f"/services/data/v{version}/{cursor['path']}/{locator}-{offset + batch_size}"
    return body


def _locator_key(locator: str) -> str:
    return f"sandbox-salesforce-query:{locator}"


def _query_ids(soql: str, *, all_rows: bool) -> tuple[SObject, list[FieldDef], list[str]]:
    """The IDs the query finds, in its order and within its LIMIT."""
    try:
        query = soql_parse(soql)
    except SoqlError as exc:
        raise SalesforceError(400, "MALFORMED_QUERY", str(exc)) from None
    sobject = SOBJECTS.get(query.sobject) or next((o for o in SOBJECTS.values()
                                                    if o.name.lower() == query.sobject.lower()), None)
    if sobject is None:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
    definitions = field_definitions(sobject)
    selected = [_query_field(definitions, name, sobject) for name in query.fields]
    conditions = [(_query_field(definitions, c.field, sobject), c) for c in query.conditions]
    order = [(_query_field(definitions, name, sobject), descending) for name, descending in query.order]
    rows = SandboxSalesforceRecord.objects.filter(sobject=sobject.name)
    rows = rows if all_rows else rows.filter(is_deleted=False)
    rows, left = _narrowed(rows, conditions)
    return sobject, selected, _ordered_ids(rows, left, order, query)


def _narrowed(rows: QuerySet, conditions: list[tuple[FieldDef, Condition]]) -> tuple[QuerySet, list]:
    """Conditions on columns (and on keyed fields' = / IN, through the key index) in SQL; the
    others are left for Python."""
    left, keyed_done = [], False
    for field_def, condition in conditions:
        q = _column_q(field_def, condition)
        if q is not None:
            rows = rows.filter(q)
            continue
        if not keyed_done and field_def.keyed and condition.operator in ("=", "IN") and None not in condition.values:
            rows = rows.filter(id__in=SandboxSalesforceKey.objects.filter(
                field=field_def.name, value__in=[str(v).lower() for v in condition.values]).values("record_id"))
            keyed_done = True
        left.append((field_def, condition))
    return rows, left


def _column_q(field_def: FieldDef, condition: Condition) -> Q | None:
    column = COLUMNS.get(field_def.name)
    if column is None or None in condition.values:
        return None
    values = list(condition.values)
    if field_def.type == "datetime" and not all(isinstance(v, datetime) for v in values):
        raise SalesforceError(400, "INVALID_FIELD", f"value of filter criterion for field '{field_def.name}' must be "
                                                    "of type dateTime and should not be enclosed in quotes")
    if condition.operator == "IN":
        return Q(**{f"{column}__in": values})
    if condition.operator == "!=":
        return ~Q(**{column: values[0]})
    return Q(**{f"{column}__{LOOKUPS[condition.operator]}": values[0]})


def _ordered_ids(rows: QuerySet, left: list, order: list[tuple[FieldDef, bool]], query: Query) -> list[str]:
    in_sql = all(f.name in COLUMNS for f, _ in order)
    if not left and in_sql:
        columns = [("-" if descending else "") + COLUMNS[f.name] for f, descending in order] or ["created_at"]
        return list(rows.order_by(*columns, "id").values_list("id", flat=True)[: query.limit])
    hits = [row for row in rows.order_by("created_at", "id") if all(_holds(c, _value(row, f)) for f, c in left)]
    for field_def, descending in reversed(order):
        # Nulls first when ascending, last when descending: SOQL's defaults.
        hits.sort(key=lambda row: _sort_value(_value(row, field_def)), reverse=descending)
    return [row.id for row in hits[: query.limit]]


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return 0, ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return 1, value
    return 2, str(value).casefold()


def _query_field(definitions: dict[str, FieldDef], name: str, sobject: SObject) -> FieldDef:
    found = definitions.get(name.lower())
    if found is None:
        raise SalesforceError(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject.name}'. If you are "
                                                    "attempting to use a custom field, be sure to append the '__c' "
                                                    "after the custom field name.")
    return found


def _value(row: SandboxSalesforceRecord, field_def: FieldDef) -> Any:
    """What a query reads: a record saved before a defaulted field existed has its default."""
    return _values(row).get(field_def.name, field_def.default)


def _values(row: SandboxSalesforceRecord) -> dict[str, Any]:
    return {**row.fields, "Id": row.id, "CreatedDate": _datetime(row.created_at),
            "LastModifiedDate": _datetime(row.updated_at), "SystemModstamp": _datetime(row.system_modstamp),
            "CreatedById": row.created_by_id or SANDBOX_USER_ID, "LastModifiedById": row.last_modified_by_id or SANDBOX_USER_ID,
            "IsDeleted": row.is_deleted, "MasterRecordId": row.master_record_id or None}


def _datetime(moment: datetime) -> str:
    """Salesforce's format: 2024-01-31T12:00:00.000+0000."""
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _holds(condition: Condition, value: Any) -> bool:
    if condition.operator in COMPARE:
        wanted = condition.values[0]
        if value is None or wanted is None:
            return False  # SOQL: a comparison with null is never true
        try:
            mine = soql_datetime(value) if isinstance(wanted, datetime) and isinstance(value, str) else value
            return COMPARE[condition.operator](_folded(mine), _folded(wanted))
        except (SoqlError, TypeError):
            return False
    found = any(_same(value, wanted) for wanted in condition.values)
    return not found if condition.operator == "!=" else found


def _folded(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _same(value: Any, wanted: Any) -> bool:
    if wanted is None or value is None:
        return value is None and wanted is None
    if isinstance(wanted, datetime) and isinstance(value, str):
        try:
            return soql_datetime(value) == wanted
        except SoqlError:
            return False
    if isinstance(wanted, str) and isinstance(value, str):
        return value.casefold() == wanted.casefold()  # SOQL compares text case-insensitively
    return value == wanted


# --- single records, deletes, merges ------------------------------------------------------------

def record_get(*, sobject_name: str, record_id: str, fields: list[str], version: str) -> dict[str, Any]:
    """GET sobjects/{SObject}/{id}[?fields=a,b]: every field (or those named); 404 once deleted."""
    sobject = sobject_get(sobject_name)
    record = _live(sobject, record_id)
    definitions = field_definitions(sobject)
    wanted = [_query_field(definitions, name, sobject) for name in fields] if fields else list(definitions.values())
    return {"attributes": {"type": sobject.name, "url": record_url(version, record)},
            **{f.name: _value(record, f) for f in wanted}}


def record_update(*, sobject_name: str, record_id: str, body: Any, options: WriteOptions) -> None:
    """PATCH sobjects/{SObject}/{id}: update one record by ID (answers 204)."""
    sobject = sobject_get(sobject_name)
    if not isinstance(body, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The body must be a JSON object of field values.")
    _live(sobject, record_id)
    with transaction.atomic():
        outcome = _update_saved(sobject, {**body, "Id": record_id}, options)
    if outcome.errors:
        raise _refusal(outcome.errors)


def record_person_edit(*, record: SandboxSalesforceRecord, fields: Any, person: str) -> None:
    """A person saving the record in the org's UI (the sandbox admin): the values that differ
    from the stored ones are written (null clears); LastModifiedById becomes that person's user."""
    if not isinstance(fields, dict):
        raise SalesforceError(400, "JSON_PARSER_ERROR", "The fields must be a JSON object of field values.")
    changes = {name: value for name, value in fields.items() if record.fields.get(name) != value}
    with acting_as(Actor(person=person)):
        record_update(sobject_name=record.sobject, record_id=record.id, body=changes, options=WriteOptions())


def record_delete(*, sobject_name: str, record_id: str) -> SandboxSalesforceRecord:
    """DELETE sobjects/{SObject}/{id}: to the recycle bin. Its key values are freed (an upsert
    on them creates a new record), SystemModstamp moves."""
    sobject = sobject_get(sobject_name)
    with transaction.atomic():
        record = _live(sobject, record_id)
        _soft_delete(record, now=crm_now(crm=CRM), user=user_id(current_actor()))
    return record


@dataclass(frozen=True)
class MergeResult:
    master_id: str
    merged_ids: list[str]


def records_merge(*, sobject_name: str, master_id: str, merged_ids: list[str]) -> MergeResult:
    """Merge up to two records into the master (SOAP merge(), which REST lacks; the sandbox's
    control API offers it): the losers are deleted with MasterRecordId set, the master keeps its
    values, takes the losers' for fields it lacks, and its SystemModstamp moves."""
    sobject = sobject_get(sobject_name)
    if not isinstance(merged_ids, list) or not 0 < len(merged_ids) <= MERGE_MAX or master_id in merged_ids:
        raise SalesforceError(400, "INVALID_OPERATION", f"Merge takes a master and 1 to {MERGE_MAX} other records.")
    now, user = crm_now(crm=CRM), user_id(current_actor())
    with transaction.atomic():
        master = _live(sobject, master_id)
        losers = [_live(sobject, str(i)) for i in merged_ids]
        filled = {**{k: v for loser in reversed(losers) for k, v in loser.fields.items()}, **master.fields}
        for loser in losers:
            loser.master_record_id = master.id
            _soft_delete(loser, now=now, user=user)
        definitions = field_definitions(sobject)
        keyed = {f.name for f in definitions.values() if f.keyed}
        master.fields = {k: v for k, v in filled.items() if k not in keyed or k in master.fields}
        master.updated_at = master.system_modstamp = now
        master.last_modified_by_id = user
        master.save()
    return MergeResult(master.id, [loser.id for loser in losers])


def _live(sobject: SObject, record_id: str) -> SandboxSalesforceRecord:
    record = SandboxSalesforceRecord.objects.filter(sobject=sobject.name, pk=record_id).first()
    if record is None:
        raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")
    if record.is_deleted:
        raise SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")
    return record


def _soft_delete(record: SandboxSalesforceRecord, *, now: datetime, user: str) -> None:
    record.is_deleted, record.deleted_at = True, now
    record.system_modstamp = now
    record.last_modified_by_id = user
    record.save()
    record.keys.all().delete()


def changed_ids(*, sobject_name: str, start: str, end: str, deleted: bool) -> dict[str, Any]:
    """GET sobjects/{SObject}/updated/ or /deleted/?start=..&end=..: IDs changed (SystemModstamp)
    or deleted within the window, which must run forwards and start at most 30 days ago."""
    sobject = sobject_get(sobject_name)
    since, until = _replication_date(start, "start"), _replication_date(end, "end")
    now = crm_now(crm=CRM)
    if since >= until:
        raise SalesforceError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate")
    if since < now - timedelta(days=REPLICATION_DAYS):
        raise SalesforceError(400, "INVALID_REPLICATION_DATE",
                              f"startDate cannot be more than {REPLICATION_DAYS} days ago")
    covered = _datetime(min(until, now).replace(second=0, microsecond=0))
    rows = SandboxSalesforceRecord.objects.filter(sobject=sobject.name, is_deleted=deleted)
    if deleted:
        found = rows.filter(deleted_at__gte=since, deleted_at__lt=until).order_by("deleted_at", "id")
        return {"deletedRecords": [{"id": row.id, "deletedDate": _datetime(row.deleted_at)} for row in found],
                "earliestDateAvailable": _datetime(now - timedelta(days=REPLICATION_DAYS)), "latestDateCovered": covered}
    found = rows.filter(system_modstamp__gte=since, system_modstamp__lt=until).order_by("system_modstamp", "id")
    return {"ids": list(found.values_list("id", flat=True)), "latestDateCovered": covered}


def _replication_date(text: str, name: str) -> datetime:
    if not text:
        raise SalesforceError(400, "MALFORMED_QUERY", f"Missing required parameter: {name}")
    try:
        return soql_datetime(text.replace(" ", "+"))  # an unencoded + arrives as a space
    except SoqlError:
        raise SalesforceError(400, "INVALID_REPLICATION_DATE", f"{name} is not an ISO 8601 date and time with a time "
                                                              f"zone: {text}") from None


# --- limits -----------------------------------------------------------------------------------

def limits_json(*, used: int, allocation: int) -> dict[str, Any]:
    return {"DailyApiRequests": {"Max": allocation, "Remaining": max(0, allocation - used)},
            "DailyBulkApiBatches": {"Max": 15_000, "Remaining": 15_000},
            "DataStorageMB": {"Max": 5, "Remaining": 5}}
