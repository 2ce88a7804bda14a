"""Routes of the sandbox's control API (sandbox/control.py), mounted at /sandbox/_control/."""

from django.urls import path, re_path

from sandbox import control

urlpatterns = [
    path("clock/<str:crm>", control.clock, name="sandbox-control-clock"),
    path("faults/<str:crm>", control.faults, name="sandbox-control-faults"),
    path("reset", control.reset, name="sandbox-control-reset"),
    path("hubspot/webhooks/send", control.hubspot_webhook_send, name="sandbox-control-hubspot-webhook-send"),
    path("hubspot/webhooks/subscriptions", control.hubspot_webhook_subscriptions,
         name="sandbox-control-hubspot-webhook-subscriptions"),
    re_path(r"^hubspot/(?P<object_type>contacts|companies)/bulk$", control.hubspot_bulk, name="sandbox-control-hubspot-bulk"),
    path("salesforce/merge", control.salesforce_merge, name="sandbox-control-salesforce-merge"),
]
