"""Alerts in the admin: rules and channels RevOps edit, the alerts page (firing and past
episodes with their evidence, acknowledge), every notification attempt, and the dashboard."""

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import Case, IntegerField, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from monitoring.models import Alert, AlertRule, Channel, Notification, NotificationAttempt
from monitoring.services import alert_acknowledge


def _https_urls(db_field, **kwargs):
    # A URL typed without a scheme is taken as https:// (Django 6's default, chosen now).
    if isinstance(db_field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return db_field.formfield(**kwargs)


class ChannelForm(forms.ModelForm):
    secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Webhook: the signing secret (stored encrypted, never shown again; empty keeps the current one).")

    class Meta:
        model = Channel
        fields = ["name", "kind", "recipients", "url", "signature_header", "secret", "enabled"]
        formfield_callback = _https_urls

    def clean(self):
        # A "signed" webhook without a secret would send unsigned bodies its receiver cannot verify.
        cleaned = super().clean()
        if cleaned.get("kind") == Channel.Kind.WEBHOOK and not cleaned.get("secret") and not self.instance.secret_encrypted:
            self.add_error("secret", "A signed webhook needs the secret its receiver checks the signature with.")
        return cleaned

    def save(self, commit=True):
        channel = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            channel.set_secret(self.cleaned_data["secret"])
        if commit:
            channel.save()
        return channel


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ("name", "kind", "enabled", "secret_state", "last_failure")
    list_filter = ("kind", "enabled")
    readonly_fields = ("recent_notifications",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.URLField):
            kwargs["assume_scheme"] = "https"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description="Signing secret")
    def secret_state(self, obj: Channel) -> str:
        return "set" if obj.secret_encrypted else ("not set" if obj.kind == Channel.Kind.WEBHOOK else "")

    @admin.display(description="Last failed attempt")
    def last_failure(self, obj: Channel) -> str:
        failed = NotificationAttempt.objects.filter(notification__channel=obj, ok=False).order_by("-attempted_at").first()
        if failed is None:
            return "-"
        return format_html('<span style="color: var(--error-fg)">{}: {}</span>',
                           f"{timezone.localtime(failed.attempted_at):%Y-%m-%d %H:%M}", failed.error[:120])

    @admin.display(description="Recent notifications")
    def recent_notifications(self, obj: Channel) -> str:
        url = reverse("admin:monitoring_notification_changelist") + f"?channel__id__exact={obj.pk}"
        return format_html('<a href="{}">Every message sent through this channel and how it went</a>', url)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "threshold", "window_minutes", "severity", "enabled", "channel_names", "state_now")
    list_filter = ("enabled", "severity", "kind")
    list_editable = ("enabled",)
    filter_horizontal = ("channels",)
    readonly_fields = ("last_evaluated_at", "last_error")

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("channels")

    @admin.display(description="Channels")
    def channel_names(self, obj: AlertRule) -> str:
        return ", ".join(channel.name for channel in obj.channels.all()) or "- (alerts page only)"

    @admin.display(description="Now")
    def state_now(self, obj: AlertRule) -> str:
        alert = obj.alerts.exclude(state=Alert.State.RESOLVED).first()
        if obj.last_error:
            return format_html('<span style="color: var(--error-fg)">evaluation failed</span>')
        if alert is None:
            return "ok"
        url = reverse("admin:monitoring_alert_change", args=[alert.pk])
        return format_html('<a href="{}"><strong>{}</strong></a>', url, alert.get_state_display().lower())


class NotificationInline(admin.TabularInline):
    model = Notification
    extra = 0
    can_delete = False
    fields = ("event", "channel", "status", "attempts", "http_status", "last_error", "sent_at", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class OpenFirst(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "Firing or acknowledged"), *Alert.State.choices]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.exclude(state=Alert.State.RESOLVED)
        if self.value():
            return queryset.filter(state=self.value())
        return queryset


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ("state_badge", "what", "started_at", "duration", "evidence_link")
    list_filter = (OpenFirst, "severity", "rule")
    list_select_related = ("rule",)
    actions = ["acknowledge"]
    inlines = [NotificationInline]
    fields = ("rule", "state", "severity", "summary", "evidence_pretty", "open_link", "started_at", "last_seen_at",
              "acknowledged_at", "acknowledged_by", "reminded_at", "resolved_at")
    readonly_fields = fields

    def get_queryset(self, request):
        # Firing first, then acknowledged, then the past; newest first within each.
        rank = Case(When(state=Alert.State.FIRING, then=Value(0)), When(state=Alert.State.ACKNOWLEDGED, then=Value(1)),
                    default=Value(2), output_field=IntegerField())
        return super().get_queryset(request).annotate(rank=rank).order_by("rank", "-started_at", "-id")

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or request.user.has_perm("monitoring.acknowledge_alert")

    @admin.display(description="State", ordering="rank")
    def state_badge(self, obj: Alert) -> str:
        colours = {Alert.State.FIRING: "var(--error-fg)", Alert.State.ACKNOWLEDGED: "#b36b00",
                   Alert.State.RESOLVED: "var(--body-quiet-color)"}
        return format_html('<strong class="alert-state alert-{}" style="color: {}">{}</strong><br>{}', obj.state,
                           colours[obj.state], obj.get_state_display(), obj.get_severity_display().lower())

    @admin.display(description="Alert", ordering="rule__name")
    def what(self, obj: Alert) -> str:
        return format_html('<span style="display: inline-block; min-width: 16em; white-space: normal"><strong>{}</strong>'
                           '<br>{}</span>', obj.rule.name, obj.summary)

    @admin.display(description="For")
    def duration(self, obj: Alert) -> str:
        end = obj.resolved_at or timezone.now()
        minutes = int((end - obj.started_at).total_seconds() // 60)
        return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"

    @admin.display(description="List")
    def evidence_link(self, obj: Alert) -> str:
        return format_html('<a href="{}">open the list</a>', obj.link) if obj.link else "-"

    @admin.display(description="Evidence (the numbers that tripped it, as last checked)")
    def evidence_pretty(self, obj: Alert) -> str:
        return pretty_json(obj.evidence)

    @admin.display(description="What it is about")
    def open_link(self, obj: Alert) -> str:
        return format_html('<a href="{}">{}</a>', obj.link, obj.link) if obj.link else "-"

    @admin.action(description="Acknowledge: someone is on it (no more reminders)", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        count = alert_acknowledge(alert_ids=list(queryset.values_list("pk", flat=True)), user=request.user)
        skipped = queryset.count() - count
        note = f"; {skipped} not firing left as they were" if skipped else ""
        self.message_user(request, f"Acknowledged {count} alert(s){note}.", messages.SUCCESS if count else messages.WARNING)

    def has_acknowledge_permission(self, request) -> bool:
        return request.user.has_perm("monitoring.acknowledge_alert")


class AttemptInline(admin.TabularInline):
    model = NotificationAttempt
    extra = 0
    can_delete = False
    fields = ("attempted_at", "ok", "http_status", "error", "duration_ms")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event", "alert", "channel", "status", "attempts", "http_status", "last_error")
    list_filter = ("status", "event", "channel")
    list_select_related = ("alert__rule", "channel")
    inlines = [AttemptInline]
