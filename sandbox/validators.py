"""Checks of property and field values that both sandbox CRMs apply on write."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email


def is_email(text: str) -> bool:
    """Email syntax as Django checks it (no DNS), for both sandbox CRMs."""
    try:
        validate_email(text)
    except ValidationError:
        return False
    return True
