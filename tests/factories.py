"""Small builders for the object graph tests need. Keyword arguments override defaults."""

from django.conf import settings

from delivery.fieldmap import fields_default_ensure
from delivery.models import Destination
from ingestion.models import Source, Submission
from leads.models import Lead
from mapping.models import FieldRule, MappingSet

EMAIL_RULE = {"source_keys": "email", "target": "email", "transforms": [{"op": "trim"}, {"op": "lower"}], "required": True}


def source_with_mapping(*, slug: str = "website", kind: str = "web_form", rules: tuple = (EMAIL_RULE,),
                        publish: bool = True, **set_fields) -> Source:
    """A source whose active mapping has the given rules (FieldRule fields as dicts),
    published as version 1 unless told otherwise."""
    from mapping.services import mapping_publish

    source = Source.objects.create(name=slug.title(), slug=slug, kind=kind)
    mapping_set = MappingSet.objects.create(source=source, name=f"{slug} mapping", **set_fields)
    for position, rule in enumerate(rules):
        FieldRule.objects.create(mapping_set=mapping_set, position=position, **rule)
    if publish:
        mapping_publish(mapping_set=mapping_set, note="test")
    return source


def submission(*, source: Source, payload: dict) -> Submission:
    return Submission.objects.create(source=source, raw_body=b"{}", content_type="application/json", payload=payload)


def hubspot_destination(*, base_url: str, token: str | None = None, **fields) -> Destination:
    # Tests dispatch right after queueing: no batch wait unless a test asks for one.
    fields.setdefault("batch_wait_seconds", 0)
    destination = Destination(name=fields.pop("name", "HubSpot"), base_url=base_url, **fields)
    destination.set_token(settings.SANDBOX_HUBSPOT_TOKEN if token is None else token)
    destination.save()
    fields_default_ensure(destination=destination)
    return destination


def lead(**fields) -> Lead:
    return Lead.objects.create(**{"email": "ada@example.com", "first_name": "Ada", **fields})


def source_with_secret(*, kind: str, secret: str = "", slug: str = "", **fields):
    """A source of a preset kind with one active credential for its auth method. Returns the
    source and the plaintext credential."""
    from ingestion.credentials import source_secret_add
    from ingestion.models import SourceSecret
    from ingestion.presets import Auth

    source = Source.objects.create(name=kind.title(), slug=slug or kind.replace("_", "-"), kind=kind, **fields)
    purpose = {
        Auth.API_KEY: SourceSecret.Purpose.API_KEY,
        Auth.URL_TOKEN: SourceSecret.Purpose.URL_TOKEN,
        Auth.SIGNATURE: SourceSecret.Purpose.SIGNING,
        Auth.GENERIC_HMAC: SourceSecret.Purpose.SIGNING,
    }.get(source.auth_method)
    if purpose is None:
        return source, ""
    _, plaintext = source_secret_add(source=source, purpose=purpose, value=secret)
    return source, plaintext


def deliver(lead: Lead):
    """Queue the lead's push jobs and dispatch them now; returns its (only) job, refreshed."""
    from delivery import services

    [job] = services.push_jobs_enqueue(lead=lead)
    services.push_dispatch_due()
    job.refresh_from_db()
    return job


def destination_form(**values) -> dict:
    """The destination admin's add form as a browser posts it (with an empty field-map inline)."""
    return {
        "name": "HubSpot prod", "kind": "hubspot", "auth_method": "private_app", "base_url": "https://api.hubapi.com",
        "api_version": "62.0", "object_model": "contact", "upsert_property": "crmsync_external_id",
        "company_upsert_property": "crmsync_domain", "credentials_env": "", "http_method": "POST", "headers": "{}",
        "body_template": "", "signature_header": "", "rate_limit_requests": "100", "rate_limit_window_seconds": "10",
        "daily_budget": "250000", "batch_size": "", "batch_wait_seconds": "3", "changed_fields_only": "on", "is_active": "on",
        "poll_interval_seconds": "0", "clock_margin_seconds": "30",
        "fields-TOTAL_FORMS": "0", "fields-INITIAL_FORMS": "0", "fields-MIN_NUM_FORMS": "0", "fields-MAX_NUM_FORMS": "1000",
        **values,
    }
