from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html_join

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from crmsync.models import Destination, Lead, PushJob


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdmin):
    """Read-only: a lead changes only through the pipeline, which also queues its push. An edit
    here would silently diverge from the CRM."""

    list_display = ("email", "first_name", "last_name", "company", "country", "external_id", "updated_at")
    search_fields = ("email", "external_id", "last_name", "company")
    fields = ("external_id", "email", "first_name", "last_name", "phone", "company", "country",
              "attributes_pretty", "created_at", "updated_at", "history_links")
    readonly_fields = fields

    @admin.display(description="attributes")
    def attributes_pretty(self, obj: Lead) -> str:
        return pretty_json(obj.attributes)

    @admin.display(description="history")
    def history_links(self, obj: Lead) -> str:
        links = {
            "submissions": reverse("admin:ingestion_submission_changelist") + f"?lead__id__exact={obj.pk}",
            "push jobs": reverse("admin:crmsync_pushjob_changelist") + f"?lead__id__exact={obj.pk}",
            "sync log": reverse("admin:audit_synclog_changelist") + f"?lead_external_id={obj.external_id}",
        }
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, name) for name, url in links.items()))


class DestinationForm(forms.ModelForm):
    base_url = forms.URLField(assume_scheme="https", help_text=Destination._meta.get_field("base_url").help_text)
    token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current one.",
    )

    class Meta:
        model = Destination
        fields = ("name", "kind", "base_url", "upsert_property", "credentials_env", "token", "is_active")

    def save(self, commit: bool = True) -> Destination:
        if self.cleaned_data.get("token"):
            self.instance.set_token(self.cleaned_data["token"])
        return super().save(commit=commit)


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    list_display = ("name", "kind", "base_url", "is_active", "has_stored_token")
    list_filter = ("kind", "is_active")

    @admin.display(boolean=True, description="stored token")
    def has_stored_token(self, obj: Destination) -> bool:
        return bool(obj.credentials_encrypted)


@admin.register(PushJob)
class PushJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "lead", "destination", "status", "attempts", "next_attempt_at", "crm_record_id", "short_error", "updated_at")
    list_filter = ("status", "destination")
    list_select_related = ("lead", "destination")
    search_fields = ("=id", "lead__email", "lead__external_id", "crm_record_id")
    readonly_fields = ("lead", "destination", "status", "attempts", "next_attempt_at", "leased_until",
                       "crm_record_id", "last_error", "created_at", "updated_at", "finished_at")
    fields = readonly_fields

    @admin.display(description="last error")
    def short_error(self, obj: PushJob) -> str:
        return obj.last_error[:120]
