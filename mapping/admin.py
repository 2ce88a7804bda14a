import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from ingestion import admin as ingestion_admin
from ingestion.models import Source, Submission
from mapping import services
from mapping.models import DomainBlock, FieldRule, MappingSet, MappingVersion, UnmappedField
from mapping.starters import mapping_starter_create
from mapping.transforms import OPS

PUBLISH_PERMISSION = "mapping.publish_mappingset"


class FieldRuleForm(forms.ModelForm):
    transforms = forms.JSONField(
        required=False, initial=list, widget=forms.Textarea(attrs={"rows": 2, "cols": 50}),
        help_text="Steps: " + ", ".join(sorted(OPS)) + '. Example: [{"op": "trim"}, {"op": "lower"}]')

    class Meta:
        model = FieldRule
        fields = ("position", "source_keys", "target", "transforms", "required", "on_invalid", "default", "max_length")

    def clean_transforms(self) -> list:
        return self.cleaned_data.get("transforms") or []


class FieldRuleInline(admin.TabularInline):
    model = FieldRule
    form = FieldRuleForm
    extra = 1


def warn_about_drift(request, source) -> None:
    new = list(UnmappedField.objects.filter(source=source, acknowledged=False).values_list("name", flat=True)[:20])
    if new:
        messages.warning(request, f"{source.name} sends fields its mapping does not use: {', '.join(new)}. "
                                  "Map them (an alias if a field was renamed) or acknowledge them under Unmapped fields.")


class SourceAdmin(ingestion_admin.SourceAdmin):
    """The source page, with what the mapping stage adds: a starter mapping for a new source,
    and a warning about fields its mapping does not use."""

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change and not obj.mapping_sets.exists():
            mapping_set = mapping_starter_create(source=obj, user=request.user)
            messages.info(request, f"Created and published a starter mapping, '{mapping_set}': add your form's field "
                                   "names as aliases there.")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        source = self.get_object(request, object_id)
        if source and request.method == "GET":
            warn_about_drift(request, source)
        return super().change_view(request, object_id, form_url, extra_context)


admin.site.unregister(Source)
admin.site.register(Source, SourceAdmin)


@admin.register(MappingSet)
class MappingSetAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "is_active", "published", "updated_at", "actions_links")
    list_filter = ("is_active", "source")
    list_select_related = ("source", "published")
    inlines = [FieldRuleInline]
    fields = ("source", "name", "is_active", "shape", "default_region", "timezone", "published_summary")
    readonly_fields = ("published_summary",)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/publish/", wrap(self.publish_view), name="mapping_mappingset_publish"),
            path("<int:pk>/preview/", wrap(self.preview_view), name="mapping_mappingset_preview"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        mapping_set = self.get_object(request, object_id)
        if mapping_set and request.method == "GET":
            warn_about_drift(request, mapping_set.source)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="")
    def actions_links(self, obj: MappingSet) -> str:
        return format_html('<a href="{}">test</a> · <a href="{}">publish</a>',
                           reverse("admin:mapping_mappingset_preview", args=[obj.pk]),
                           reverse("admin:mapping_mappingset_publish", args=[obj.pk]))

    @admin.display(description="published version")
    def published_summary(self, obj: MappingSet) -> str:
        if not obj.pk:
            return "-"
        version = obj.published
        label = f"v{version.number} ({version.published_at:%Y-%m-%d %H:%M})" if version else "not published yet"
        return format_html('{} · <a href="{}">test this mapping</a> · <a href="{}">publish the draft</a> · <a href="{}">history</a>',
                           label, reverse("admin:mapping_mappingset_preview", args=[obj.pk]),
                           reverse("admin:mapping_mappingset_publish", args=[obj.pk]),
                           reverse("admin:mapping_mappingversion_changelist") + f"?mapping_set__id__exact={obj.pk}")

    def publish_view(self, request, pk: int):
        if not request.user.has_perm(PUBLISH_PERMISSION):
            raise PermissionDenied
        mapping_set = get_object_or_404(MappingSet, pk=pk)
        problems = services.mapping_config_check(mapping_set=mapping_set)
        if request.method == "POST" and not problems:
            version = services.mapping_publish(mapping_set=mapping_set, user=request.user, note=request.POST.get("note", ""))
            messages.success(request, f"Published {version}. New submissions use it from now on.")
            return redirect("admin:mapping_mappingset_change", pk)
        before = mapping_set.published.config if mapping_set.published else {}
        diff = services.mapping_diff(old=before, new=services.mapping_config_draft(mapping_set=mapping_set))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": f"Publish {mapping_set}",
                   "mapping_set": mapping_set, "diff": diff, "problems": problems}
        return TemplateResponse(request, "admin/mapping/publish.html", context)

    def preview_view(self, request, pk: int):
        mapping_set = get_object_or_404(MappingSet, pk=pk)
        form = PreviewForm(request.POST or None, source=mapping_set.source)
        preview = None
        if request.method == "POST" and form.is_valid():
            preview = services.mapping_preview(mapping_set=mapping_set, payload=form.cleaned_data["payload_object"],
                                               enrichment=form.cleaned_data["enrichment"])
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": f"Test {mapping_set}",
                   "mapping_set": mapping_set, "form": form, "preview": preview,
                   "fields_json": json.dumps(preview.fields, indent=2, ensure_ascii=False, default=str) if preview else ""}
        return TemplateResponse(request, "admin/mapping/preview.html", context)


class PreviewForm(forms.Form):
    submission = forms.ModelChoiceField(queryset=Submission.objects.none(), required=False,
                                        help_text="A past submission of this source...")
    payload = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10, "cols": 80}),
                              help_text="...or paste a JSON payload.")

    def __init__(self, *args, source, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["submission"].queryset = Submission.objects.filter(source=source).order_by("-received_at")[:200]

    def clean(self) -> dict:
        data = super().clean()
        data["enrichment"] = {}
        if data.get("payload"):
            try:
                data["payload_object"] = json.loads(data["payload"])
            except json.JSONDecodeError as exc:
                raise ValidationError({"payload": f"Not valid JSON: {exc}"}) from exc
            if not isinstance(data["payload_object"], dict):
                raise ValidationError({"payload": "The payload must be a JSON object."})
        elif data.get("submission"):
            data["payload_object"] = data["submission"].payload
            data["enrichment"] = data["submission"].enrichment
        else:
            raise ValidationError("Pick a submission or paste a payload.")
        return data


@admin.register(MappingVersion)
class MappingVersionAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "number", "published_at", "published_by", "note", "in_use")
    list_filter = ("mapping_set",)
    fields = ("mapping_set", "number", "published_at", "published_by", "note", "diff_to_previous", "config_pretty")
    readonly_fields = fields
    actions = ["rollback"]

    @admin.display(boolean=True, description="in use")
    def in_use(self, obj: MappingVersion) -> bool:
        return obj.mapping_set.published_id == obj.pk

    @admin.display(description="configuration")
    def config_pretty(self, obj: MappingVersion) -> str:
        return pretty_json(obj.config)

    @admin.display(description="changes from the previous version")
    def diff_to_previous(self, obj: MappingVersion) -> str:
        previous = obj.mapping_set.versions.filter(number__lt=obj.number).first()
        lines = services.mapping_diff(old=previous.config if previous else {}, new=obj.config)
        return format_html("<pre>{}</pre>", "\n".join(lines) or "(no changes)")

    @admin.action(description="Roll back to this version (publishes it again)", permissions=["publish"])
    def rollback(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Pick exactly one version.", messages.ERROR)
            return
        version = services.mapping_rollback(version=queryset.get(), user=request.user)
        self.message_user(request, f"Published {version} with the configuration of v{queryset.get().number}.")

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm(PUBLISH_PERMISSION)


@admin.register(UnmappedField)
class UnmappedFieldAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "count", "first_seen", "last_seen", "sample", "acknowledged")
    list_filter = ("acknowledged", "source")
    readonly_fields = ("source", "name", "count", "first_seen", "last_seen", "sample")
    actions = ["acknowledge"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Acknowledge (stop warning about them)", permissions=["change"])
    def acknowledge(self, request, queryset) -> None:
        self.message_user(request, f"Acknowledged {queryset.update(acknowledged=True)} fields.")


@admin.register(DomainBlock)
class DomainBlockAdmin(admin.ModelAdmin):
    list_display = ("domain", "reason")
    search_fields = ("domain",)
