"""The conflict-review queue in the admin: the reviewer's landing page. Filters by destination,
field, age and assignee; 'assign to me'; each conflict side by side with its resolutions; bulk
resolve. Resolving needs the 'resolve conflict' permission, not any permission on mappings."""

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from delivery.conflicts import ConflictError, conflict_assign, conflict_resolve, conflicts_resolve, field_prefer
from delivery.models import Conflict

R = Conflict.Resolution
RESOLVE_PERMISSION = "delivery.resolve_conflict"


class AgeFilter(admin.SimpleListFilter):
    title = "age"
    parameter_name = "age"
    AGES = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}

    def lookups(self, request, model_admin):
        return [("1h", "older than an hour"), ("1d", "older than a day"), ("7d", "older than a week")]

    def queryset(self, request, queryset):
        if self.value() in self.AGES:
            return queryset.filter(created_at__lt=timezone.now() - self.AGES[self.value()])
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        assigned = (Conflict.objects.filter(assignee__isnull=False).exclude(assignee=request.user)
                    .values_list("assignee_id", "assignee__username").distinct().order_by("assignee__username"))
        return [("me", "assigned to me"), ("none", "unassigned"), *((str(pk), name) for pk, name in assigned)]

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(assignee=request.user)
        if self.value() == "none":
            return queryset.filter(assignee__isnull=True)
        if self.value() and self.value().isdigit():
            return queryset.filter(assignee_id=int(self.value()))
        return queryset


class FieldFilter(admin.SimpleListFilter):
    title = "field"
    parameter_name = "target"

    def lookups(self, request, model_admin):
        targets = Conflict.objects.exclude(target="").order_by("target").values_list("target", flat=True).distinct()
        return [(t, t) for t in targets]

    def queryset(self, request, queryset):
        return queryset.filter(target=self.value()) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    """Open conflicts unless asked otherwise: the queue is what is left to decide."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*Conflict.Status.choices, ("all", "All")]

    def choices(self, changelist):
        value = self.value() or Conflict.Status.OPEN
        for lookup, title in self.lookup_choices:
            yield {"selected": value == lookup, "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                   "display": title}

    def queryset(self, request, queryset):
        value = self.value() or Conflict.Status.OPEN
        return queryset if value == "all" else queryset.filter(status=value)


class ValueForm(forms.Form):
    value = forms.CharField(max_length=1000, required=True, label="Value for both sides",
                            help_text="In this product's form (e.g. a lifecycle stage as mql, a phone in E.164).")
    note = forms.CharField(max_length=500, required=False)


@admin.register(Conflict)
class ConflictAdmin(admin.ModelAdmin):
    list_display = ("id", "lead_link", "destination", "what", "base_value", "ours_value", "theirs_value", "changed",
                    "age", "assignee", "status")
    list_display_links = ("id", "what")
    list_filter = (StatusFilter, "destination", FieldFilter, AgeFilter, AssigneeFilter, "kind")
    list_select_related = ("lead", "destination", "assignee")
    search_fields = ("lead__email", "lead__external_id", "crm_record_id", "target")
    actions = ["assign_to_me", "bulk_keep_ours", "bulk_take_crm", "bulk_recreate", "bulk_unlink"]
    change_form_template = "admin/delivery/conflict/resolve.html"
    ordering = ("created_at",)

    # --- permissions: reviewers resolve; nobody edits the rows by hand ---------------------

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(RESOLVE_PERMISSION)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(RESOLVE_PERMISSION) or request.user.has_perm("delivery.view_conflict")

    def has_resolve_permission(self, request) -> bool:
        return request.user.has_perm(RESOLVE_PERMISSION)

    # --- columns ----------------------------------------------------------------------------

    @admin.display(description="lead", ordering="lead__email")
    def lead_link(self, obj: Conflict) -> str:
        url = reverse("admin:leads_lead_change", args=[obj.lead_id])
        return format_html('<a href="{}">{}</a>', url, obj.lead)

    @admin.display(description="conflict", ordering="target")
    def what(self, obj: Conflict) -> str:
        return obj.target if obj.kind == Conflict.Kind.FIELD else obj.get_kind_display()

    @admin.display(description="last synced")
    def base_value(self, obj: Conflict) -> str:
        return _show(obj.base)

    @admin.display(description="ours")
    def ours_value(self, obj: Conflict) -> str:
        return _show(obj.ours)

    @admin.display(description="the CRM's")
    def theirs_value(self, obj: Conflict) -> str:
        return _show(obj.theirs) if obj.kind == Conflict.Kind.FIELD else f"record {obj.crm_record_id}"

    @admin.display(description="changed by")
    def changed(self, obj: Conflict) -> str:
        return " / ".join(x for x in (obj.ours_by and f"ours: {obj.ours_by}", obj.theirs_by and f"CRM: {obj.theirs_by}") if x)

    @admin.display(description="age", ordering="created_at")
    def age(self, obj: Conflict) -> str:
        return timesince(obj.created_at)

    # --- bulk actions -----------------------------------------------------------------------

    @admin.action(description="Assign to me", permissions=["resolve"])
    def assign_to_me(self, request, queryset) -> None:
        count = conflict_assign(conflicts=queryset, user=request.user)
        self.message_user(request, f"{count} conflict(s) assigned to you.", messages.SUCCESS)

    def _bulk(self, request, queryset, resolution: str) -> None:
        done, problems = conflicts_resolve(conflicts=queryset, resolution=resolution, actor=request.user)
        self.message_user(request, f"{done} conflict(s) resolved: {R(resolution).label}.",
                          messages.SUCCESS if done else messages.WARNING)
        if problems:
            self.message_user(request, "Not resolved: " + "; ".join(problems[:10]), messages.WARNING)

    @admin.action(description="Resolve: keep ours (push it to the CRM)", permissions=["resolve"])
    def bulk_keep_ours(self, request, queryset) -> None:
        self._bulk(request, queryset, R.KEEP_OURS)

    @admin.action(description="Resolve: take the CRM's", permissions=["resolve"])
    def bulk_take_crm(self, request, queryset) -> None:
        self._bulk(request, queryset, R.TAKE_CRM)

    @admin.action(description="Deleted/merged records: recreate in the CRM", permissions=["resolve"])
    def bulk_recreate(self, request, queryset) -> None:
        self._bulk(request, queryset, R.RECREATE)

    @admin.action(description="Deleted/merged records: stop syncing the lead there", permissions=["resolve"])
    def bulk_unlink(self, request, queryset) -> None:
        self._bulk(request, queryset, R.UNLINK)

    # --- one conflict, side by side ---------------------------------------------------------

    def get_urls(self):
        return [path("<int:conflict_id>/prefer/<str:side>/", self.admin_site.admin_view(self.prefer_view),
                     name="delivery_conflict_prefer"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not str(object_id).isdigit():
            raise Http404("No such conflict.")
        conflict = get_object_or_404(Conflict.objects.select_related("lead", "destination", "field", "resolved_by",
                                                                     "assignee"), pk=int(object_id))
        if not self.has_view_permission(request, conflict):
            raise PermissionDenied
        form = ValueForm(request.POST or None)
        if request.method == "POST":
            if not self.has_resolve_permission(request):
                raise PermissionDenied
            action = request.POST.get("resolve", "")
            if action == "assign":
                conflict_assign(conflicts=Conflict.objects.filter(pk=conflict.pk), user=request.user)
                return HttpResponseRedirect(request.path)
            value = None
            if action == R.VALUE:
                if not form.is_valid():
                    return self._resolve_page(request, conflict, form)
                value = form.cleaned_data["value"]
            try:
                conflict_resolve(conflict_id=conflict.pk, resolution=action, actor=request.user, value=value,
                                 note=request.POST.get("note", ""))
            except ConflictError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(request.path)
            self.message_user(request, f"Resolved: {R(action).label}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:delivery_conflict_changelist"))
        return self._resolve_page(request, conflict, form)

    def _resolve_page(self, request, conflict: Conflict, form: ValueForm):
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "original": conflict,
                   "conflict": conflict, "form": form, "title": f"Conflict: {conflict}",
                   "can_resolve": self.has_resolve_permission(request) and conflict.status == Conflict.Status.OPEN,
                   "can_prefer": self.has_prefer_permission(request) and conflict.field_id is not None,
                   "is_field": conflict.kind == Conflict.Kind.FIELD,
                   "lead_url": reverse("admin:leads_lead_change", args=[conflict.lead_id]),
                   "base": _show(conflict.base), "ours": _show(conflict.ours), "theirs": _show(conflict.theirs),
                   "age": timesince(conflict.created_at)}
        return TemplateResponse(request, self.change_form_template, context)

    def has_prefer_permission(self, request) -> bool:
        # Setting a field's rule edits the destination's field map: RevOps' permission, not a
        # reviewer's.
        return self.has_resolve_permission(request) and request.user.has_perm("delivery.change_destinationfield")

    def prefer_view(self, request, conflict_id: int, side: str):
        """'Always prefer this side for this field': a confirmation page, then the rule."""
        if not self.has_prefer_permission(request):
            raise PermissionDenied
        if side not in (R.KEEP_OURS, R.TAKE_CRM):
            raise PermissionDenied
        conflict = get_object_or_404(Conflict.objects.select_related("field", "destination"), pk=conflict_id,
                                     status=Conflict.Status.OPEN, kind=Conflict.Kind.FIELD)
        others = Conflict.objects.filter(destination_id=conflict.destination_id, target=conflict.target,
                                         kind=Conflict.Kind.FIELD, status=Conflict.Status.OPEN).count()
        if request.method == "POST":
            try:
                done, problems = field_prefer(conflict=conflict, side=side, actor=request.user)
            except ConflictError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return HttpResponseRedirect(reverse("admin:delivery_conflict_change", args=[conflict.pk]))
            rule = "ours" if side == R.KEEP_OURS else "the CRM's"
            self.message_user(request, f"{conflict.target} at {conflict.destination} now always prefers {rule}; "
                                       f"{done} open conflict(s) resolved that way.", messages.SUCCESS)
            for problem in problems:
                self.message_user(request, problem, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:delivery_conflict_changelist"))
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "conflict": conflict,
                   "side": "ours" if side == R.KEEP_OURS else "the CRM's", "others": others,
                   "title": "Always prefer this side?"}
        return TemplateResponse(request, "admin/delivery/conflict/prefer.html", context)


def _show(value) -> str:
    return "(blank)" if value in (None, "") else str(value)
