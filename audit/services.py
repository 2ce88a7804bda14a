from audit.models import SyncLog


def sync_log_record(*, push_job, result, attempt: int) -> SyncLog:
    """Write the audit row for one record of one CRM call."""
    from crmsync.connectors.base import Outcome

    operation = {
        Outcome.CREATED: SyncLog.Operation.CREATE,
        Outcome.UPDATED: SyncLog.Operation.UPDATE,
    }.get(result.outcome, SyncLog.Operation.ERROR)
    return SyncLog.objects.create(
        destination=push_job.destination,
        destination_name=push_job.destination.name,
        push_job=push_job,
        lead=result.lead,
        lead_external_id=result.lead.external_id,
        operation=operation,
        crm_record_id=result.crm_record_id,
        http_status=result.http_status,
        error_code=result.error_code if operation == SyncLog.Operation.ERROR else "",
        error_message=result.error_message,
        request=result.request,
        response=result.response,
        attempt=attempt,
        duration_ms=result.duration_ms,
    )
