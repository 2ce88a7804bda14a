"""System checks for configuration mistakes that would otherwise fail later, at 3 a.m."""

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_encryption_keys(app_configs, **kwargs) -> list:
    from cryptography.fernet import Fernet

    errors = []
    for key in settings.CRMSYNC_ENCRYPTION_KEYS:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            errors.append(
                Error(
                    "CRMSYNC_ENCRYPTION_KEYS holds a value that is not a Fernet key.",
                    hint="Generate one with: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                    id="crmsync.E001",
                )
            )
    return errors


@register(deploy=True)
def check_sandbox_off_in_production(app_configs, **kwargs) -> list:
    if settings.SANDBOX_ENABLED and not settings.DEBUG:
        return [
            Warning(
                "The sandbox CRM is enabled with DEBUG off.",
                hint="Set SANDBOX_ENABLED=false in production.",
                id="crmsync.W001",
            )
        ]
    return []


@register()
def check_queue_timeouts(app_configs, **kwargs) -> list:
    q = settings.Q_CLUSTER
    if q["retry"] <= q["timeout"]:
        return [Error("Q_CLUSTER retry must exceed timeout, or a slow task runs twice.", id="crmsync.E002")]
    return []
