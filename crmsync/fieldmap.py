"""A destination's field map: what each CRM receives for a lead, and its defaults per kind."""

from datetime import datetime, timezone as dt_timezone
from typing import Any

from crmsync.models import LEAD_FIELDS, Destination, DestinationField, Lead

Obj = DestinationField.Object
Model = Destination.ObjectModel

# Personal data: masked in the sync log unless CRMSYNC_SYNC_LOG_REDACT is false.
PERSONAL_SOURCES = frozenset({"email", "first_name", "last_name", "phone"})

# Domains of free mail providers: a person's address there says nothing about their company.
FREE_MAIL_DOMAINS = frozenset({
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "hotmail.com", "hotmail.co.uk",
    "outlook.com", "live.com", "msn.com", "icloud.com", "me.com", "mac.com", "aol.com", "gmx.com", "gmx.de",
    "gmx.net", "web.de", "proton.me", "protonmail.com", "pm.me", "mail.com", "yandex.ru", "yandex.com",
    "mail.ru", "qq.com", "163.com", "126.com", "zoho.com", "fastmail.com", "hey.com", "t-online.de",
    "orange.fr", "free.fr", "laposte.net", "libero.it", "seznam.cz", "wp.pl", "o2.pl", "naver.com",
})

_PERSON = [("email", "email"), ("first_name", "firstname"), ("last_name", "lastname"), ("phone", "phone"),
           ("company", "company"), ("country", "country")]
# HubSpot's lifecycle stages for ours.
HUBSPOT_STAGES = {"lead": "lead", "mql": "marketingqualifiedlead", "sql": "salesqualifiedlead", "customer": "customer"}
# Consent goes to explicit fields of its own (never to a CRM's opt-out flag, whose default
# would read as an answer); a lead without an answer sends nothing for them.
_CONSENT = ["marketing_opt_in", "consent_at", "consent_text", "consent_source"]
CONSENT_SOURCES = frozenset(_CONSENT)
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


def company_domain(lead: Lead) -> str:
    """The company's domain: the lead's company record, else from the lead's email unless it
    is a free mail address."""
    if lead.company_record_id:
        return lead.company_record.domain
    explicit = str(lead.attributes.get("company_domain") or lead.attributes.get("website") or "")
    if explicit:
        return bare_domain(explicit)
    _, _, domain = lead.email.rpartition("@")
    domain = domain.strip().lower()
    return "" if not domain or domain in FREE_MAIL_DOMAINS else domain


def bare_domain(value: str) -> str:
    value = value.strip().lower()
    for prefix in ("https://", "http://"):
        value = value.removeprefix(prefix)
    return value.removeprefix("www.").split("/", 1)[0]


# Sources a field map may name besides the lead's own columns.
OWNER_SOURCES = ("owner.name", "owner.email", "owner.hubspot_owner_id", "owner.salesforce_user_id")
EXTRA_SOURCES = ("domain", "company_name", "external_id", "team", "lifecycle_stage", "score", *OWNER_SOURCES, *_CONSENT)


def lead_value(lead: Lead, source: str) -> Any:
    if source == "domain":
        return company_domain(lead)
    if source == "company_name":
        # The company field, else the company record's name, else its domain: a Salesforce
        # Lead needs a Company.
        return lead.company or (lead.company_record.name or lead.company_record.domain if lead.company_record_id else "")
    if source == "team":
        return lead.team.name if lead.team_id else None
    head, _, name = source.partition(".")
    if head == "owner" and name:
        return getattr(lead.owner, name, None) if lead.owner_id else None
    if head in ("attributes", "attribution", "first_touch") and name:
        return getattr(lead, head).get(name)
    value = getattr(lead, source, None)
    if isinstance(value, datetime):
        # ISO 8601 in UTC to the millisecond, as HubSpot and Salesforce both write and accept it.
        return value.astimezone(dt_timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def source_error(source: str, *, extra: tuple[str, ...] = EXTRA_SOURCES) -> str:
    """'' when `source` names a lead field, one of `extra`, or an attributes.<name>,
    attribution.<name> (last touch) or first_touch.<name> value: what a field map, a scoring
    rule or a territory rule may read."""
    head, _, name = source.partition(".")
    if source in (*LEAD_FIELDS, *extra) or (head in ("attributes", "attribution", "first_touch") and name):
        return ""
    return (f"Use one of {', '.join((*LEAD_FIELDS, *extra))}, attributes.<name>, attribution.<name> "
            "or first_touch.<name>.")


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
    domain = company_domain(lead)
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
