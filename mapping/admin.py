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
from mapping import samples, selectors, services
from mapping.models import DomainBlock, FieldPresence, FieldRule, MappingSet, MappingVersion, UnmappedField
from mapping.starters import mapping_starter_create
from mapping.transforms import OPS

PUBLISH_PERMISSION = "mapping.publish_mappingset"
PREVIEW_CHOICES = 200  # past submissions offered in "Test this mapping"
DRIFT_NAMES_SHOWN = 20


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
    """The source's drift as warnings: fields it sends that the mapping does not use, and
    mapped fields it stopped sending."""
    for drift in selectors.drift_summary(source_id=source.pk):
        if drift.new_unmapped or drift.unmapped_left_out:
            messages.warning(request, _new_fields_warning(drift))
        if drift.stopped_arriving:
            messages.warning(request, _stopped_warning(drift))


def _new_fields_warning(drift) -> str:
    shown = ", ".join(drift.new_unmapped[:DRIFT_NAMES_SHOWN])
    more = drift.new_unmapped_count - DRIFT_NAMES_SHOWN
    text = f"{drift.name} sends fields its mapping does not use: {shown}{f' and {more} more' if more > 0 else ''}. "
    if drift.unmapped_left_out:
        text += (f"{drift.unmapped_left_out} more unmapped field names were not recorded (at most "
                 f"{services.DRIFT_NEW_PER_SUBMISSION} new ones per submission and {services.DRIFT_KEPT_PER_SOURCE} "
                 "per source are kept). ")
    url = reverse("admin:mapping_unmappedfield_changelist") + f"?source__id__exact={drift.source_id}&acknowledged__exact=0"
    mapping_id = MappingSet.objects.filter(source_id=drift.source_id, is_active=True).values_list("pk", flat=True).first()
    if mapping_id is None:
        return format_html('{}Acknowledge them under <a href="{}">Unmapped fields</a>.', text, url)
    sample = reverse("admin:mapping_mappingset_from_sample", args=[mapping_id])
    return format_html('{}Map them (<a href="{}">from a sample</a>; an alias if a field was renamed) or acknowledge them '
                       'under <a href="{}">Unmapped fields</a>.', text, sample, url)


def _stopped_warning(drift) -> str:
    url = reverse("admin:mapping_fieldpresence_changelist") + f"?source__id__exact={drift.source_id}&stopped=yes"
    return format_html(
        "{} stopped sending fields its mapping uses: {}. Each was in at least {}% of {} submissions, then missing "
        "from the last {} in a row: if it was renamed on the form, its value now reaches the CRM empty. Map the new "
        'name (an alias) or, if it was removed on purpose, dismiss it under <a href="{}">Field presence</a>.',
        drift.name, ", ".join(drift.stopped_arriving), round(services.PRESENT_SHARE * 100), services.HISTORY,
        services.STOPPED_AFTER, url)


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
            path("<int:pk>/from-sample/", wrap(self.from_sample_view), name="mapping_mappingset_from_sample"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        mapping_set = self.get_object(request, object_id)
        if mapping_set and request.method == "GET":
            warn_about_drift(request, mapping_set.source)
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="")
    def actions_links(self, obj: MappingSet) -> str:
        return format_html('<a href="{}">map from a sample</a> · <a href="{}">test</a> · <a href="{}">publish</a>',
                           reverse("admin:mapping_mappingset_from_sample", args=[obj.pk]),
                           reverse("admin:mapping_mappingset_preview", args=[obj.pk]),
                           reverse("admin:mapping_mappingset_publish", args=[obj.pk]))

    @admin.display(description="published version")
    def published_summary(self, obj: MappingSet) -> str:
        if not obj.pk:
            return "-"
        version = obj.published
        label = f"v{version.number} ({version.published_at:%Y-%m-%d %H:%M})" if version else "not published yet"
        return format_html('{} · <a href="{}">map from a sample</a> · <a href="{}">test this mapping</a> · '
                           '<a href="{}">publish the draft</a> · <a href="{}">history</a> · '
                           '<a href="{}">its source, {}</a>',
                           label, reverse("admin:mapping_mappingset_from_sample", args=[obj.pk]),
                           reverse("admin:mapping_mappingset_preview", args=[obj.pk]),
                           reverse("admin:mapping_mappingset_publish", args=[obj.pk]),
                           reverse("admin:mapping_mappingversion_changelist") + f"?mapping_set__id__exact={obj.pk}",
                           reverse("admin:ingestion_source_change", args=[obj.source_id]), obj.source.name)

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
        form = PreviewForm(request.POST or None, source=mapping_set.source,
                           initial={"submission": request.GET.get("submission")})
        preview = None
        if request.method == "POST" and form.is_valid():
            preview = services.mapping_preview(mapping_set=mapping_set, payload=form.cleaned_data["payload_object"],
                                               enrichment=form.cleaned_data["enrichment"],
                                               overrides=form.cleaned_data["overrides"])
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": f"Test {mapping_set}",
                   "mapping_set": mapping_set, "form": form, "preview": preview,
                   "fields_json": json.dumps(preview.fields, indent=2, ensure_ascii=False, default=str) if preview else ""}
        return TemplateResponse(request, "admin/mapping/preview.html", context)

    def from_sample_view(self, request, pk: int):
        """Pick a received submission, choose a target for each of its fields, and the choices
        become draft rules (aliases of the rules that have the target)."""
        mapping_set = get_object_or_404(MappingSet.objects.select_related("source"), pk=pk)
        if not self.has_change_permission(request, mapping_set):
            raise PermissionDenied
        pick = SamplePickForm(request.GET or None, source=mapping_set.source)
        submission = pick.cleaned_data["submission"] if pick.is_valid() else None
        form = None
        if submission is not None:
            fields = samples.sample_fields(mapping_set=mapping_set, submission=submission)
            data = request.POST if request.method == "POST" else None  # an empty POST still is an answer
            form = SampleForm(data, sample=fields, suggest="suggest" in request.GET)
            if request.method == "POST" and form.is_valid():
                try:
                    changes = samples.rules_from_sample(mapping_set=mapping_set, choices=form.choices())
                except ValidationError as exc:
                    form.add_name_errors(exc.message_dict)
                else:
                    messages.success(request, f"Added to the draft of {mapping_set}: {'; '.join(changes)}. Test it "
                                              "on this submission below, then publish it.")
                    preview = reverse("admin:mapping_mappingset_preview", args=[pk])
                    return redirect(f"{preview}?submission={submission.pk}")
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": f"Map {mapping_set} from a sample", "mapping_set": mapping_set, "pick": pick,
                   "submission": submission, "form": form}
        return TemplateResponse(request, "admin/mapping/from_sample.html", context)


def submission_field(field: forms.ModelChoiceField, source) -> None:
    """Offer the source's latest submissions, and accept any of its submissions: a sliced
    queryset cannot be filtered again, so validating against one refused every choice."""
    field.queryset = Submission.objects.filter(source=source).select_related("source")
    latest = field.queryset.order_by("-received_at")[:PREVIEW_CHOICES]
    field.widget.choices = [("", "---------"), *((s.pk, str(s)) for s in latest)]


class SamplePickForm(forms.Form):
    submission = forms.ModelChoiceField(queryset=Submission.objects.none(),
                                        help_text="A submission this source sent, to map its fields from.")

    def __init__(self, *args, source, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        submission_field(self.fields["submission"], source)


class SampleForm(forms.Form):
    """One target per field of the sample that no rule reads yet; 'ignore' unless asked to
    start from the suggestions."""

    def __init__(self, *args, sample: list[samples.SampleField], suggest: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sample = sample
        for number, item in enumerate(sample):
            if not item.mapped_to:
                self.fields[f"field_{number}"] = forms.ChoiceField(
                    label=item.name, required=False, choices=samples.target_choices(item.name),
                    initial=item.suggestion if suggest else "")

    def rows(self) -> list[tuple[samples.SampleField, forms.BoundField | None]]:
        return [(item, self[f"field_{n}"] if f"field_{n}" in self.fields else None) for n, item in enumerate(self.sample)]

    def clean(self) -> dict:
        data = super().clean()
        for number, item in enumerate(self.sample):
            if data.get(f"field_{number}") and (problem := samples.name_error(item.name)):
                self.add_error(f"field_{number}", problem)
        if not self.errors and not self.choices():
            raise ValidationError("Choose a target for at least one field.")
        return data

    def choices(self) -> list[tuple[str, str]]:
        return [(item.name, target) for n, item in enumerate(self.sample)
                if (target := self.cleaned_data.get(f"field_{n}"))]

    def add_name_errors(self, errors: dict[str, list[str]]) -> None:
        numbers = {item.name: n for n, item in enumerate(self.sample)}
        for name, problems in errors.items():
            for problem in problems:
                self.add_error(f"field_{numbers[name]}" if name in numbers else None, problem)


class PreviewForm(forms.Form):
    submission = forms.ModelChoiceField(queryset=Submission.objects.none(), required=False,
                                        help_text="A past submission of this source...")
    payload = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 10, "cols": 80}),
                              help_text="...or paste a JSON payload.")

    def __init__(self, *args, source, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        submission_field(self.fields["submission"], source)

    def clean(self) -> dict:
        data = super().clean()
        data["enrichment"], data["overrides"] = {}, {}
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
            data["overrides"] = data["submission"].field_overrides
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
        count = services.drift_acknowledge(unmapped_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Acknowledged {count} fields.")


class StoppedFilter(admin.SimpleListFilter):
    title = "stopped arriving"
    parameter_name = "stopped"

    def lookups(self, request, model_admin):
        return [("yes", "Stopped arriving"), ("no", "Arriving")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(stopped_at__isnull=self.value() == "no")
        return queryset


@admin.register(FieldPresence)
class FieldPresenceAdmin(admin.ModelAdmin):
    """The mapped fields each source sends, and whether one stopped arriving. Counters only:
    nothing here is edited by hand, except dismissing a warning."""

    list_display = ("name", "source", "seen", "misses_in_a_row", "stopped_at")
    list_filter = (StoppedFilter, "source")
    readonly_fields = ("source", "name", "seen", "last_seen_at", "misses_in_a_row", "recent", "stopped_at")
    actions = ["dismiss"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Dismiss (the field was removed on purpose)", permissions=["change"])
    def dismiss(self, request, queryset) -> None:
        count = services.presence_dismiss(presence_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Dismissed {count} stopped fields.")


@admin.register(DomainBlock)
class DomainBlockAdmin(admin.ModelAdmin):
    list_display = ("domain", "reason")
    search_fields = ("domain",)
