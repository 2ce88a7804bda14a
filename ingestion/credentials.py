"""Source credentials: generated keys are shown once and kept hashed; provider secrets are
kept encrypted because we need them again to compute an HMAC or call an API."""

from django.core.exceptions import ValidationError
from django.db import transaction

from core import secrets as crypto
from ingestion.models import Source, SourceSecret
from ingestion.signatures import api_key_hash, new_api_key


def source_secret_add(*, source: Source, purpose: str, value: str = "", label: str = "") -> tuple[SourceSecret, str]:
    """Add an active credential and return it with its plaintext, which is never readable again
    for hashed purposes. Keys and tokens are generated when no value is given."""
    hashed = purpose in SourceSecret.HASHED
    if not value:
        if not hashed:
            raise ValidationError({"value": "Paste the secret the provider gave you."})
        value = new_api_key()
    with transaction.atomic():
        # Lock the source row so two admins cannot both add a third active secret.
        Source.objects.select_for_update().get(pk=source.pk)
        if source.secrets.filter(purpose=purpose, is_active=True).count() >= SourceSecret.MAX_ACTIVE:
            raise ValidationError(
                f"{source.name} already has {SourceSecret.MAX_ACTIVE} active {purpose} secrets; "
                "deactivate the old one after the sender switched.")
        secret = SourceSecret.objects.create(
            source=source, purpose=purpose, label=label, hint=value[-4:],
            value_hash=api_key_hash(value) if hashed else "",
            value_encrypted="" if hashed else crypto.encrypt(value),
        )
    return secret, value
