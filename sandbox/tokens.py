"""Access tokens issued by the sandbox's OAuth endpoints (HubSpot refresh, Salesforce client
credentials and JWT bearer), kept as SHA-256 digests with their expiry.

Both CRMs also refuse a token they never issued; telling "expired" from "unknown" matters for
HubSpot, whose 401 says EXPIRED_AUTHENTICATION only for the former.
"""

from datetime import datetime, timedelta
from enum import Enum
import hashlib
import secrets

from django.utils import timezone

from sandbox.models import SandboxAccessToken


class TokenState(Enum):
    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_issue(*, crm: str, subject: str, lifetime_seconds: int, prefix: str = "") -> tuple[str, datetime]:
    """A new random access token for `subject` and when it expires."""
    token = prefix + secrets.token_urlsafe(48)
    expires_at = timezone.now() + timedelta(seconds=lifetime_seconds)
    SandboxAccessToken.objects.create(crm=crm, token_sha256=_digest(token), subject=subject, expires_at=expires_at)
    return token, expires_at


def token_state(*, crm: str, token: str) -> TokenState:
    if not token:
        return TokenState.UNKNOWN
    expires_at = (SandboxAccessToken.objects.filter(crm=crm, token_sha256=_digest(token))
                  .values_list("expires_at", flat=True).first())
    if expires_at is None:
        return TokenState.UNKNOWN
    return TokenState.VALID if expires_at > timezone.now() else TokenState.EXPIRED


def bearer_token(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header, "" for anything else."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""
