"""A sensible first mapping for each kind of source, so a new source works at once; RevOps then
add aliases for their own form's field names. Keys are the extractor's flat view (see
mapping/extractors.py)."""

from django.db import transaction

from ingestion.models import Source
from mapping.models import FieldRule, MappingSet
from mapping.services import mapping_publish

TEXT = [{"op": "trim"}, {"op": "collapse_whitespace"}]
EMAIL = [{"op": "trim"}, {"op": "lower"}]


def _rule(keys: str, target: str, chain: list, *, required: bool = False, on_invalid: str = "drop") -> dict:
    return {"source_keys": keys, "target": target, "transforms": chain, "required": required, "on_invalid": on_invalid}


def _person(email: str, first: str, last: str, full: str, phone: str, company: str, country: str) -> list[dict]:
    return [
        _rule(email, "email", EMAIL, required=True, on_invalid="reject"),
        _rule(first, "first_name", TEXT),
        _rule(last, "last_name", TEXT),
        _rule(full, "attributes.full_name", TEXT),
        _rule(phone, "phone", [{"op": "phone_e164"}]),
        _rule(company, "company", TEXT),
        _rule(country, "country", [{"op": "country_iso2"}]),
    ]


def _utm(prefix: str = "") -> list[dict]:
    return [_rule(f"{prefix}{name}, {name}", f"attribution.{name}", [{"op": "utm_normalize"}])
            for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")]


def _record_id(keys: str) -> list[dict]:
    """The source's own ID for the person or response: matched before the email."""
    return [_rule(keys, "source_record_id", TEXT)]


# Consent only when the form asks: no default, and a value that is not yes/no is dropped.
CONSENT = [
    _rule("marketing_opt_in, opt_in, consent, gdpr_consent, newsletter", "marketing_opt_in", [{"op": "boolean"}]),
    _rule("consent_at, consent_timestamp", "consent_at", [{"op": "datetime"}]),
    _rule("consent_text, consent_wording, consent_version", "consent_text", TEXT),
    _rule("referrer, referer, page_referrer", "attribution.referrer", [{"op": "trim"}]),
    _rule("landing_page, page_url, pageUrl", "attribution.landing_page", [{"op": "trim"}]),
    _rule("website, company_website, company_domain", "attributes.website", [{"op": "trim"}, {"op": "lower"}]),
]

GENERIC = _person("email, email_address, user_email, Email", "first_name, firstname, First name",
                  "last_name, lastname, Last name", "name, full_name, Name", "phone, phone_number, Phone",
                  "company, company_name, Company", "country, Country") + _utm() + CONSENT

STARTERS: dict[str, list[dict]] = {
    "web_form": GENERIC,
    "json_webhook": GENERIC,
    "gravity_forms": GENERIC,
    "tally": GENERIC + _record_id("responseId"),
    "webflow": GENERIC,
    "unbounce": GENERIC,
    "jotform": _person("email", "name.first", "name.last", "fullName, name", "phoneNumber.full, phone",
                       "company", "address.country, country") + _utm(),
    "stripe": _person("customer_details.email, customer_email, email", "first_name", "last_name",
                      "customer_details.name, name", "customer_details.phone, phone", "company",
                      "customer_details.address.country, address.country") + _utm("metadata.")
    + _record_id("customer, id"),
    "meta_lead_ads": _person("email", "first_name", "last_name", "full_name", "phone_number",
                             "company_name", "country") + _utm() + _record_id("leadgen_id"),
    "typeform": _person("email", "first_name", "last_name", "name", "phone_number", "company", "country")
    + _utm("hidden.") + _record_id("token"),
    "calendly": _person("email", "first_name", "last_name", "name", "text_reminder_number", "company", "country")
    + _utm("tracking."),
}


def mapping_starter_create(*, source: Source, user=None) -> MappingSet:
    """Create and publish the kind's starter mapping as the source's active set."""
    with transaction.atomic():
        mapping_set = MappingSet.objects.create(source=source, name=f"{source.name} mapping")
        FieldRule.objects.bulk_create(FieldRule(mapping_set=mapping_set, position=i, **rule)
                                      for i, rule in enumerate(STARTERS[source.kind]))
        mapping_publish(mapping_set=mapping_set, user=user, note=f"Starter mapping for {source.preset.label}")
    return mapping_set
