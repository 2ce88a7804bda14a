"""Reading a lead by a source path ('email', 'domain', 'owner.email', 'attributes.plan', ...):
what field maps, scoring rules and territory rules see of a lead."""

from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from core.fields import NESTED_SOURCES, company_domain
from leads.models import Lead


def lead_domain(lead: Lead) -> str:
    """The domain of the lead's company record, else derived from its email and attributes."""
    if lead.company_record_id:
        return lead.company_record.domain
    return company_domain(email=lead.email, attributes=lead.attributes)


def lead_value(lead: Lead, source: str) -> Any:
    if source == "domain":
        return lead_domain(lead)
    if source == "company_name":
        # The company field, else the company record's name, else its domain: a Salesforce
        # Lead needs a Company.
        return lead.company or (lead.company_record.name or lead.company_record.domain if lead.company_record_id else "")
    if source == "team":
        return lead.team.name if lead.team_id else None
    head, _, name = source.partition(".")
    if head == "owner" and name:
        return getattr(lead.owner, name, None) if lead.owner_id else None
    if head in NESTED_SOURCES and name:
        return getattr(lead, head).get(name)
    value = getattr(lead, source, None)
    if isinstance(value, datetime):
        # ISO 8601 in UTC to the millisecond, as HubSpot and Salesforce both write and accept it.
        return value.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value
