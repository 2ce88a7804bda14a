"""The admin pages whose actions span stages, so they call the pipeline: the lead (its history
across submissions, decisions, push jobs and the sync log; merge and re-evaluate) and the
reviewer's work on a submission (reprocess, correct and reprocess, dismiss). Each stage's own
pages live in that stage's admin module."""


from collections import Counter
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html_join

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from audit.models import SyncLog
from crmsync import timeline
from crmsync.pipeline import (
    Corrected,
    ReprocessReport,
    leads_merge,
    leads_reevaluate,
    submission_correct_and_reprocess,
    submission_fields,
    submissions_reprocess,
)
from delivery.models import PushJob
from ingestion import admin as ingestion_admin
from ingestion.models import Submission
from ingestion.review import MAX_NAME_LENGTH, MAX_VALUE_LENGTH, submission_dismiss, submissions_dismiss, value_text
from leads.models import Lead, LeadDecision, LeadIdentity
from leads.services import MergeError


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LeadDecisionInline(ReadOnlyInline):
    """Every match, merge, CRM adoption, stage change and assignment, newest first."""

    model = LeadDecision
    fk_name = "lead"
    fields = ("created_at", "action", "matched_by", "detail", "changes_pretty", "submission", "actor")
    readonly_fields = fields
    verbose_name_plural = "decisions"

    @admin.display(description="changes")
    def changes_pretty(self, obj: LeadDecision) -> str:
        return pretty_json(obj.changes) if obj.changes else "—"


class LeadIdentityInline(ReadOnlyInline):
    model = LeadIdentity
    fields = ("kind", "value", "created_at")
    readonly_fields = fields
    verbose_name_plural = "other keys (source record IDs, other email addresses)"


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdmin):
    """Read-only: a lead changes only through the pipeline (which also queues its push) or a
    reviewer's merge. An edit here would silently diverge from the CRM."""

    list_display = ("email", "first_name", "last_name", "company", "country", "lifecycle_stage", "owner", "merged",
                    "updated_at")
    list_filter = ("lifecycle_stage", "team", ("merged_into", admin.EmptyFieldListFilter))
    search_fields = ("email", "external_id", "last_name", "company", "identities__value")
    list_select_related = ("owner",)
    fieldsets = [
        (None, {"fields": ("external_id", "email", "first_name", "last_name", "phone", "company", "country",
                           "company_record", "attributes_pretty", "merged_into", "merged_leads_links",
                           "created_at", "updated_at", "history_links")}),
        ("Lifecycle and owner", {"fields": ("lifecycle_stage", "score", "team", "owner")}),
        ("Attribution", {"fields": ("first_touch_pretty", "last_touch_pretty")}),
        ("Consent", {"fields": ("marketing_opt_in", "consent_at", "consent_text", "consent_source")}),
    ]
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    inlines = [LeadIdentityInline, LeadDecisionInline]
    actions = ["merge_leads", "reevaluate_leads"]

    @admin.display(description="attributes")
    def attributes_pretty(self, obj: Lead) -> str:
        return pretty_json(obj.attributes)

    @admin.display(description="first touch")
    def first_touch_pretty(self, obj: Lead) -> str:
        return pretty_json(obj.first_touch) if obj.first_touch else "—"

    @admin.display(description="last touch")
    def last_touch_pretty(self, obj: Lead) -> str:
        return pretty_json(obj.attribution) if obj.attribution else "—"

    @admin.display(boolean=True, description="merged")
    def merged(self, obj: Lead) -> bool:
        return obj.merged_into_id is not None

    @admin.display(description="leads merged into this one")
    def merged_leads_links(self, obj: Lead) -> str:
        merged = list(obj.merged_leads.all())
        if not merged:
            return "—"
        return format_html_join(", ", '<a href="{}">{}</a>', (
            (reverse("admin:leads_lead_change", args=[m.pk]), m.external_id) for m in merged))

    def get_urls(self):
        return [path("<int:pk>/timeline/", self.admin_site.admin_view(self.timeline_view), name="leads_lead_timeline"),
                *super().get_urls()]

    def timeline_view(self, request, pk: int):
        lead = self.get_object(request, str(pk))
        if lead is None or not self.has_view_permission(request, lead):
            raise Http404(f"No lead {pk}.")
        return timeline.timeline_page(request, admin_context=self.admin_site.each_context(request), lead=lead,
                                      focus_correlation_id=request.GET.get("focus", ""))

    @admin.display(description="history")
    def history_links(self, obj: Lead) -> str:
        links = {
            "timeline": reverse("admin:leads_lead_timeline", args=[obj.pk]),
            "submissions": reverse("admin:ingestion_submission_changelist") + f"?lead__id__exact={obj.pk}",
            "push jobs": reverse("admin:delivery_pushjob_changelist") + f"?lead__id__exact={obj.pk}",
            "sync log": reverse("admin:audit_synclog_changelist") + f"?lead_external_id={obj.external_id}",
        }
        return format_html_join(" · ", '<a href="{}">{}</a>', ((url, name) for name, url in links.items()))

    def has_merge_permission(self, request) -> bool:
        return request.user.has_perm("leads.change_lead")

    @admin.action(description="Re-score and route the selected leads with the current rules", permissions=["merge"])
    def reevaluate_leads(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        changed = leads_reevaluate(lead_ids=ids, actor=request.user)
        self.message_user(request, f"{changed} of {len(ids)} lead(s) changed and will be pushed again.")

    @admin.action(description="Merge the two selected leads", permissions=["merge"])
    def merge_leads(self, request, queryset):
        leads = list(queryset.order_by("created_at", "pk"))
        if len(leads) != 2:
            self.message_user(request, "Select exactly two leads to merge.", messages.ERROR)
            return None
        if request.POST.get("survivor"):
            survivor = next((lead for lead in leads if str(lead.pk) == request.POST["survivor"]), None)
            if survivor is None:
                self.message_user(request, "Choose which lead to keep.", messages.ERROR)
                return None
            other = leads[1] if survivor is leads[0] else leads[0]
            try:
                leads_merge(survivor=survivor, other=other, actor=request.user)
            except MergeError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(request, f"Merged {other.external_id} into {survivor}; both histories are kept.")
            return None
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": "Merge two leads",
                   "leads": leads, "rows": _comparison(leads), "action": "merge_leads",
                   "selected": [lead.pk for lead in leads], "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/leads/lead_merge.html", context)


def _comparison(leads: list[Lead]) -> list[tuple[str, list]]:
    names = ("email", "first_name", "last_name", "phone", "company", "country", "lifecycle_stage", "owner",
             "marketing_opt_in", "created_at")
    return [(Lead._meta.get_field(name).verbose_name, [getattr(lead, name) for lead in leads]) for name in names]


class CorrectionForm(forms.Form):
    """A rejected submission's source fields as editable rows (each row carries its field's
    name, so the rows mean the same if the list changed since the page was shown), plus a few
    empty rows to add a field the sender left out."""

    NEW_ROWS = 3

    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
                           help_text="Why, for whoever looks at this submission later (optional).")

    def __init__(self, *args, fields: dict[str, Any], reasons: list[dict], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        named = [r["field"] for r in reasons if r.get("field")]
        # A field a reason names but the payload lacks (a required one left out) gets a row too.
        self.names = list(dict.fromkeys([*fields, *named]))
        self.shown = {name: value_text(fields.get(name)) for name in self.names}
        self.reasons = reasons
        for index, name in enumerate(self.names):
            text = self.shown[name]
            widget = (forms.Textarea(attrs={"rows": 3, "cols": 60}) if "\n" in text or len(text) > 80
                      else forms.TextInput(attrs={"size": 60}))
            # No length limits here: a long value shown and left alone is no error. The service
            # checks what changed.
            self.fields[f"name_{index}"] = forms.CharField(initial=name, widget=forms.HiddenInput, strip=False)
            self.fields[f"value_{index}"] = forms.CharField(initial=text, required=False, strip=False, label=name,
                                                            widget=widget)
        for index in range(self.NEW_ROWS):
            self.fields[f"new_name_{index}"] = forms.CharField(required=False, max_length=MAX_NAME_LENGTH,
                                                               widget=forms.TextInput(attrs={"size": 24}))
            self.fields[f"new_value_{index}"] = forms.CharField(required=False, strip=False, max_length=MAX_VALUE_LENGTH,
                                                                widget=forms.TextInput(attrs={"size": 60}))

    def rows(self) -> list[tuple]:
        """(name, value field, hidden name field, the reasons naming this field) per row."""
        return [(name, self[f"value_{i}"], self[f"name_{i}"], [r.get("message", "") for r in self.reasons if r.get("field") == name])
                for i, name in enumerate(self.names)]

    def new_rows(self) -> list[tuple]:
        return [(self[f"new_name_{i}"], self[f"new_value_{i}"]) for i in range(self.NEW_ROWS)]

    def general_reasons(self) -> list[str]:
        return [r.get("message", "") for r in self.reasons if r.get("field") not in self.names]

    def clean(self) -> dict:
        data = super().clean()
        values = {data[f"name_{i}"]: self._value(data[f"name_{i}"], data.get(f"value_{i}", ""))
                  for i in range(len(self.names)) if data.get(f"name_{i}")}
        for i in range(self.NEW_ROWS):
            name, value = data.get(f"new_name_{i}", ""), data.get(f"new_value_{i}", "")
            if not name and value:
                self.add_error(f"new_name_{i}", "Name the field this value is for.")
            elif name in values:
                self.add_error(f"new_name_{i}", f"'{name}' is listed above: change its value there.")
            elif name:
                values[name] = value
        data["changes"] = values
        return data

    def _value(self, name: str, sent: str) -> str:
        # Browsers send a textarea's line breaks as CRLF: a value left alone must compare equal
        # to what was shown, and a changed one keeps plain newlines.
        shown, sent = self.shown.get(name, ""), sent.replace("\r\n", "\n")
        return shown if sent == shown.replace("\r\n", "\n") else sent


class DismissForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
                             help_text="Kept with the submission, e.g. 'a test from the agency', 'spam the honeypot missed'.")


class SubmissionAdmin(ingestion_admin.SubmissionAdmin):
    """Reviewers work from the 'rejected' filter: fix the mapping and reprocess, correct a
    submission whose data is wrong (it is reprocessed at once), or dismiss one that is not a
    lead. All three need `ingestion.reprocess_submission`, not any mapping permission."""

    actions = ["reprocess", "dismiss"]

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/correct/", wrap(self.correct_view), name="ingestion_submission_correct"),
            path("<int:pk>/dismiss/", wrap(self.dismiss_view), name="ingestion_submission_dismiss"),
            path("<int:pk>/timeline/", wrap(self.timeline_view), name="ingestion_submission_timeline"),
            path("correlation/<str:correlation_id>/", wrap(self.correlation_view), name="ingestion_submission_correlation"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        submission = self.get_object(request, object_id)
        can_review = bool(submission and submission.status == Submission.Status.REJECTED
                          and self.has_reprocess_permission(request))
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "can_review": can_review})

    def timeline_view(self, request, pk: int):
        """The submission's lead's timeline, with this submission's entries highlighted."""
        submission = self.get_object(request, str(pk))
        if submission is None or not self.has_view_permission(request, submission):
            raise Http404(f"No submission {pk}.")
        return timeline.timeline_page(request, admin_context=self.admin_site.each_context(request),
                                      lead=submission.lead, focus=submission)

    def correlation_view(self, request, correlation_id: str):
        """Everything a correlation ID names: its submission's timeline, or (no submission
        left) the timeline of the lead its push jobs, decisions or CRM calls are about."""
        submission = Submission.objects.filter(correlation_id=correlation_id).order_by("pk").first()
        if submission is not None:
            return redirect("admin:ingestion_submission_timeline", submission.pk)
        for model in (PushJob, LeadDecision, SyncLog):
            lead_id = (model.objects.filter(correlation_id=correlation_id, lead__isnull=False)
                       .values_list("lead_id", flat=True).first())
            if lead_id is not None:
                return redirect(reverse("admin:leads_lead_timeline", args=[lead_id]) + "?" + urlencode({"focus": correlation_id}))
        raise Http404(f"Nothing carries the correlation ID {correlation_id}.")

    @admin.action(description="Reprocess with the current mapping", permissions=["reprocess"])
    def reprocess(self, request, queryset) -> None:
        report = submissions_reprocess(submission_ids=list(queryset.values_list("pk", flat=True)))
        level = messages.SUCCESS if report.reprocessed and set(report.outcomes) == {"processed"} else messages.WARNING
        self.message_user(request, reprocess_message(report), level)

    @admin.action(description="Dismiss (not a lead; asks for a reason)", permissions=["reprocess"])
    def dismiss(self, request, queryset):
        form = DismissForm(request.POST if "reason" in request.POST else None)
        if not form.is_valid():
            ids = list(queryset.values_list("pk", flat=True))
            return self._dismiss_page(request, form, selected=ids, title=f"Dismiss {len(ids)} submission(s)")
        report = submissions_dismiss(submission_ids=list(queryset.values_list("pk", flat=True)),
                                     reason=form.cleaned_data["reason"], actor=request.user)
        text = f"{report.dismissed} dismissed"
        if report.skipped:
            text += f"; {_skipped(report.skipped)}: only rejected submissions can be dismissed"
        self.message_user(request, text + ".", messages.SUCCESS if report.dismissed else messages.WARNING)
        return None

    def correct_view(self, request, pk: int):
        submission = self._reviewable(request, pk)
        if not isinstance(submission, Submission):
            return submission
        form = CorrectionForm(request.POST or None, fields=submission_fields(submission=submission),
                              reasons=submission.reasons)
        if request.method == "POST" and form.is_valid():
            try:
                done = submission_correct_and_reprocess(submission_id=pk, changes=form.cleaned_data["changes"],
                                                        note=form.cleaned_data["note"], actor=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return self._corrected(request, done)
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": submission,
                   "title": f"Correct submission {pk}", "form": form}
        return TemplateResponse(request, "admin/ingestion/submission/correct.html", context)

    def dismiss_view(self, request, pk: int):
        submission = self._reviewable(request, pk)
        if not isinstance(submission, Submission):
            return submission
        form = DismissForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                submission_dismiss(submission_id=pk, reason=form.cleaned_data["reason"], actor=request.user)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                messages.success(request, f"Dismissed submission {pk}: {form.cleaned_data['reason'].strip()}")
                return redirect("admin:ingestion_submission_change", pk)
        return self._dismiss_page(request, form, original=submission, title=f"Dismiss submission {pk}")

    def _dismiss_page(self, request, form: DismissForm, *, title: str, original: Submission | None = None,
                      selected: list[int] | None = None) -> TemplateResponse:
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title, "form": form,
                   "original": original, "selected": selected or [], "action": "dismiss",
                   "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME}
        return TemplateResponse(request, "admin/ingestion/submission/dismiss.html", context)

    def _reviewable(self, request, pk: int):
        """The rejected submission a reviewer may act on, or the answer to give instead."""
        if not self.has_reprocess_permission(request):
            raise PermissionDenied
        submission = self.get_object(request, str(pk))
        if submission is None:
            raise Http404(f"No submission {pk}.")
        if submission.status != Submission.Status.REJECTED:
            messages.error(request, f"Only rejected submissions can be corrected or dismissed; submission {pk} is "
                                    f"{submission.get_status_display().lower()}.")
            return redirect("admin:ingestion_submission_change", pk)
        return submission

    def _corrected(self, request, done: Corrected):
        submission, changed = done.submission, _changes_summary(done.correction.changes)
        if submission.status == Submission.Status.PROCESSED:
            messages.success(request, f"Corrected {changed} and reprocessed: processed into lead {submission.lead}.")
        elif submission.status == Submission.Status.REJECTED:
            reasons = "; ".join(r.get("message", "") for r in submission.reasons)
            messages.warning(request, f"Corrected {changed} and reprocessed, but it is rejected again: {reasons}")
            return redirect("admin:ingestion_submission_correct", submission.pk)
        else:
            messages.info(request, f"Corrected {changed}; it is {submission.get_status_display().lower()} and will "
                                   "be processed when its data has been fetched.")
        return redirect("admin:ingestion_submission_change", submission.pk)

    def has_reprocess_permission(self, request) -> bool:
        return request.user.has_perm("ingestion.reprocess_submission")


# The status a reprocessed submission ended in, as the reviewer's message says it.
OUTCOME_WORDS = {"processed": "processed", "rejected": "rejected again", "received": "waiting for its data"}


def reprocess_message(report: ReprocessReport) -> str:
    """'2 reprocessed: 1 processed, 1 rejected again' and, when some were left alone, why."""
    text = f"{report.reprocessed} reprocessed"
    if report.reprocessed:
        text += ": " + ", ".join(f"{n} {OUTCOME_WORDS.get(status, status)}" for status, n in sorted(report.outcomes.items()))
    if report.skipped:
        text += ("; " if report.reprocessed else ": ") + f"only rejected submissions can be ({_skipped(report.skipped)})"
    return text + "."


def _skipped(skipped: Counter) -> str:
    total = sum(skipped.values())
    if len(skipped) == 1:
        return f"{total} skipped: {next(iter(skipped))}"
    return f"{total} skipped: " + ", ".join(f"{n} {status}" for status, n in sorted(skipped.items()))


def _changes_summary(changes: dict) -> str:
    return "; ".join(f"{name} ({value_text(old) or 'empty'!r} → {value_text(new) or 'empty'!r})"
                     for name, (old, new) in changes.items())


admin.site.unregister(Submission)
admin.site.register(Submission, SubmissionAdmin)
