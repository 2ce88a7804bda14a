"""The alert rules crmsync ships with (README, "Monitoring"). No channels: RevOps add theirs in
the admin, and until then alerts show on the alerts page only. Written out here, not imported,
so the migration stays as it is when the rules' code changes."""

from django.db import migrations

# name, kind, threshold, window_minutes, min_events, severity
DEFAULT_RULES = [
    ("Sync error rate above 2%", "sync_error_rate", 2, 15, 20, "critical"),
    ("Queue backlog above 5,000 items", "queue_backlog", 5000, 15, 0, "warning"),
    ("Lead stuck in retries for more than 30 minutes", "stuck_in_retries", 30, 15, 0, "warning"),
    ("No successful push while pushes are tried", "zero_successes", 0, 15, 5, "critical"),
    ("Destination paused: the CRM refused the credentials", "paused_for_credentials", 0, 15, 0, "critical"),
    ("Rate-limited on more than 20% of CRM calls", "rate_limited_share", 20, 15, 20, "warning"),
    ("Daily request budget 90% spent", "daily_budget", 90, 15, 0, "warning"),
    ("New unmapped field", "new_unmapped_field", 0, 15, 0, "info"),
    ("More than 10% of submissions rejected", "rejected_share", 10, 60, 20, "warning"),
    ("Worker heartbeat missing for 2 minutes", "worker_heartbeat", 120, 15, 0, "critical"),
    ("Conflicts open for more than 3 days", "old_conflicts", 3, 15, 0, "warning"),
    ("Mapped fields stopped arriving", "fields_stopped", 0, 15, 0, "warning"),
    ("More than 10% of new leads without an owner", "unowned_leads", 10, 60, 20, "warning"),
    ("More than 20% of leads without the consent their source used to send", "consent_missing", 20, 60, 20, "warning"),
]


def rules_add(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    for name, kind, threshold, window, min_events, severity in DEFAULT_RULES:
        if not AlertRule.objects.filter(kind=kind).exists():
            AlertRule.objects.create(name=name, kind=kind, threshold=threshold, window_minutes=window,
                                     min_events=min_events, severity=severity)


def rules_remove(apps, schema_editor):
    AlertRule = apps.get_model("monitoring", "AlertRule")
    AlertRule.objects.filter(name__in=[rule[0] for rule in DEFAULT_RULES], alerts__isnull=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("monitoring", "0001_alerts"),
    ]

    operations = [migrations.RunPython(rules_add, rules_remove)]
