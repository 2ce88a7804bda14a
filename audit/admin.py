from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin, correlation_links, pretty_json
from audit.models import SyncLog, WorkerHeartbeat


@admin.register(SyncLog)
class SyncLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "operation", "lead_external_id", "destination_name", "crm_record_id", "http_status", "error_code", "attempt", "duration_ms")
    list_filter = ("operation", "destination_name", "error_code")
    search_fields = ("lead_external_id", "crm_record_id", "=correlation_id")
    date_hierarchy = "created_at"
    fields = ("created_at", "destination_name", "push_job", "lead", "lead_external_id", "operation", "crm_record_id",
              "http_status", "error_code", "error_message", "attempt", "duration_ms", "request_pretty", "response_pretty",
              "correlation")
    readonly_fields = fields

    @admin.display(description="correlation ID")
    def correlation(self, obj: SyncLog) -> str:
        return correlation_links(obj.correlation_id)

    @admin.display(description="request")
    def request_pretty(self, obj: SyncLog) -> str:
        return pretty_json(obj.request)

    @admin.display(description="response")
    def response_pretty(self, obj: SyncLog) -> str:
        return pretty_json(obj.response)


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdmin):
    """Each worker process and when it last said it was alive (/readyz reads the newest)."""

    list_display = ("name", "beat_at", "started_at")
    fields = list_display
    readonly_fields = fields
