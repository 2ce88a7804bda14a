"""The REST CRM's behaviour switches: the one SandboxRestSettings row, read and changed."""

from typing import Any

from django.core.exceptions import ValidationError

from sandbox.models import SandboxRestSettings
from sandbox.rest.errors import RestError, invalid

ROW_ID = 1  # the one row
# Each switch and the JSON type it takes (bool is checked apart: it is an int subclass).
SWITCHES: dict[str, type] = {"create_status": int, "duplicate_status": int, "errors_as_200": bool,
                             "nested_ids": bool, "auth": str, "batch_max": int, "reply_delay_ms": int}


def switches_get() -> SandboxRestSettings:
    """The switches; created with defaults on first use, so a flushed database still works."""
    return SandboxRestSettings.objects.get_or_create(pk=ROW_ID)[0]


def switches_update(*, changes: Any) -> SandboxRestSettings:
    """Set the switches given (any subset); refuse the whole change if one value is wrong."""
    if not isinstance(changes, dict):
        raise invalid("The body must be a JSON object of settings.")
    unknown = sorted(set(changes) - set(SWITCHES))
    if unknown:
        raise invalid(f"Unknown settings: {', '.join(unknown)}. Known: {', '.join(SWITCHES)}.")
    row = switches_get()
    for name, value in changes.items():
        if not _has_type(value, SWITCHES[name]):
            raise invalid(f"{name} must be a JSON {SWITCHES[name].__name__}, not {value!r}.")
        setattr(row, name, value)
    try:
        row.full_clean()
    except ValidationError as exc:
        raise RestError(400, "invalid", "; ".join(f"{field}: {' '.join(messages)}"
                                                  for field, messages in exc.message_dict.items())) from None
    row.save()
    return row


def _has_type(value: Any, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    return isinstance(value, kind) and not isinstance(value, bool)


def switches_json(row: SandboxRestSettings) -> dict[str, Any]:
    return {name: getattr(row, name) for name in SWITCHES}
