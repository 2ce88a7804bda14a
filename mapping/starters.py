"""A sensible first mapping for each kind of source, so a new source works at once: each
provider's own names for the person's fields, then the names forms commonly use. RevOps then
add aliases for their own form's names, by hand or from a sample (mapping/samples.py). Keys
are the extractor's flat view (see mapping/extractors.py)."""

from django.db import transaction

from ingestion.models import Source
from mapping.models import ATTRIBUTE_PREFIX, FieldRule, MappingSet
from mapping.services import key_form, mapping_publish

TEXT = [{"op": "trim"}, {"op": "collapse_whitespace"}]
EMAIL = [{"op": "trim"}, {"op": "lower"}]

# The chain each target gets in a starter mapping or a rule made from a sample.
CHAINS: dict[str, list[dict]] = {
    "email": EMAIL, "first_name": TEXT, "last_name": TEXT, "full_name": TEXT, "company": TEXT,
    "phone": [{"op": "phone_e164"}], "country": [{"op": "country_iso2"}],
    "external_id": TEXT, "source_record_id": TEXT,
    "marketing_opt_in": [{"op": "boolean"}], "consent_at": [{"op": "datetime"}], "consent_text": TEXT,
    "consent_source": TEXT, "attribution.referrer": [{"op": "trim"}], "attribution.landing_page": [{"op": "trim"}],
    **{f"attribution.{name}": [{"op": "utm_normalize"}]
       for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")},
}

# What people call each field on forms. Matching ignores case, spaces, underscores and hyphens
# (mapping.services.key_form), so one spelling covers 'First Name', first_name and firstName.
EMAIL_KEYS = "email, email_address, work_email, business_email, user_email, your-email"
FIRST_KEYS = "first_name, given_name, fname, forename"
LAST_KEYS = "last_name, surname, family_name, lname"
FULL_KEYS = "full_name, name, your-name, contact_name"
PHONE_KEYS = "phone, phone_number, telephone, tel, mobile, mobile_phone, your-phone"
COMPANY_KEYS = "company, company_name, organization, organisation, business_name"
COUNTRY_KEYS = "country, country_code"


def starter_rule(target: str, keys: str) -> dict:
    """A rule for `target` with its usual chain: an email is required (the lead's identity);
    any other value that cannot be read is dropped rather than losing the lead."""
    chain = [] if target.startswith(ATTRIBUTE_PREFIX) else CHAINS.get(target, TEXT)
    required = target == "email"
    return {"source_keys": keys, "target": target, "transforms": chain, "required": required,
            "on_invalid": "reject" if required else "drop"}


def _aliases(*groups: str) -> str:
    """Comma-separated names, in order, leaving out any that would find the same field."""
    kept: dict[str, str] = {}
    for name in (name.strip() for group in groups for name in group.split(",")):
        if name:
            kept.setdefault(key_form(name), name)
    return ", ".join(kept.values())


def _person(*, email: str = "", first: str = "", last: str = "", full: str = "", phone: str = "",
            company: str = "", country: str = "") -> list[dict]:
    """The person's fields: a provider's own names first, then the common ones."""
    keys = {"email": (email, EMAIL_KEYS), "first_name": (first, FIRST_KEYS), "last_name": (last, LAST_KEYS),
            "full_name": (full, FULL_KEYS), "phone": (phone, PHONE_KEYS), "company": (company, COMPANY_KEYS),
            "country": (country, COUNTRY_KEYS)}
    return [starter_rule(target, _aliases(*groups)) for target, groups in keys.items()]


def _utm(prefix: str = "") -> list[dict]:
    return [starter_rule(f"attribution.{name}", f"{prefix}{name}, {name}" if prefix else name)
            for name in ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")]


def _record_id(keys: str) -> list[dict]:
    """The source's own ID for the person or response: matched before the email."""
    return [starter_rule("source_record_id", keys)]


# Consent only when the form asks: no default, and a value that is not yes/no is dropped.
CONSENT = [
    starter_rule("marketing_opt_in", "marketing_opt_in, opt_in, consent, gdpr_consent, newsletter"),
    starter_rule("consent_at", "consent_at, consent_timestamp"),
    starter_rule("consent_text", "consent_text, consent_wording, consent_version"),
    starter_rule("attribution.referrer", "referrer, referer, page_referrer"),
    starter_rule("attribution.landing_page", "landing_page, page_url"),
    {**starter_rule("attributes.website", "website, company_website, company_domain"),
     "transforms": [{"op": "trim"}, {"op": "lower"}]},
]

GENERIC = _person() + _utm() + CONSENT

STARTERS: dict[str, list[dict]] = {
    "web_form": GENERIC,
    "json_webhook": GENERIC,
    # The Webhooks add-on's "Select Fields" body uses the names typed there; an "All Fields" body
    # is keyed by field ID ("1.3", "2"), which differ per form: map those from a sample.
    "gravity_forms": GENERIC,
    "tally": GENERIC + _record_id("responseId"),
    "webflow": GENERIC,
    "unbounce": GENERIC,
    "jotform": _person(first="name.first, fullName.first", last="name.last, fullName.last", full="fullName",
                       phone="phoneNumber.full, phone.full, phone_number.full", country="address.country")
    + _utm() + CONSENT,
    # The name typed on the payment page; not shipping.name, which may be someone else's.
    "stripe": _person(email="customer_details.email, customer_email", full="customer_details.name, "
                      "customer_details.individual_name", phone="customer_details.phone",
                      company="customer_details.business_name, metadata.company",
                      country="customer_details.address.country, address.country")
    + _utm("metadata.") + _record_id("customer, id"),
    "meta_lead_ads": _person() + _utm() + _record_id("leadgen_id"),
    "typeform": _person() + _utm("hidden.") + CONSENT + _record_id("token"),
    "calendly": _person(phone="text_reminder_number") + _utm("tracking.") + CONSENT,
}


def mapping_starter_create(*, source: Source, user=None) -> MappingSet:
    """Create and publish the kind's starter mapping as the source's active set."""
    with transaction.atomic():
        mapping_set = MappingSet.objects.create(source=source, name=f"{source.name} mapping")
        FieldRule.objects.bulk_create(FieldRule(mapping_set=mapping_set, position=i, **rule)
                                      for i, rule in enumerate(STARTERS[source.kind]))
        mapping_publish(mapping_set=mapping_set, user=user, note=f"Starter mapping for {source.preset.label}")
    return mapping_set
