"""django-q2 entry point of monitoring: a thin adapter over its service."""

from monitoring import services


def alerts_evaluate() -> dict:
    report = services.alerts_evaluate()
    return {"opened": report.opened, "resolved": report.resolved, "failed_rules": report.failed_rules,
            "sent": report.sent, "send_failures": report.send_failures}
