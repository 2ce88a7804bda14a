from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from crmsync.sandbox.models import SandboxContact, SandboxMetaLead, SandboxProperty, SandboxRateWindow, SandboxSettings


@admin.register(SandboxContact)
class SandboxContactAdmin(ReadOnlyAdmin):
    """Read-only: the sandbox stands for a remote CRM, changed only through its API."""

    list_display = ("id", "email", "name", "updated_at")
    search_fields = ("email",)
    fields = ("id", "email", "properties_pretty", "created_at", "updated_at", "archived")
    readonly_fields = fields

    @admin.display(description="name")
    def name(self, obj: SandboxContact) -> str:
        return " ".join(filter(None, (obj.properties.get("firstname"), obj.properties.get("lastname"))))

    @admin.display(description="properties")
    def properties_pretty(self, obj: SandboxContact) -> str:
        return pretty_json(obj.properties)


@admin.register(SandboxMetaLead)
class SandboxMetaLeadAdmin(ReadOnlyAdmin):
    """Read-only: leads come from meta_lead_create, as on Meta they come from form submissions."""

    list_display = ("leadgen_id", "page_id", "form_id", "ad_id", "created_time")
    search_fields = ("leadgen_id", "page_id", "form_id")
    # The access token stays out of the admin: it is a credential, not evidence.
    fields = ("leadgen_id", "page_id", "form_id", "ad_id", "created_time", "field_data_pretty")
    readonly_fields = fields

    @admin.display(description="field data")
    def field_data_pretty(self, obj: SandboxMetaLead) -> str:
        return pretty_json(obj.field_data)


@admin.register(SandboxProperty)
class SandboxPropertyAdmin(ReadOnlyAdmin):
    list_display = ("name", "label", "type", "field_type", "group_name", "has_unique_value", "created_at")


@admin.register(SandboxRateWindow)
class SandboxRateWindowAdmin(ReadOnlyAdmin):
    list_display = ("crm", "window", "window_start", "count")


@admin.register(SandboxSettings)
class SandboxSettingsAdmin(admin.ModelAdmin):
    """Editable, so a demo can slow the CRM down or make it hit its limits."""

    list_display = ("crm", "rate_limit_max", "rate_limit_interval_ms", "daily_limit", "search_limit_per_second",
                    "reply_delay_ms")
