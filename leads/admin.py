"""RevOps rules, edited here and applied to every submission from then on."""

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from audit.admin_mixins import ReadOnlyAdmin, correlation_links, pretty_json
from leads.models import CampaignAlias, Company, CustomerEntry, LeadDecision, MergeRule, Owner, ScoringRule, StageThreshold, Team, TerritoryRule


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("domain", "name", "is_customer", "lead_count", "created_at")
    list_filter = ("is_customer",)
    search_fields = ("domain", "name")
    fields = ("domain", "name", "is_customer", "leads_link")
    readonly_fields = ("leads_link",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(lead_total=Count("leads"))

    @admin.display(description="leads", ordering="lead_total")
    def lead_count(self, obj: Company) -> int:
        return obj.lead_total

    @admin.display(description="leads")
    def leads_link(self, obj: Company) -> str:
        if not obj.pk:
            return "—"
        url = reverse("admin:leads_lead_changelist") + f"?company_record__id__exact={obj.pk}"
        return format_html('<a href="{}">{} lead(s)</a>', url, obj.leads.count())


@admin.register(MergeRule)
class MergeRuleAdmin(admin.ModelAdmin):
    list_display = ("field", "mode", "source_order")


@admin.register(ScoringRule)
class ScoringRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "field", "operator", "value", "points", "is_active")
    list_editable = ("points", "is_active")
    list_filter = ("is_active",)


@admin.register(StageThreshold)
class StageThresholdAdmin(admin.ModelAdmin):
    list_display = ("stage", "min_score")


@admin.register(CustomerEntry)
class CustomerEntryAdmin(admin.ModelAdmin):
    list_display = ("value", "kind", "account_name")
    list_filter = ("kind",)
    search_fields = ("value", "account_name")


class OwnerInline(admin.TabularInline):
    model = Owner
    extra = 1
    fields = ("name", "email", "weight", "is_away", "hubspot_owner_id", "salesforce_user_id", "assigned")
    readonly_fields = ("assigned",)


class TerritoryInline(admin.TabularInline):
    model = TerritoryRule
    extra = 1
    fields = ("position", "field", "values")


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "is_default", "handles_customers", "owners_present")
    inlines = [OwnerInline, TerritoryInline]

    @admin.display(description="owners (present / all)")
    def owners_present(self, obj: Team) -> str:
        owners = list(obj.owners.all())
        return f"{sum(not o.is_away for o in owners)} / {len(owners)}"


@admin.register(Owner)
class OwnerAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "weight", "is_away", "assigned", "hubspot_owner_id", "salesforce_user_id")
    list_editable = ("weight", "is_away")
    list_filter = ("team", "is_away")
    search_fields = ("name", "email")


@admin.register(TerritoryRule)
class TerritoryRuleAdmin(admin.ModelAdmin):
    list_display = ("__str__", "position", "team")


@admin.register(CampaignAlias)
class CampaignAliasAdmin(admin.ModelAdmin):
    list_display = ("raw", "name")
    search_fields = ("raw", "name")


@admin.register(LeadDecision)
class LeadDecisionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "lead", "action", "matched_by", "detail")
    list_filter = ("action", "matched_by")
    search_fields = ("lead__email", "lead__external_id", "detail", "=correlation_id")
    list_select_related = ("lead",)
    fields = ("lead", "action", "matched_by", "detail", "changes_pretty", "submission", "actor", "created_at", "correlation")
    readonly_fields = fields

    @admin.display(description="correlation ID")
    def correlation(self, obj: LeadDecision) -> str:
        return correlation_links(obj.correlation_id)

    @admin.display(description="changes")
    def changes_pretty(self, obj: LeadDecision) -> str:
        return pretty_json(obj.changes)
