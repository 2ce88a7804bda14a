"""{% drift_box %}: the sources with drift, for the admin index."""

from django import template

from mapping import selectors

register = template.Library()

# Who may see the box: the people who can act on drift.
VIEW_PERMISSIONS = ("mapping.view_unmappedfield", "mapping.view_mappingset")


@register.inclusion_tag("admin/mapping/drift_box.html", takes_context=True)
def drift_box(context) -> dict:
    user = context["request"].user
    if not any(user.has_perm(permission) for permission in VIEW_PERMISSIONS):
        return {"drifts": []}
    return {"drifts": selectors.drift_summary()}
