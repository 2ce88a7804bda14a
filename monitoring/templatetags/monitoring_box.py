"""{% monitoring_box %}: the admin index's way to the dashboard and the alerts that are open."""

from django import template

from monitoring.models import Alert

register = template.Library()


@register.inclusion_tag("monitoring/monitoring_box.html", takes_context=True)
def monitoring_box(context) -> dict:
    user = context["request"].user
    if not user.is_staff:
        return {"show": False}
    open_alerts = list(Alert.objects.exclude(state=Alert.State.RESOLVED).select_related("rule")[:5])
    return {"show": True, "open_alerts": open_alerts}
