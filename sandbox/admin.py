"""The sandbox CRM's tables in the Django admin: records read-only, settings and faults editable."""

from django import forms
from django.contrib import admin

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from sandbox.faults import CRMS
from sandbox.models import (
    SandboxAccessToken,
    SandboxAssociation,
    SandboxCompany,
    SandboxContact,
    SandboxFaults,
    SandboxMetaLead,
    SandboxProperty,
    SandboxRateWindow,
    SandboxRequestLog,
    SandboxRestRecord,
    SandboxRestSettings,
    SandboxSalesforceField,
    SandboxSalesforceRecord,
    SandboxSettings,
)
from sandbox.rest.switches import switches_get

CRM_LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce", "rest": "REST"}
# The REST CRM's knobs are its own row (SandboxRestSettings): a SandboxSettings row for it would be read by nothing.
LIMITED_CRMS = tuple(crm for crm in CRMS if crm != "rest")


def crm_choice(crms: tuple[str, ...] = CRMS) -> forms.ChoiceField:
    """The simulated CRMs as a list to pick from: a typo in free text made a rule nothing read."""
    return forms.ChoiceField(choices=[(crm, CRM_LABELS.get(crm, crm)) for crm in crms], label="CRM")


class SandboxFaultsForm(forms.ModelForm):
    crm = crm_choice()

    class Meta:
        model = SandboxFaults
        fields = "__all__"


class SandboxSettingsForm(forms.ModelForm):
    crm = crm_choice(LIMITED_CRMS)

    class Meta:
        model = SandboxSettings
        fields = "__all__"


class SandboxRecordAdmin(ReadOnlyAdmin):
    """Read-only: the sandbox stands for a remote CRM, changed only through its API."""

    fields = ("id", "properties_pretty", "created_at", "updated_at", "archived")
    readonly_fields = fields

    @admin.display(description="properties")
    def properties_pretty(self, obj) -> str:
        return pretty_json(obj.properties)


@admin.register(SandboxContact)
class SandboxContactAdmin(SandboxRecordAdmin):
    list_display = ("id", "email", "name", "updated_at")
    search_fields = ("email",)
    fields = ("id", "email", "properties_pretty", "created_at", "updated_at", "archived")
    readonly_fields = fields

    @admin.display(description="name")
    def name(self, obj: SandboxContact) -> str:
        return " ".join(filter(None, (obj.properties.get("firstname"), obj.properties.get("lastname"))))


@admin.register(SandboxCompany)
class SandboxCompanyAdmin(SandboxRecordAdmin):
    list_display = ("id", "__str__", "updated_at")


@admin.register(SandboxAssociation)
class SandboxAssociationAdmin(ReadOnlyAdmin):
    list_display = ("from_type", "from_id", "to_type", "to_id", "category", "type_id", "created_at")
    list_filter = ("from_type", "type_id")


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
    list_display = ("object_type", "name", "label", "type", "field_type", "group_name", "has_unique_value", "created_at")
    list_filter = ("object_type",)


@admin.register(SandboxRateWindow)
class SandboxRateWindowAdmin(ReadOnlyAdmin):
    list_display = ("crm", "window", "window_start", "count")


@admin.register(SandboxSettings)
class SandboxSettingsAdmin(admin.ModelAdmin):
    """Editable, so a demo can slow the CRM down or make it hit its limits."""

    form = SandboxSettingsForm

    list_display = ("crm", "rate_limit_max", "rate_limit_interval_ms", "daily_limit", "search_limit_per_second",
                    "reply_delay_ms", "token_lifetime_seconds", "duplicate_rule_enabled")


@admin.register(SandboxFaults)
class SandboxFaultsAdmin(admin.ModelAdmin):
    """Editable, like `manage.py sandbox_faults`; the model's clean() keeps the rates' sum at most 1."""

    form = SandboxFaultsForm

    list_display = ("crm", "seed", "error_rate", "rate_limit_rate", "lock_rate", "timeout_rate", "timeout_seconds",
                    "lost_reply_rate", "latency_ms", "updated_at")


@admin.register(SandboxRequestLog)
class SandboxRequestLogAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "crm", "method", "path", "status", "records", "fault")
    list_filter = ("crm", "fault", "method")


@admin.register(SandboxAccessToken)
class SandboxAccessTokenAdmin(ReadOnlyAdmin):
    # Only the digest is stored; it is left out all the same.
    list_display = ("crm", "subject", "issued_at", "expires_at")
    fields = list_display
    readonly_fields = fields


@admin.register(SandboxSalesforceField)
class SandboxSalesforceFieldAdmin(admin.ModelAdmin):
    """Editable: adding a custom field here is the sandbox's Setup > Object Manager."""

    list_display = ("sobject", "name", "label", "type", "length", "external_id", "unique", "required",
                    "restricted_picklist")
    list_filter = ("sobject", "type", "external_id")


@admin.register(SandboxSalesforceRecord)
class SandboxSalesforceRecordAdmin(ReadOnlyAdmin):
    list_display = ("id", "sobject", "name", "updated_at")
    list_filter = ("sobject",)
    search_fields = ("id",)
    fields = ("id", "sobject", "fields_pretty", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="name")
    def name(self, obj: SandboxSalesforceRecord) -> str:
        values = obj.fields
        return values.get("Name") or " ".join(filter(None, (values.get("FirstName"), values.get("LastName"))))

    @admin.display(description="fields")
    def fields_pretty(self, obj: SandboxSalesforceRecord) -> str:
        return pretty_json(obj.fields)


@admin.register(SandboxRestSettings)
class SandboxRestSettingsAdmin(admin.ModelAdmin):
    """Editable, like `PUT /sandbox/rest/_settings`; the one row is made on first use, never added here."""

    list_display = ("__str__", "auth", "create_status", "duplicate_status", "errors_as_200", "nested_ids",
                    "batch_max", "reply_delay_ms", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        switches_get()  # the row to edit exists before the first API call too
        return super().changelist_view(request, extra_context)


@admin.register(SandboxRestRecord)
class SandboxRestRecordAdmin(ReadOnlyAdmin):
    list_display = ("lead_id", "email", "updated_at")
    search_fields = ("email",)
    fields = ("lead_id", "email", "fields_pretty", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="id", ordering="pk")
    def lead_id(self, obj: SandboxRestRecord) -> str:
        return f"L{obj.pk}"

    @admin.display(description="fields")
    def fields_pretty(self, obj: SandboxRestRecord) -> str:
        return pretty_json(obj.fields)
