"""The sandbox CRM's tables in the Django admin: settings and faults editable; HubSpot contacts
and companies and Salesforce records editable as a person would edit them in the CRM's UI (the
change is recorded as that admin user's: HubSpot sourceType CRM_UI, Salesforce LastModifiedById
of a person), with actions to delete (archive) and merge them; the rest read-only."""

from django import forms
from django.contrib import admin, messages

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from sandbox.clock import Actor, acting_as
from sandbox.faults import CRMS
from sandbox.hubspot import records as hubspot_records
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.properties import COMPANIES, CONTACTS, SYSTEM_PROPERTIES, ObjectType
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
    SandboxWebhookSubscription,
)
from sandbox.rest.switches import switches_get
from sandbox.salesforce import records as salesforce_records
from sandbox.salesforce.records import SalesforceError

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


def _json_object(value) -> dict:
    if not isinstance(value, dict):
        raise forms.ValidationError("Enter a JSON object of names to values.")
    return value


class PersonEditForm(forms.ModelForm):
    """The record's values as JSON; saving them is a person's edit in the CRM's UI."""

    values = forms.JSONField(help_text="Property values as a JSON object. Leave a property out (or empty) to "
                                       "clear it. Saved as your edit in the CRM's UI (sourceType CRM_UI).")

    class Meta:
        fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["values"].initial = {k: v for k, v in self.instance.properties.items()
                                             if k not in SYSTEM_PROPERTIES}

    def clean_values(self) -> dict:
        return _json_object(self.cleaned_data["values"])


class SandboxRecordAdmin(admin.ModelAdmin):
    """Changed as a person would in HubSpot's UI (the change moves lastmodifieddate and is
    recorded in the property history as CRM_UI by the admin user); never added here."""

    kind: ObjectType = CONTACTS
    form = PersonEditForm
    show_full_result_count = False
    fields = ("id", "values", "created_at", "updated_at", "archived", "archived_at", "merged_into", "history_pretty")
    readonly_fields = ("id", "created_at", "updated_at", "archived", "archived_at", "merged_into", "history_pretty")
    actions = ("archive_selected", "merge_selected")

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # HubSpot archives: see the action

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or obj.live)

    @admin.display(description="property history")
    def history_pretty(self, obj) -> str:
        return pretty_json(obj.history)

    def save_model(self, request, obj, form, change) -> None:
        try:
            hubspot_records.record_person_edit(self.kind, record=obj, properties=form.cleaned_data["values"],
                                               person=request.user.get_username())
        except HubSpotError as exc:
            messages.error(request, f"HubSpot refused the edit: {exc.message}")
        obj.refresh_from_db()

    @admin.action(description="Delete (archive) the selected records, as a person")
    def archive_selected(self, request, queryset) -> None:
        with acting_as(Actor(person=request.user.get_username())):
            for record in queryset:
                hubspot_records.record_archive(self.kind, key=str(record.pk))
        messages.success(request, f"Archived {queryset.count()} record(s).")

    @admin.action(description="Merge the two selected records into the older one, as a person")
    def merge_selected(self, request, queryset) -> None:
        records = list(queryset.order_by("pk"))
        if len(records) != 2:
            messages.error(request, "Select exactly two records to merge.")
            return
        try:
            with acting_as(Actor(person=request.user.get_username())):
                hubspot_records.records_merge(self.kind, body={"primaryObjectId": str(records[0].pk),
                                                               "objectIdToMerge": str(records[1].pk)})
        except HubSpotError as exc:
            messages.error(request, exc.message)
            return
        messages.success(request, f"Merged {records[1].pk} into {records[0].pk}.")


@admin.register(SandboxContact)
class SandboxContactAdmin(SandboxRecordAdmin):
    list_display = ("id", "email", "name", "updated_at", "archived")
    list_filter = ("archived",)
    search_fields = ("email",)

    @admin.display(description="name")
    def name(self, obj: SandboxContact) -> str:
        return " ".join(filter(None, (obj.properties.get("firstname"), obj.properties.get("lastname"))))


@admin.register(SandboxCompany)
class SandboxCompanyAdmin(SandboxRecordAdmin):
    kind = COMPANIES
    list_display = ("id", "__str__", "updated_at", "archived")
    list_filter = ("archived",)


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


class SalesforceEditForm(forms.ModelForm):
    values = forms.JSONField(help_text="Field values as a JSON object (null clears a field). Saved as your edit "
                                       "in the org's UI: LastModifiedById becomes your user.")

    class Meta:
        model = SandboxSalesforceRecord
        fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["values"].initial = dict(self.instance.fields)

    def clean_values(self) -> dict:
        return _json_object(self.cleaned_data["values"])


@admin.register(SandboxSalesforceRecord)
class SandboxSalesforceRecordAdmin(admin.ModelAdmin):
    """Changed as a person would in the org's UI; deleted to the recycle bin by the action."""

    form = SalesforceEditForm
    show_full_result_count = False
    list_display = ("id", "sobject", "name", "updated_at", "is_deleted")
    list_filter = ("sobject", "is_deleted")
    search_fields = ("id",)
    fields = ("id", "sobject", "values", "created_at", "updated_at", "system_modstamp", "last_modified_by_id",
              "is_deleted", "master_record_id")
    readonly_fields = ("id", "sobject", "created_at", "updated_at", "system_modstamp", "last_modified_by_id",
                       "is_deleted", "master_record_id")
    actions = ("delete_softly",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # Salesforce's delete is soft: see the action

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and (obj is None or not obj.is_deleted)

    def save_model(self, request, obj, form, change) -> None:
        try:
            salesforce_records.record_person_edit(record=obj, fields=form.cleaned_data["values"],
                                                  person=request.user.get_username())
        except SalesforceError as exc:
            messages.error(request, f"Salesforce refused the edit: {exc.body}")
        obj.refresh_from_db()

    @admin.action(description="Delete the selected records (to the recycle bin), as a person")
    def delete_softly(self, request, queryset) -> None:
        with acting_as(Actor(person=request.user.get_username())):
            for record in queryset.filter(is_deleted=False):
                salesforce_records.record_delete(sobject_name=record.sobject, record_id=record.id)
        messages.success(request, "Deleted the selected records.")

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


@admin.register(SandboxWebhookSubscription)
class SandboxWebhookSubscriptionAdmin(admin.ModelAdmin):
    """The sandbox HubSpot app's webhook subscriptions: person edits, deletions and merges are sent
    to the target URL, signed v3 with the client secret."""

    list_display = ("object_type", "target_url", "property_changes", "deletions", "merges", "active", "created_at")
