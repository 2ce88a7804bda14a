"""A destination's field map: what each CRM receives for a lead, and its defaults per kind."""

from typing import Any

from crmsync.models import Destination, DestinationField, Lead

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
DEFAULTS: dict[str, list[tuple[str, str, str, str]]] = {
    # object model: [(object, source, target, default)]
    Model.CONTACT: [(Obj.PRIMARY, s, t, "") for s, t in _PERSON],
    Model.CONTACT_COMPANY: [(Obj.PRIMARY, s, t, "") for s, t in _PERSON]
    + [(Obj.COMPANY, "company", "name", ""), (Obj.COMPANY, "domain", "domain", "")],
    # Salesforce requires LastName and Company on a Lead; "[not provided]" is the usual filler.
    Model.LEAD: [(Obj.PRIMARY, "email", "Email", ""), (Obj.PRIMARY, "first_name", "FirstName", ""),
                 (Obj.PRIMARY, "last_name", "LastName", "[not provided]"), (Obj.PRIMARY, "phone", "Phone", ""),
                 (Obj.PRIMARY, "company", "Company", "[not provided]"), (Obj.PRIMARY, "country", "Country", "")],
    Model.CONTACT_ACCOUNT: [(Obj.PRIMARY, "email", "Email", ""), (Obj.PRIMARY, "first_name", "FirstName", ""),
                            (Obj.PRIMARY, "last_name", "LastName", "[not provided]"), (Obj.PRIMARY, "phone", "Phone", ""),
                            (Obj.PRIMARY, "country", "MailingCountry", ""),
                            (Obj.COMPANY, "company", "Name", ""), (Obj.COMPANY, "domain", "Website", "")],
    Model.RECORD: [(Obj.PRIMARY, s, s, "") for s, _ in _PERSON],
}


def fields_default_ensure(*, destination: Destination) -> int:
    """Give a destination without a field map the default one for its object model."""
    if destination.fields.exists():
        return 0
    rows = [DestinationField(destination=destination, object=obj, source=source, target=target, default=default)
            for obj, source, target, default in DEFAULTS.get(destination.object_model, [])]
    DestinationField.objects.bulk_create(rows)
    return len(rows)


def company_domain(lead: Lead) -> str:
    """The company's domain from the lead's email, unless it is a free mail address."""
    explicit = str(lead.attributes.get("company_domain") or lead.attributes.get("website") or "")
    if explicit:
        return _bare_domain(explicit)
    _, _, domain = lead.email.rpartition("@")
    domain = domain.strip().lower()
    return "" if not domain or domain in FREE_MAIL_DOMAINS else domain


def _bare_domain(value: str) -> str:
    value = value.strip().lower()
    for prefix in ("https://", "http://"):
        value = value.removeprefix(prefix)
    return value.removeprefix("www.").split("/", 1)[0]


def lead_value(lead: Lead, source: str) -> Any:
    if source == "domain":
        return company_domain(lead)
    if source == "external_id":
        return lead.external_id
    head, _, name = source.partition(".")
    if head in ("attributes", "attribution") and name:
        return getattr(lead, head).get(name)
    return getattr(lead, source, None)


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


def personal_targets(fields: list[DestinationField]) -> set[str]:
    return {f.target for f in fields if f.source in PERSONAL_SOURCES}
