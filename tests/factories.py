"""Small builders for the object graph tests need. Keyword arguments override defaults."""

from django.conf import settings

from crmsync.models import Destination, Lead
from ingestion.models import Source, Submission
from mapping.models import FieldRule, MappingSet


def source_with_mapping(*, slug: str = "website", rules: tuple = (("email", "email", True, True),)) -> Source:
    """A web-form source whose active mapping has the given (field, target, lowercase, required) rules."""
    source = Source.objects.create(name=slug.title(), slug=slug)
    mapping_set = MappingSet.objects.create(source=source, name=f"{slug} mapping")
    for position, (field, target, lowercase, required) in enumerate(rules):
        FieldRule.objects.create(mapping_set=mapping_set, position=position, source_field=field,
                                 target=target, lowercase=lowercase, required=required)
    return source


def submission(*, source: Source, payload: dict) -> Submission:
    return Submission.objects.create(source=source, raw_body=b"{}", content_type="application/json", payload=payload)


def hubspot_destination(*, base_url: str, token: str | None = None, **fields) -> Destination:
    destination = Destination(name=fields.pop("name", "HubSpot"), base_url=base_url, **fields)
    destination.set_token(settings.SANDBOX_HUBSPOT_TOKEN if token is None else token)
    destination.save()
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
