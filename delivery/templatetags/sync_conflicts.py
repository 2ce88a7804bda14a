"""{% conflict_box %}: the open two-way sync conflicts, at the top of the admin index."""

from django import template

from delivery.models import Conflict

register = template.Library()


@register.inclusion_tag("admin/delivery/conflict_box.html", takes_context=True)
def conflict_box(context) -> dict:
    user = context["request"].user
    if not (user.has_perm("delivery.resolve_conflict") or user.has_perm("delivery.view_conflict")):
        return {"show": False}
    return {"show": True, "open": Conflict.objects.filter(status=Conflict.Status.OPEN).count()}
