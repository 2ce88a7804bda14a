import re
from typing import Any

from django.conf import settings

from audit.models import SyncLog

MASK = "***"


def sync_log_record(*, push_job, result, attempt: int, noop: bool = False,
                    personal_keys: set[str] | frozenset[str] = frozenset()) -> SyncLog:
    """Write the audit row for one record of one CRM call (or of a push that needed no call).
    Values of personal fields, and anything that looks like an email address, are masked
    unless CRMSYNC_SYNC_LOG_REDACT is false."""
    from crmsync.connectors.base import Outcome

    if noop:
        operation = SyncLog.Operation.NOOP
    else:
        operation = {
            Outcome.CREATED: SyncLog.Operation.CREATE,
            Outcome.UPDATED: SyncLog.Operation.UPDATE,
        }.get(result.outcome, SyncLog.Operation.ERROR)
    redacting = settings.CRMSYNC["SYNC_LOG_REDACT"]
    request, response, message = result.request, result.response, result.error_message
    if redacting:
        request, response = redact(request, personal_keys), redact(response, personal_keys)
        message = redact(message, personal_keys)
    return SyncLog.objects.create(
        destination=push_job.destination,
        destination_name=push_job.destination.name,
        push_job=push_job,
        lead=result.lead,
        lead_external_id=result.lead.external_id,
        operation=operation,
        outcome="noop" if noop else str(result.outcome),
        crm_record_id=result.crm_record_id,
        http_status=None if noop else result.http_status,
        error_code=result.error_code if operation == SyncLog.Operation.ERROR else "",
        error_message=message,
        request=request,
        response=response,
        attempt=attempt,
        duration_ms=result.duration_ms,
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
