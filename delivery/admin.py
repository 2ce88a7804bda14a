"""The delivery stage's admin: destinations with their field maps (credentials write-only,
test, preflight, create missing fields, pause, resume) and the outbox (push jobs, retry)."""

from collections import Counter

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.urls import reverse
from django.utils.html import format_html

from audit.admin_mixins import ReadOnlyAdmin, correlation_links
from core.secrets import SecretUnavailable
from delivery.connectors import connector_for
from delivery.connectors.base import ConnectorError
from delivery.fieldmap import fields_default_ensure
from delivery.models import Destination, DestinationField, PushJob, SyncCursor
from delivery.preflight import destination_fields_create, destination_preflight
from delivery.services import destination_pause, destination_resume, push_jobs_retry
from delivery.sync import poll_request

# Credentials each auth method needs: (key, label, widget). All are write-only.
CREDENTIALS = {
    Destination.Auth.PRIVATE_APP: [("token", "Private-app token")],
    Destination.Auth.OAUTH: [("client_id", "Client ID"), ("client_secret", "Client secret"), ("refresh_token", "Refresh token")],
    Destination.Auth.CLIENT_CREDENTIALS: [("client_id", "Consumer key"), ("client_secret", "Consumer secret")],
    Destination.Auth.JWT_BEARER: [("client_id", "Consumer key"), ("username", "Username"), ("private_key", "Private key (PEM)")],
    Destination.Auth.BEARER: [("token", "Bearer token")],
    Destination.Auth.NONE: [],
    Destination.Auth.HEADER: [("token", "Secret (the header's value)")],
    Destination.Auth.BASIC: [("username", "Username"), ("password", "Password")],
    Destination.Auth.OAUTH2_CLIENT_CREDENTIALS: [("client_id", "Client ID"), ("client_secret", "Client secret")],
    Destination.Auth.OAUTH2_REFRESH_TOKEN: [("client_id", "Client ID"), ("client_secret", "Client secret"),
                                            ("refresh_token", "Refresh token")],
}
SECRET_INPUTS = ("token", "client_id", "client_secret", "refresh_token", "username", "password", "private_key",
                 "signing_secret")
# Write-only as well, but not used to call the CRM: the HubSpot app's client secret that signs
# the webhooks it sends (delivery.webhooks).
WEBHOOK_SECRET = "webhook_client_secret"


class CredentialState:
    """Shows next to a write-only credential input whether one is stored ("set" or "not set"),
    never its value."""

    state = "not set"

    def render(self, name, value, attrs=None, renderer=None):
        html = super().render(name, value, attrs, renderer)
        css = self.state.replace(" ", "-")
        return format_html('{} <span class="credential-state credential-{}">{}</span>', html, css, self.state)


class CredentialInput(CredentialState, forms.PasswordInput):
    def __init__(self, attrs=None) -> None:
        super().__init__(attrs, render_value=False)


class CredentialTextarea(CredentialState, forms.Textarea):
    pass


class DestinationForm(forms.ModelForm):
    base_url = forms.URLField(assume_scheme="https", help_text=Destination._meta.get_field("base_url").help_text)
    token = forms.CharField(required=False, widget=CredentialInput,
                            help_text="Private-app or bearer token; REST custom header: the secret sent in it.")
    client_id = forms.CharField(required=False, widget=CredentialInput,
                                help_text="OAuth client ID / Salesforce consumer key.")
    client_secret = forms.CharField(required=False, widget=CredentialInput)
    refresh_token = forms.CharField(required=False, widget=CredentialInput, help_text="HubSpot OAuth, REST OAuth2 refresh token.")
    username = forms.CharField(required=False, widget=CredentialInput, help_text="Salesforce JWT bearer, REST HTTP basic.")
    password = forms.CharField(required=False, widget=CredentialInput, help_text="REST HTTP basic.")
    private_key = forms.CharField(required=False, widget=CredentialTextarea(attrs={"rows": 3}),
                                  help_text="Salesforce JWT bearer: the connected app's private key (PEM). Never shown again.")
    signing_secret = forms.CharField(required=False, widget=CredentialInput,
                                     help_text="REST: HMAC-SHA256 secret for the signature header.")
    webhook_client_secret = forms.CharField(
        required=False, widget=CredentialInput,
        help_text="Optional: your HubSpot app's client secret, which signs the webhooks it sends here. Empty: webhooks "
                  "are refused and the poller alone reads changes.")

    class Meta:
        model = Destination
        fields = ("name", "kind", "auth_method", "base_url", "api_version", "object_model", "upsert_property",
                  "company_upsert_property", "credentials_env", *SECRET_INPUTS, WEBHOOK_SECRET, "http_method", "headers",
                  "body_template", "signature_header", "rest_recipe", "rate_limit_requests", "rate_limit_window_seconds",
                  "daily_budget", "batch_size", "batch_wait_seconds", "changed_fields_only", "lookup_existing", "is_active",
                  "poll_interval_seconds", "clock_margin_seconds")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        stored = self._stored()
        unreadable = bool(self.instance.credentials_encrypted) and not stored
        for name in (*SECRET_INPUTS, WEBHOOK_SECRET):
            field = self.fields[name]
            field.widget.state = "unreadable" if unreadable else "set" if stored.get(name) else "not set"
            field.help_text = ("Stored encrypted; leave empty to keep it. " if stored.get(name) else
                               "Stored encrypted and never shown again. ") + field.help_text
        if unreadable:
            self.fields["token"].help_text += (" The stored credentials cannot be decrypted with the current "
                                               "CRMSYNC_ENCRYPTION_KEYS: enter them again.")

    def _stored(self) -> dict:
        try:
            return self.instance.stored_credentials()
        except Exception:  # noqa: BLE001 - a key rotated away: nothing usable is stored
            return {}

    def clean(self) -> dict:
        data = super().clean()
        kind, auth, model = data.get("kind"), data.get("auth_method"), data.get("object_model")
        if kind and auth and auth not in Destination.AUTH_BY_KIND[kind]:
            allowed = ", ".join(str(Destination.Auth(a).label) for a in Destination.AUTH_BY_KIND[kind])
            self.add_error("auth_method", f"A {Destination.Kind(kind).label} destination uses: {allowed}.")
        if kind and model and model not in Destination.OBJECTS_BY_KIND[kind]:
            allowed = ", ".join(str(Destination.ObjectModel(m).label) for m in Destination.OBJECTS_BY_KIND[kind])
            self.add_error("object_model", f"A {Destination.Kind(kind).label} destination writes: {allowed}.")
        if auth in CREDENTIALS and not data.get("credentials_env"):
            stored = self._stored()
            for key, label in CREDENTIALS[auth]:
                if not data.get(key) and not stored.get(key):
                    self.add_error(key, f"{label} is required for this authentication (or name an environment variable).")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            self.add_error("headers", 'Headers are a JSON object of strings, e.g. {"X-Team": "sales"}.')
        elif any(name.lower() in ("authorization", "cookie") for name in headers):
            self.add_error("headers", "Put secrets in the token or signing secret, not in plain headers.")
        if data.get("signature_header") and not (data.get("signing_secret") or self._stored().get("signing_secret")):
            self.add_error("signing_secret", "A signature header needs a signing secret.")
        return data

    def clean_rest_recipe(self) -> dict:
        # An empty box is "no recipe" (the simple POST), not a null the column refuses.
        return self.cleaned_data.get("rest_recipe") or {}

    def save(self, commit: bool = True) -> Destination:
        values = {name: self.cleaned_data.get(name, "") for name in (*SECRET_INPUTS, WEBHOOK_SECRET)}
        if any(values.values()):
            self.instance.set_credentials(values)
        return super().save(commit=commit)


class DestinationFieldInline(admin.TabularInline):
    model = DestinationField
    extra = 1
    fields = ("object", "source", "target", "value_map", "default", "direction", "rule")
    # Most lines have no value map: a two-line box keeps the table inside a 1280 px page.
    formfield_overrides = {models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 30})}}


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    form = DestinationForm
    inlines = [DestinationFieldInline]
    list_display = ("name", "kind", "object_model", "base_url", "state", "has_stored_credentials", "rate")
    list_filter = ("kind", "is_active")
    readonly_fields = ("paused_at", "paused_reason", "instance_url", "sync_status")
    actions = ["test_connection", "run_preflight", "create_missing_fields", "pause", "resume", "poll_now"]

    def get_list_display(self, request):
        return (*self.list_display, "last_poll")

    @admin.display(description="two-way sync")
    def sync_status(self, obj: Destination) -> str:
        cursor = obj.sync_cursors.filter(object=SyncCursor.Object.PRIMARY).first() if obj.pk else None
        if cursor is None:
            return "Never polled." if obj.poll_interval_seconds else "Off (interval 0)."
        offset = f"{obj.clock_offset_seconds:+.0f} s" if obj.clock_offset_seconds is not None else "not measured"
        return format_html(
            "Last poll: <span class='last-poll'>{}</span> (finished {}); watermark: <span class='watermark'>{}</span>; "
            "last poll read <span class='records-read'>{}</span> record(s) in {} call(s) and applied "
            "<span class='changes-applied'>{}</span> change(s); in all {} read, {} applied over {} poll(s); CRM clock offset "
            "{}.{}", cursor.last_started_at or "never", cursor.last_finished_at or "-", cursor.watermark or "none yet",
            cursor.last_records_read, cursor.last_calls, cursor.last_changes_applied, cursor.records_read,
            cursor.changes_applied, cursor.polls, offset,
            format_html(" <strong>Last error: {}</strong>", cursor.last_error) if cursor.last_error else "")

    @admin.display(description="last poll")
    def last_poll(self, obj: Destination) -> str:
        cursor = next(iter(obj.sync_cursors.all()), None)
        if cursor is None or cursor.last_started_at is None:
            return "-"
        return f"{cursor.last_started_at:%Y-%m-%d %H:%M:%S}" + (" (error)" if cursor.last_error else "")

    @admin.action(description="Poll now (two-way sync)")
    def poll_now(self, request, queryset) -> None:
        for destination in queryset:
            if destination.kind == Destination.Kind.REST:
                self.message_user(request, f"{destination}: REST destinations are not read back.", messages.WARNING)
                continue
            poll_request(destination=destination)
            self.message_user(request, f"{destination}: a poll is queued.", messages.SUCCESS)

    def get_fieldsets(self, request, obj=None):
        webhooks = [] if obj is not None and obj.kind != Destination.Kind.HUBSPOT else [
            ("HubSpot webhooks (optional)", {"fields": (WEBHOOK_SECRET,), "description": _webhook_guide(request, obj)})]
        return [
            (None, {"fields": ("name", "kind", "base_url", "object_model", "upsert_property", "company_upsert_property",
                               "lookup_existing", "is_active", "paused_at", "paused_reason")}),
            ("Credentials (write-only)", {"fields": ("auth_method", "credentials_env", *SECRET_INPUTS)}),
            ("Salesforce", {"fields": ("api_version", "instance_url"), "classes": ("collapse",)}),
            ("REST endpoint", {"fields": ("http_method", "headers", "body_template", "signature_header", "rest_recipe"),
                               "classes": ("collapse",)}),
            ("Pace and batching", {"fields": ("rate_limit_requests", "rate_limit_window_seconds", "daily_budget",
                                              "batch_size", "batch_wait_seconds", "changed_fields_only")}),
            ("Two-way sync", {"fields": ("poll_interval_seconds", "clock_margin_seconds", "sync_status"),
                              "description": "Fields whose direction (in the field map below) is 'from the CRM' or "
                                             "'both' are read back by a poll every interval. See the README, "
                                             "\"Two-way sync\"."}),
            *webhooks,
        ]

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        fields_default_ensure(destination=form.instance)  # a new destination starts with its kind's map

    @admin.display(description="state")
    def state(self, obj: Destination) -> str:
        if not obj.is_active:
            return "inactive"
        return f"paused: {obj.paused_reason[:80]}" if obj.is_paused else "active"

    @admin.display(boolean=True, description="stored credentials")
    def has_stored_credentials(self, obj: Destination) -> bool:
        return bool(obj.credentials_encrypted)

    @admin.display(description="rate")
    def rate(self, obj: Destination) -> str:
        return f"{obj.rate_limit_requests}/{obj.rate_limit_window_seconds}s"

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset) -> None:
        for destination in queryset:
            try:
                self.message_user(request, f"{destination}: {connector_for(destination).test_connection()}", messages.SUCCESS)
            except Exception as exc:  # noqa: BLE001 - shown to the operator, whatever went wrong
                self.message_user(request, f"{destination}: {_failure(exc)}", messages.ERROR)

    @admin.action(description="Preflight: check fields and picklist values in the CRM")
    def run_preflight(self, request, queryset) -> None:
        for destination in queryset:
            try:
                report = destination_preflight(destination=destination)
            except Exception as exc:  # noqa: BLE001
                self.message_user(request, f"{destination}: preflight failed: {_failure(exc)}", messages.ERROR)
                continue
            if report.ok:
                self.message_user(request, " ".join([f"{destination}: preflight passed.", *report.notes]), messages.SUCCESS)
            else:
                self.message_user(request, f"{destination}: " + "; ".join(report.lines()), messages.WARNING)

    @admin.action(description="Create missing HubSpot properties")
    def create_missing_fields(self, request, queryset) -> None:
        for destination in queryset:
            try:
                created = destination_fields_create(destination=destination)
            except NotImplementedError as exc:
                self.message_user(request, f"{destination}: {exc or 'this CRM takes new fields in its own setup'}", messages.ERROR)
            except Exception as exc:  # noqa: BLE001
                self.message_user(request, f"{destination}: {_failure(exc)}", messages.ERROR)
            else:
                text = ", ".join(created) if created else "nothing was missing"
                self.message_user(request, f"{destination}: created {text}.", messages.SUCCESS)

    @admin.action(description="Pause")
    def pause(self, request, queryset) -> None:
        destinations = list(queryset)
        running = [destination for destination in destinations if not destination.is_paused]
        for destination in running:
            destination_pause(destination=destination, reason=f"paused by {request.user.get_username()}")
        already = len(destinations) - len(running)
        text = f"Paused {len(running)} destination(s); their jobs wait"
        self.message_user(request, text + (f" ({already} already paused)." if already else "."), messages.SUCCESS)

    @admin.action(description="Resume")
    def resume(self, request, queryset) -> None:
        destinations = list(queryset)
        paused = sum(d.is_paused for d in destinations)
        waiting = sum(destination_resume(destination=destination) for destination in destinations)
        text = f"Resumed {paused} destination(s); {waiting} waiting job(s) are due now"
        not_paused = len(destinations) - paused
        self.message_user(request, text + (f" ({not_paused} were not paused)." if not_paused else "."), messages.SUCCESS)


def _webhook_guide(request, obj: Destination | None) -> str:
    # The receiver URL as HubSpot must call it: this server's address, from the request.
    if obj is None:
        return "Once the destination is saved, its webhook receiver URL shows here."
    url = request.build_absolute_uri(reverse("crm-webhook-hubspot", args=[obj.pk]))
    return format_html("Receiver URL: <code>{}</code>. In your HubSpot app's webhook settings, make it the target URL "
                       "(over https) and subscribe to contact property changes, deletions and merges. A signed "
                       "webhook only makes the poller read the records it names now; the poller stays the truth.", url)


def _failure(exc: Exception) -> str:
    if isinstance(exc, (ConnectorError, SecretUnavailable, NotImplementedError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@admin.register(PushJob)
class PushJobAdmin(ReadOnlyAdmin):
    """The outbox. Filter by status for the review queue (the CRM refused the record, with its
    message) and the dead letters (retries used up); "Retry now" replays them."""

    list_display = ("id", "lead", "destination", "status", "operation", "attempts", "next_attempt_at",
                    "crm_record_id", "short_error", "updated_at")
    list_filter = ("status", "destination", "last_error_code")
    list_select_related = ("lead", "destination")
    search_fields = ("=id", "lead__email", "lead__external_id", "crm_record_id", "=correlation_id")
    readonly_fields = ("lead", "destination", "status", "operation", "attempts", "next_attempt_at", "leased_until",
                       "crm_record_id", "last_error_code", "last_error", "created_at", "updated_at", "finished_at",
                       "sync_log_link", "correlation")
    fields = readonly_fields
    actions = ["retry_now"]

    def has_retry_permission(self, request) -> bool:
        # The action's own permission, so the job's page stays read-only ("View push job").
        return request.user.has_perm("delivery.change_pushjob")

    @admin.display(description="last error")
    def short_error(self, obj: PushJob) -> str:
        return obj.last_error[:120]

    @admin.display(description="correlation ID")
    def correlation(self, obj: PushJob) -> str:
        return correlation_links(obj.correlation_id)

    @admin.display(description="sync log")
    def sync_log_link(self, obj: PushJob) -> str:
        url = reverse("admin:audit_synclog_changelist") + f"?push_job__id__exact={obj.pk}"
        return format_html('<a href="{}">every call for this job</a>', url)

    @admin.action(description="Retry now / replay (review and dead letters start over)", permissions=["retry"])
    def retry_now(self, request, queryset) -> None:
        # The selection is fixed before the retry: the changelist's queryset is re-evaluated on
        # every use, and a filtered list (status = dead) no longer holds the jobs just retried.
        selected = dict(queryset.values_list("pk", "status"))
        count = push_jobs_retry(jobs=PushJob.objects.filter(pk__in=selected))
        self.message_user(request, retry_message(selected, count), messages.SUCCESS if count else messages.WARNING)


# Why push_jobs_retry leaves a job alone, by the status it had.
NOT_RETRIED = {PushJob.Status.IN_PROGRESS: "in progress", PushJob.Status.SUCCEEDED: "succeeded"}


def retry_message(selected: dict[int, str], count: int) -> str:
    """'2 job(s) queued again; 1 skipped: succeeded'. The reasons come from the statuses the
    jobs had; a job of another status that was not retried has a newer pending job."""
    skipped = max(len(selected) - count, 0)
    text = f"{count} job(s) queued again"
    if not skipped:
        return text + "."
    reasons = Counter(NOT_RETRIED[status] for status in selected.values() if status in NOT_RETRIED)
    newer = skipped - sum(reasons.values())
    if newer < 0:  # a job changed status meanwhile: the reasons read before no longer add up
        return text + f"; {skipped} skipped (in progress, succeeded, or a newer job is pending)."
    if newer:
        reasons["a newer job for the lead is pending"] = newer
    return text + f"; {skipped} skipped: " + ", ".join(f"{n} {why}" for why, n in reasons.items()) + "."
from delivery import conflicts_admin  # noqa: E402,F401 -- registers the conflict queue
