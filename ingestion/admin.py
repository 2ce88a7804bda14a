from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Q
from django.utils.html import format_html, format_html_join

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from ingestion.credentials import source_secret_add
from ingestion.models import Source, SourceCounter, SourceSecret, Submission

COUNTED = ("accepted", "duplicate", "refused_auth", "throttled", "oversize", "spam")


class SourceSecretForm(forms.ModelForm):
    value = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Provider secrets: paste it. API keys and URL tokens: leave empty to generate one, shown once.")

    class Meta:
        model = SourceSecret
        fields = ("purpose", "label", "value", "is_active")

    def clean(self) -> dict:
        data = super().clean()
        if not self.instance.pk and data.get("purpose") not in SourceSecret.HASHED and not data.get("value"):
            raise ValidationError({"value": "Paste the secret the provider gave you."})
        return data


class SourceSecretInline(admin.TabularInline):
    model = SourceSecret
    form = SourceSecretForm
    extra = 0
    can_delete = False  # retire a secret by deactivating it, so its history stays
    fields = ("purpose", "label", "value", "hint", "is_active", "created_at")
    readonly_fields = ("hint", "created_at")


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "kind", "auth_method", "is_active", "intake_path", *COUNTED)
    list_filter = ("kind", "is_active")
    prepopulated_fields = {"slug": ("name",)}
    search_fields = ("name", "slug")
    inlines = [SourceSecretInline]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    readonly_fields = ("intake_url", "preset_summary", "request_counts")
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "auth", "is_active", "intake_url", "preset_summary", "request_counts")}),
        ("Limits", {"fields": ("max_body_bytes",)}),
        ("Public web form", {"fields": ("allowed_origins", "honeypot_field", "ip_limit_per_minute", "source_limit_per_minute")}),
        ("Generic HMAC", {"classes": ("collapse",), "fields": ("hmac_header", "hmac_algorithm", "hmac_encoding", "hmac_prefix",
                                                               "hmac_timestamp_header", "hmac_window_seconds")}),
        ("Meta Lead Ads", {"classes": ("collapse",), "fields": ("graph_base_url",)}),
    )

    def get_queryset(self, request):
        stored = {
            "n_accepted": Count("submissions", filter=~Q(submissions__status=Submission.Status.SPAM), distinct=True),
            "n_spam": Count("submissions", filter=Q(submissions__status=Submission.Status.SPAM), distinct=True),
        }
        return super().get_queryset(request).annotate(**stored).prefetch_related("counters")

    def save_formset(self, request, form, formset, change) -> None:
        if formset.model is not SourceSecret:
            return super().save_formset(request, form, formset, change)
        # New secrets go through the service (hashing, encryption, the two-active rule); the
        # admin's change message reads these lists.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline in formset.forms:
            if not inline.has_changed():
                continue
            if inline.instance.pk:
                formset.changed_objects.append((inline.save(), inline.changed_data))
            elif secret := self._add_secret(request, form.instance, inline.cleaned_data):
                formset.new_objects.append(secret)

    def _add_secret(self, request, source: Source, data: dict) -> SourceSecret | None:
        try:
            secret, plaintext = source_secret_add(source=source, purpose=data["purpose"], value=data.get("value", ""),
                                                  label=data.get("label", ""))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return None
        if not data.get("value"):
            messages.warning(request, f"New {secret.get_purpose_display()} for {source.name}: {plaintext} "
                                      "(copy it now; it is stored hashed and will not be shown again)")
        return secret

    @admin.display(description="intake URL")
    def intake_url(self, obj: Source) -> str:
        return obj.intake_path if obj.pk else "(after saving)"

    @admin.display(description="preset")
    def preset_summary(self, obj: Source) -> str:
        preset = obj.preset
        rows = [("content types", ", ".join(preset.content_types)), ("authentication", obj.auth_method),
                ("signature", preset.signature_scheme or "none"), ("replay window", preset.replay_window),
                ("idempotency key", ", ".join(preset.idempotency_paths) or "Idempotency-Key header only")]
        if preset.note:
            rows.append(("note", preset.note))
        return format_html_join("", "<div><b>{}</b>: {}</div>", rows)

    @admin.display(description="requests")
    def request_counts(self, obj: Source) -> str:
        if not obj.pk:
            return "-"
        obj = self.get_queryset(None).get(pk=obj.pk)
        return format_html_join(" · ", "{}: {}", ((name.replace("_", " "), _count(obj, name)) for name in COUNTED))

    def accepted(self, obj: Source) -> int:
        return _count(obj, "accepted")

    def duplicate(self, obj: Source) -> int:
        return _count(obj, "duplicate")

    @admin.display(description="refused (auth)")
    def refused_auth(self, obj: Source) -> int:
        return _count(obj, "refused_auth")

    def throttled(self, obj: Source) -> int:
        return _count(obj, "throttled")

    def oversize(self, obj: Source) -> int:
        return _count(obj, "oversize")

    def spam(self, obj: Source) -> int:
        return _count(obj, "spam")


def _count(source: Source, name: str) -> int:
    if name in ("accepted", "spam"):
        return getattr(source, f"n_{name}", 0)
    return next((c.count for c in source.counters.all() if c.outcome == name), 0)


@admin.register(SourceCounter)
class SourceCounterAdmin(ReadOnlyAdmin):
    list_display = ("source", "outcome", "count", "last_at", "last_reason")
    list_filter = ("outcome", "source")


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyAdmin):
    """Reviewers work from the 'rejected' filter: fix the mapping, then reprocess."""

    list_display = ("id", "received_at", "source", "status", "lead", "mapping_version", "short_reasons")
    list_filter = ("status", "source")
    list_select_related = ("source", "lead")
    date_hierarchy = "received_at"
    search_fields = ("=id", "idempotency_key")
    fields = ("source", "status", "received_at", "processed_at", "lead", "mapping_version", "reasons_pretty", "payload_pretty",
              "enrichment_pretty", "notes", "headers_pretty", "content_type", "remote_addr", "user_agent",
              "idempotency_key", "fetch_attempts", "raw_body_text")
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

    @admin.display(description="fetched data")
    def enrichment_pretty(self, obj: Submission) -> str:
        return pretty_json(obj.enrichment)

    @admin.display(description="headers (secrets removed)")
    def headers_pretty(self, obj: Submission) -> str:
        return pretty_json(obj.headers)

    @admin.display(description="raw body")
    def raw_body_text(self, obj: Submission) -> str:
        return format_html("<pre>{}</pre>", bytes(obj.raw_body).decode("utf-8", errors="replace"))
