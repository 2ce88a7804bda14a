"""The decision log: one row per decision about a lead (created, matched, merged, staged, routed,
found in a CRM...), shown on the lead in the admin. Every stage that decides something about a
lead writes here; it imports only the leads models (and the log context, for the correlation ID)."""

from datetime import datetime
from typing import Any

from audit.logging import correlation_id_current
from leads.models import Lead, LeadDecision


def decision_record(*, lead: Lead, action: str, detail: str = "", matched_by: str = "", changes: dict | None = None,
                    submission=None, actor=None) -> LeadDecision:
    """Log one decision about a lead; shown on the lead in the admin. It carries the correlation
    ID of its submission, or else of the work running (a push that found the person in a CRM)."""
    correlation_id = getattr(submission, "correlation_id", "") or correlation_id_current()
    return LeadDecision.objects.create(lead=lead, action=action, detail=detail[:4000], matched_by=matched_by,
                                       changes=json_safe(changes or {}), submission=submission, actor=actor,
                                       correlation_id=correlation_id)


def json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return plain(value)


def plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
