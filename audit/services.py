"""The audit stage's writes: one SyncLog row per record per CRM call, with personal data masked."""

from dataclasses import dataclass
import re
from typing import Any

from django.conf import settings

from audit.models import SyncLog

MASK = "***"


@dataclass(frozen=True)
class CallRecord:
    """One record of one CRM call (or of a push that needed no call), as plain values: the audit
    stage knows nothing of the stages above it."""

    destination_id: int
    destination_name: str
    push_job_id: int
    lead_id: int
    lead_external_id: str
    operation: str  # SyncLog.Operation
    outcome: str
    crm_record_id: str = ""
    http_status: int | None = None
    error_code: str = ""
    error_message: str = ""
    request: Any = None
    response: Any = None
    attempt: int = 1
    duration_ms: int = 0
    correlation_id: str = ""


def sync_log_record(*, call: CallRecord, personal_keys: set[str] | frozenset[str] = frozenset()) -> SyncLog:
    """Write the audit row for one record of one CRM call. Values of personal fields, and
    anything that looks like an email address, are masked unless CRMSYNC_SYNC_LOG_REDACT is
    false."""
    request, response, message = call.request, call.response, call.error_message
    if settings.CRMSYNC["SYNC_LOG_REDACT"]:
        request, response = redact(request, personal_keys), redact(response, personal_keys)
        message = redact(message, personal_keys)
    return SyncLog.objects.create(
        destination_id=call.destination_id,
        destination_name=call.destination_name,
        push_job_id=call.push_job_id,
        lead_id=call.lead_id,
        lead_external_id=call.lead_external_id,
        operation=call.operation,
        outcome=call.outcome,
        crm_record_id=call.crm_record_id,
        http_status=call.http_status,
        error_code=call.error_code if call.operation == SyncLog.Operation.ERROR else "",
        error_message=message,
        request=request if request is not None else {},
        response=response if response is not None else {},
        attempt=call.attempt,
        duration_ms=call.duration_ms,
        correlation_id=call.correlation_id,
    )


def redact(value: Any, keys: set[str] | frozenset[str]) -> Any:
    """Mask the values of the given keys anywhere in a JSON document, and email addresses in
    any string (CRM error messages quote them)."""
    if isinstance(value, dict):
        return {k: (MASK if k in keys and v not in (None, "") else redact(v, keys)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, keys) for v in value]
    if isinstance(value, str) and "@" in value:
        return _EMAIL.sub(MASK, value)
    return value


_EMAIL = re.compile(r"[^\s@'\"<>(),;:]+@[^\s@'\"<>(),;:]+")
