"""Admin building blocks shared by the apps: read-only log views and pretty JSON."""

import json

from django.contrib import admin
from django.utils.html import format_html


class ReadOnlyAdmin(admin.ModelAdmin):
    """Log-like rows are evidence: nobody adds, edits or deletes them by hand."""

    show_full_result_count = False  # no COUNT(*) over a big table on every page

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def pretty_json(value) -> str:
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))
