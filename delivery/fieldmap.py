"""A destination's field map: what each CRM receives for a lead, and its defaults per kind."""

from typing import Any

from core.fields import CONSENT_FIELDS, OWNER_SOURCES
from delivery.models import Destination, DestinationField
from leads.fields import lead_domain, lead_value
from leads.models import Lead

Obj = DestinationField.Object
Model = Destination.ObjectModel

# Personal data: masked in the sync log unless CRMSYNC_SYNC_LOG_REDACT is false.
PERSONAL_SOURCES = frozenset({"email", "first_name", "last_name", "phone"})

_PERSON = [("email", "email"), ("first_name", "firstname"), ("last_name", "lastname"), ("phone", "phone"),
           ("company", "company"), ("country", "country")]
# HubSpot's lifecycle stages for ours.
HUBSPOT_STAGES = {"lead": "lead", "mql": "marketingqualifiedlead", "sql": "salesqualifiedlead", "customer": "customer"}
_CONSENT = list(CONSENT_FIELDS)
_HUBSPOT_EXTRA = [(Obj.PRIMARY, "lifecycle_stage", "lifecyclestage", ""),
                  (Obj.PRIMARY, "owner.hubspot_owner_id", "hubspot_owner_id", "")] + [
    (Obj.PRIMARY, name, f"crmsync_{name}", "") for name in _CONSENT]
_SALESFORCE_CONSENT = {"marketing_opt_in": "Crmsync_Marketing_Opt_In__c", "consent_at": "Crmsync_Consent_At__c",
                       "consent_text": "Crmsync_Consent_Text__c", "consent_source": "Crmsync_Consent_Source__c"}
_SALESFORCE_EXTRA = [(Obj.PRIMARY, "owner.salesforce_user_id", "OwnerId", "")] + [
    (Obj.PRIMARY, name, target, "") for name, target in _SALESFORCE_CONSENT.items()]
DEFAULTS: dict[str, list[tuple[str, str, str, str]]] = {
    # object model: [(object, source, target, default)]
    Model.CONTACT: [(Obj.PRIMARY, s, t, "") for s, t in _PERSON] + _HUBSPOT_EXTRA,
    Model.CONTACT_COMPANY: [(Obj.PRIMARY, s, t, "") for s, t in _PERSON] + _HUBSPOT_EXTRA
    + [(Obj.COMPANY, "company_name", "name", ""), (Obj.COMPANY, "domain", "domain", "")],
    # Salesforce requires LastName and Company on a Lead; "[not provided]" is the usual filler.
    Model.LEAD: [(Obj.PRIMARY, "email", "Email", ""), (Obj.PRIMARY, "first_name", "FirstName", ""),
                 (Obj.PRIMARY, "last_name", "LastName", "[not provided]"), (Obj.PRIMARY, "phone", "Phone", ""),
                 (Obj.PRIMARY, "company_name", "Company", "[not provided]"), (Obj.PRIMARY, "country", "Country", "")]
    + _SALESFORCE_EXTRA,
    Model.CONTACT_ACCOUNT: [(Obj.PRIMARY, "email", "Email", ""), (Obj.PRIMARY, "first_name", "FirstName", ""),
                            (Obj.PRIMARY, "last_name", "LastName", "[not provided]"), (Obj.PRIMARY, "phone", "Phone", ""),
                            (Obj.PRIMARY, "country", "MailingCountry", "")] + _SALESFORCE_EXTRA
    + [(Obj.COMPANY, "company_name", "Name", ""), (Obj.COMPANY, "domain", "Website", "")],
    Model.RECORD: [(Obj.PRIMARY, s, s, "") for s, _ in _PERSON]
    + [(Obj.PRIMARY, s, s.replace(".", "_"), "") for s in ("lifecycle_stage", "owner.email", *_CONSENT)],
}
# A Salesforce checkbox cannot be empty (it would read "no" for a person never asked), so the
# opt-in field is a Yes/No picklist there.
VALUE_MAPS = {"lifecyclestage": HUBSPOT_STAGES, "Crmsync_Marketing_Opt_In__c": {"True": "Yes", "False": "No"}}


def fields_default_ensure(*, destination: Destination) -> int:
    """Give a destination without a field map the default one for its object model."""
    if destination.fields.exists():
        return 0
    rows = [DestinationField(destination=destination, object=obj, source=source, target=target, default=default,
                             value_map=VALUE_MAPS.get(target, {}))
            for obj, source, target, default in DEFAULTS.get(destination.object_model, [])]
    DestinationField.objects.bulk_create(rows)
    return len(rows)


def render(lead: Lead, fields: list[DestinationField], *, company_key: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The lead as the destination's objects: (primary fields, company fields or None).
    Blank values are left out, so they never overwrite what the CRM holds."""
    primary: dict[str, Any] = {}
    company: dict[str, Any] = {}
    for field in fields:
        value = lead_value(lead, field.source)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, "", [], {}):
            value = field.default or None
        if value is None:
            continue
        if field.value_map and isinstance(value, (str, int, bool)):
            value = field.value_map.get(str(value), value)
        (company if field.object == Obj.COMPANY else primary)[field.target] = value
    domain = lead_domain(lead)
    if not domain or not any(f.object == Obj.COMPANY for f in fields):
        return primary, None
    if company_key:
        company[company_key] = domain
    return primary, company


# What a CRM decides for a person it already knows: a record adopted by the lookup keeps these
# when it has them.
CRM_OWNED_SOURCES = frozenset({"lifecycle_stage", "team", *OWNER_SOURCES})


def crm_owned_targets(fields: list[DestinationField]) -> frozenset[str]:
    return frozenset(f.target for f in fields if f.source in CRM_OWNED_SOURCES and f.object == Obj.PRIMARY)


def personal_targets(fields: list[DestinationField]) -> set[str]:
    return {f.target for f in fields if f.source in PERSONAL_SOURCES}
