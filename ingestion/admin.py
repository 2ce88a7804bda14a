import json
import shlex

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import escape, format_html, format_html_join

from audit.admin_mixins import ReadOnlyAdmin, correlation_links, pretty_json
from ingestion.credentials import source_secret_add
from ingestion.models import Source, SourceCounter, SourceSecret, Submission, SubmissionCorrection
from ingestion.presets import FORM, MULTIPART, Auth
from ingestion.review import value_text
from ingestion.services import API_KEY_HEADER

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
    # The intake URL is in the "Send leads here" box (templates/admin/ingestion/source/change_form.html).
    readonly_fields = ("preset_summary", "request_counts")
    fieldsets = (
        (None, {"fields": ("name", "slug", "kind", "auth", "is_active", "preset_summary", "request_counts")}),
        ("Limits", {"fields": ("max_body_bytes",)}),
        ("Public web form", {"fields": ("allowed_origins", "honeypot_field", "idempotency_field", "success_url",
                                        "error_url", "ip_limit_per_minute", "source_limit_per_minute")}),
        ("Generic HMAC", {"classes": ("collapse",), "fields": ("hmac_header", "hmac_algorithm", "hmac_encoding", "hmac_prefix",
                                                               "hmac_timestamp_header", "hmac_window_seconds")}),
        ("Meta Lead Ads", {"classes": ("collapse",), "fields": ("graph_base_url",)}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        # The admin prints help text as HTML; ours is plain text that shows placeholders
        # like ?error=<code>, which would otherwise open a tag and restyle the whole page.
        if formfield is not None:
            formfield.help_text = escape(formfield.help_text)
        return formfield

    def change_view(self, request, object_id, form_url="", extra_context=None):
        source = self.get_object(request, object_id)
        if source is not None:
            extra_context = {**(extra_context or {}), "intake": intake_guide(request, source)}
        return super().change_view(request, object_id, form_url, extra_context)

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


# --- The "Send leads here" box of the source page -------------------------------------------

SAMPLE_FIELDS = {"email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}
SIGNED_BY_PROVIDER = ("Paste this URL as the webhook endpoint in {provider}, and add the signing secret {provider} "
                      "shows you under Source secrets below: {provider} signs every delivery, and unsigned requests "
                      "are refused (401).")


def intake_guide(request: HttpRequest, source: Source) -> dict:
    """What the source page shows a person wiring a sender to this source: the full intake URL
    as the sender must call it (from the request, so it is this server's address), ready
    snippets for its kind, and where its mapping is."""
    url = request.build_absolute_uri(source.intake_path)
    guide = {"url": url, "mapping": _mapping_links(source), "note": "", "curl": "", "html": ""}
    method = source.auth_method
    if method == Auth.SIGNATURE:
        guide["note"] = SIGNED_BY_PROVIDER.format(provider=source.preset.label)
        if source.kind == "meta_lead_ads":
            guide["note"] += (" Meta first checks the URL with a GET: give it the Meta verify token you add below.")
    elif method == Auth.GENERIC_HMAC:
        guide["curl"] = _curl_hmac(source, url)
    else:
        guide["curl"] = _curl(source, url)
    if method == Auth.NONE:
        guide["html"] = _html_form(source, url)
    return guide


def _mapping_links(source: Source) -> list[tuple[str, str]]:
    # By URL name and the reverse relation: the mapping stage comes after this one, so nothing
    # of it is imported here.
    links = []
    active = source.mapping_sets.filter(is_active=True).first()
    if active is not None:
        links.append((f"{active} (the active mapping)", reverse("admin:mapping_mappingset_change", args=[active.pk])))
    changelist = reverse("admin:mapping_mappingset_changelist") + f"?source__id__exact={source.pk}"
    links.append(("every mapping of this source", changelist))
    return links


def _curl(source: Source, url: str) -> str:
    lines = [f"curl -X POST {shlex.quote(_with_token(source, url))}"]
    if source.auth_method == Auth.API_KEY:
        lines.append(f"-H {shlex.quote(API_KEY_HEADER + ': <your API key>')}")
    if source.auth_method == Auth.NONE and source.origins:
        lines.append(f"-H {shlex.quote('Origin: ' + source.origins[0])}")
    lines.append("-H 'Idempotency-Key: <a key unique to this lead, e.g. your record ID>'")
    lines.extend(_body_arguments(source))
    return " \\\n  ".join(lines)


def _curl_hmac(source: Source, url: str) -> str:
    options = source.hmac_options()
    timed = bool(options.timestamp_header)
    digest = (f"openssl dgst -{options.algorithm} -hmac \"$SECRET\" -binary | openssl base64 -A"
              if options.encoding == "base64" else f"openssl dgst -{options.algorithm} -hmac \"$SECRET\" | sed 's/^.*= //'")
    message = '"$ts.$body"' if timed else '"$body"'
    lines = ["SECRET='<the signing secret>'", f"body={shlex.quote(json.dumps(SAMPLE_FIELDS))}"]
    if timed:
        lines.append("ts=$(date +%s)")
    lines.append(f"sig=$(printf '%s' {message} | {digest})")
    curl = [f"curl -X POST {shlex.quote(url)}", "-H 'Content-Type: application/json'",
            f'-H "{options.header}: {options.prefix}$sig"']
    if timed:
        curl.append(f'-H "{options.timestamp_header}: $ts"')
    curl.append('--data-binary "$body"')
    return "\n".join(lines) + "\n" + " \\\n  ".join(curl)


def _with_token(source: Source, url: str) -> str:
    return f"{url}?token=<your URL token>" if source.auth_method == Auth.URL_TOKEN else url


def _body_arguments(source: Source) -> list[str]:
    content_type = source.preset.content_types[0]
    if content_type in FORM + MULTIPART:
        flag = "-F" if content_type in MULTIPART else "--data-urlencode"
        return [f"{flag} {shlex.quote(f'{name}={value}')}" for name, value in SAMPLE_FIELDS.items()]
    return ["-H 'Content-Type: application/json'", f"--data {shlex.quote(json.dumps(SAMPLE_FIELDS))}"]


def _html_form(source: Source, url: str) -> str:
    lines = [f'<form action="{escape(url)}" method="post">',
             '  <input type="email" name="email" required>',
             '  <input type="text" name="first_name">']
    if source.idempotency_field:
        lines += ["  <!-- A key made when the page loads: a double click or a resent form makes no second lead. -->",
                  f'  <input type="hidden" name="{escape(source.idempotency_field)}">',
                  "  <script>document.currentScript.previousElementSibling.value = self.crypto && crypto.randomUUID"
                  " ? crypto.randomUUID() : Date.now() + '-' + Math.random().toString(36).slice(2);</script>"]
    if source.honeypot_field:
        lines += ["  <!-- Hidden from people; a bot that fills it in is kept as spam, not as a lead. -->",
                  f'  <input type="text" name="{escape(source.honeypot_field)}" tabindex="-1" autocomplete="off" '
                  'aria-hidden="true" style="position:absolute; left:-9999px">']
    lines += ['  <button type="submit">Send</button>', "</form>"]
    return "\n".join(lines)


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
    search_fields = ("=id", "idempotency_key", "=correlation_id")
    fields = ("source", "status", "received_at", "processed_at", "lead", "mapping_version", "correlation", "reasons_pretty",
              "dismissed_reason", "corrections_table", "overrides_pretty", "payload_pretty", "enrichment_pretty",
              "notes", "headers_pretty", "content_type", "remote_addr", "user_agent", "idempotency_key",
              "fetch_attempts", "raw_body_text")
    readonly_fields = fields

    @admin.display(description="reasons")
    def short_reasons(self, obj: Submission) -> str:
        if obj.status == Submission.Status.DISMISSED:
            return f"dismissed: {obj.dismissed_reason}"
        return "; ".join(r.get("message", "") for r in obj.reasons)

    @admin.display(description="correlation ID")
    def correlation(self, obj: Submission) -> str:
        return correlation_links(obj.correlation_id)

    @admin.display(description="corrections")
    def corrections_table(self, obj: Submission) -> str:
        # Shown here rather than as an inline: a reviewer needs no permission on the
        # correction model to see who changed what.
        rows = [(c.created_at.strftime("%Y-%m-%d %H:%M:%S"), c.actor or "—", c.get_action_display(),
                 _changes_text(c.changes), c.note or "—") for c in obj.corrections.select_related("actor")]
        if not rows:
            return "—"
        head = format_html_join("", "<th>{}</th>", ((label,) for label in ("when", "who", "what", "changes", "note")))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html('<table class="corrections"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, body)

    @admin.display(description="corrected fields (read over the payload)")
    def overrides_pretty(self, obj: Submission) -> str:
        return pretty_json(obj.field_overrides) if obj.field_overrides else "—"

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


def _changes_text(changes: dict) -> str:
    return "; ".join(f"{name}: {value_text(old) or '(empty)'} → {value_text(new) or '(empty)'}"
                     for name, (old, new) in changes.items()) or "—"


@admin.register(SubmissionCorrection)
class SubmissionCorrectionAdmin(ReadOnlyAdmin):
    """Every reviewer correction and dismissal, for an audit across submissions."""

    list_display = ("created_at", "submission", "action", "actor", "note")
    list_filter = ("action",)
    list_select_related = ("submission__source", "actor")
    fields = ("submission", "action", "changes_text", "note", "actor", "created_at")
    readonly_fields = fields

    @admin.display(description="changes")
    def changes_text(self, obj: SubmissionCorrection) -> str:
        return _changes_text(obj.changes)
