"""The admin pages whose actions span stages, so they call the pipeline: the lead (its history
across submissions, decisions, push jobs and the sync log; merge and re-evaluate) and the
submission's "reprocess". Each stage's own pages live in that stage's admin module."""


from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html_join

from audit.admin_mixins import ReadOnlyAdmin, pretty_json
from crmsync.pipeline import leads_merge, leads_reevaluate, submission_reprocess
from ingestion import admin as ingestion_admin
from ingestion.models import Submission
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

    @admin.display(description="history")
    def history_links(self, obj: Lead) -> str:
        links = {
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


class SubmissionAdmin(ingestion_admin.SubmissionAdmin):
    """Reviewers work from the 'rejected' filter: fix the mapping, then reprocess."""

    actions = ["reprocess"]

    @admin.action(description="Reprocess with the current mapping", permissions=["reprocess"])
    def reprocess(self, request, queryset) -> None:
        results = [submission_reprocess(submission_id=pk).status for pk in queryset.values_list("pk", flat=True)]
        summary = ", ".join(f"{results.count(s)} {s}" for s in sorted(set(results)))
        self.message_user(request, f"Reprocessed {len(results)} submissions: {summary}.")

    def has_reprocess_permission(self, request) -> bool:
        return request.user.has_perm("ingestion.reprocess_submission")


admin.site.unregister(Submission)
admin.site.register(Submission, SubmissionAdmin)
