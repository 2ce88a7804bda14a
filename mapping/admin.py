from django.contrib import admin

from mapping.models import FieldRule, MappingSet


class FieldRuleInline(admin.TabularInline):
    model = FieldRule
    extra = 1
    fields = ("position", "source_field", "target", "trim", "lowercase", "required")


@admin.register(MappingSet)
class MappingSetAdmin(admin.ModelAdmin):
    list_display = ("name", "source", "is_active", "updated_at")
    list_filter = ("is_active", "source")
    inlines = [FieldRuleInline]
