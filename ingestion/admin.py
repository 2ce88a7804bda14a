from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from ingestion.models import Source, Submission


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "is_active", "intake_path", "submissions_link")
    list_filter = ("kind", "is_active")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")

    @admin.display(description="submissions")
    def submissions_link(self, obj: Source) -> str:
        url = reverse("admin:ingestion_submission_changelist") + f"?source__id__exact={obj.pk}"
        return format_html('<a href="{}">view</a>', url)


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyAdmin):
    list_display = ("id", "received_at", "source", "status", "lead", "short_reasons")
    list_filter = ("status", "source")
    list_select_related = ("source", "lead")
    date_hierarchy = "received_at"
    search_fields = ("=id", "idempotency_key")
    fields = ("source", "status", "received_at", "processed_at", "lead", "reasons_pretty", "payload_pretty",
              "headers_pretty", "content_type", "remote_addr", "user_agent", "idempotency_key", "raw_body_text")
    readonly_fields = fields

    @admin.display(description="reasons")
    def short_reasons(self, obj: Submission) -> str:
        return "; ".join(r.get("message", "") for r in obj.reasons)

    @admin.display(description="reasons")
    def reasons_pretty(self, obj: Submission) -> str:
        return pretty_json(obj.reasons)

    @admin.display(description="payload")
    def payload_pretty(self, obj: Submission) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="headers (secrets removed)")
    def headers_pretty(self, obj: Submission) -> str:
        return pretty_json(obj.headers)

    @admin.display(description="raw body")
    def raw_body_text(self, obj: Submission) -> str:
        return format_html("<pre>{}</pre>", bytes(obj.raw_body).decode("utf-8", errors="replace"))
