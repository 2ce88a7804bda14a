"""The REST CRM's leads: create, read, update, list and batch over SandboxRestRecord.

The email is the one unique key: stored lower-cased under a unique constraint, so a duplicate
is found by the database, also between concurrent writes. Everything else sent is kept as
sent in `fields`, nulls included, so a client that blanks a value sees it blanked. The keys the
CRM itself sets (`id`, `created_at`, `updated_at`) are read-only and ignored in a body, as
most CRMs ignore read-only fields echoed back.
"""

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from sandbox.models import SandboxRestRecord
from sandbox.rest.errors import RestError, duplicate_email, invalid, not_found
from sandbox.validators import is_email

ID_PREFIX = "L"
PAGE_SIZE = 100
READ_ONLY = frozenset({"id", "created_at", "updated_at"})


def wire_id(record: SandboxRestRecord) -> str:
    return f"{ID_PREFIX}{record.pk}"


def iso(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record_json(record: SandboxRestRecord) -> dict[str, Any]:
    return {"id": wire_id(record), "email": record.email, **record.fields, "created_at": iso(record.created_at),
            "updated_at": iso(record.updated_at)}


def record_get(*, record_id: str) -> SandboxRestRecord:
    pk = record_id.removeprefix(ID_PREFIX)
    record = (SandboxRestRecord.objects.filter(pk=int(pk)).first()
              if record_id.startswith(ID_PREFIX) and pk.isdecimal() and len(pk) < 19 else None)
    if record is None:
        raise not_found(f"No lead with id {record_id!r}.")
    return record


def record_create(*, data: Any, duplicate_status: int) -> SandboxRestRecord:
    body = _object(data)
    if "email" not in body:
        raise invalid("email is required.")
    now = timezone.now()
    record = SandboxRestRecord(email=_email(body["email"]), fields=_fields(body), created_at=now, updated_at=now)
    return _save(record, duplicate_status)


def record_update(*, record_id: str, data: Any, replace: bool, duplicate_status: int) -> SandboxRestRecord:
    """PATCH sets the keys present (null included); PUT replaces every field, and the email
    only when one is given."""
    body = _object(data)
    record = record_get(record_id=record_id)
    if "email" in body:
        record.email = _email(body["email"])
    record.fields = _fields(body) if replace else {**record.fields, **_fields(body)}
    record.updated_at = timezone.now()
    return _save(record, duplicate_status)


def records_list(*, email: str | None, page: int) -> list[SandboxRestRecord]:
    rows = SandboxRestRecord.objects.order_by("pk")
    if email is not None:
        rows = rows.filter(email=email.strip().lower())
    return list(rows[(page - 1) * PAGE_SIZE:page * PAGE_SIZE])


def records_batch(*, items: Any, batch_max: int, duplicate_status: int) -> list[dict[str, Any]]:
    """Each item with an `id` updates that lead (as PATCH), any other creates one. Items fail
    alone: the others are applied."""
    if not isinstance(items, list):
        raise invalid("The body must be a JSON array of leads.")
    if len(items) > batch_max:
        raise invalid(f"A batch carries at most {batch_max} leads, not {len(items)}.")
    return [_batch_item(index, item, duplicate_status) for index, item in enumerate(items)]


def _batch_item(index: int, item: Any, duplicate_status: int) -> dict[str, Any]:
    try:
        if isinstance(item, dict) and "id" in item:
            if not isinstance(item["id"], str):
                raise invalid(f"id must be a string such as \"L1\", not {item['id']!r}.")
            record = record_update(record_id=item["id"], data=item, replace=False, duplicate_status=duplicate_status)
            return {"index": index, "id": wire_id(record), "status": "updated"}
        record = record_create(data=item, duplicate_status=duplicate_status)
        return {"index": index, "id": wire_id(record), "status": "created"}
    except RestError as exc:
        return {"index": index, **exc.body()}


def records_clear() -> int:
    return SandboxRestRecord.objects.all().delete()[0]


def _save(record: SandboxRestRecord, duplicate_status: int) -> SandboxRestRecord:
    try:
        with transaction.atomic():  # a savepoint inside a batch: one duplicate fails alone
            record.save()
    except IntegrityError:  # the unique email, also against a concurrent write
        raise duplicate_email(record.email, duplicate_status) from None
    return record


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise invalid("A lead must be a JSON object.")
    return data


def _email(value: Any) -> str:
    if not isinstance(value, str) or not is_email(value.strip()):
        raise invalid(f"email must be an email address, not {value!r}.")
    return value.strip().lower()


def _fields(body: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key != "email" and key not in READ_ONLY}
