"""Admin building blocks shared by the apps: read-only log views and pretty JSON."""

import json
from urllib.parse import quote

from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join


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


# Every list that carries a correlation ID, by the admin URL name of its changelist.
CORRELATED_LISTS = {
    "submission": "admin:ingestion_submission_changelist",
    "decisions": "admin:leads_leaddecision_changelist",
    "push jobs": "admin:delivery_pushjob_changelist",
    "sync log": "admin:audit_synclog_changelist",
}


def correlation_links(correlation_id: str) -> str:
    """A correlation ID with links to everything that carries it: its submission's timeline
    and each filtered list. Names resolved by URL (the audit stage imports no admin above it)."""
    if not correlation_id:
        return "—"
    value = quote(correlation_id, safe="")
    links = []
    try:
        links.append(("timeline", reverse("admin:ingestion_submission_correlation", args=[correlation_id])))
    except NoReverseMatch:  # the pipeline's admin is not installed: the lists still work
        pass
    links += [(name, f"{reverse(url)}?correlation_id={value}") for name, url in CORRELATED_LISTS.items()]
    return format_html('<code>{}</code> — {}', correlation_id,
                       format_html_join(" · ", '<a href="{}">{}</a>', ((url, name) for name, url in links)))
