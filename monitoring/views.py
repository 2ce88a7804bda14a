"""The dashboard page in the admin: an adapter over monitoring.dashboard."""

from django.contrib import admin
from django.template.response import TemplateResponse

from monitoring.dashboard import RANGES, dashboard_data
from monitoring.models import Alert
from monitoring.staticfiles import STATIC_PATH


def dashboard(request):
    data = dashboard_data(range_key=request.GET.get("range", ""))
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "is_nav_sidebar_enabled": False,  # the charts take the page's width
        "data": data,
        "ranges": RANGES.values(),
        "plotly_js": STATIC_PATH,
        "open_alerts": Alert.objects.exclude(state=Alert.State.RESOLVED).select_related("rule")[:20],
    }
    return TemplateResponse(request, "monitoring/dashboard.html", context)
