"""Credentials at rest: Fernet-encrypted with keys from the environment, never logged."""

import os

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnavailable(Exception):
    """A credential could not be read (missing env variable or a key that no longer decrypts)."""


def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(key) for key in settings.CRMSYNC_ENCRYPTION_KEYS])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("CRMSYNC_ENCRYPTION_KEYS holds an invalid Fernet key.") from exc


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnavailable("Stored credential cannot be decrypted with the configured keys.") from exc


def from_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SecretUnavailable(f"Environment variable {name} is not set.")
    return value
