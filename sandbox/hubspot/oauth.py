"""HubSpot's OAuth token endpoint in the sandbox: the refresh-token grant.

Credentials are the SANDBOX_HUBSPOT_* settings; issued access tokens go to sandbox/tokens.py
with HubSpot's lifetime (SandboxSettings.token_lifetime_seconds).
"""

from typing import Any, Mapping
import uuid

from django.conf import settings

from sandbox.limits import settings_get
from sandbox.oauth import OAuthError, credential_matches
from sandbox.tokens import token_issue


def hubspot_token_refresh(*, form: Mapping[str, str]) -> dict[str, Any]:
    """POST /oauth/v3/token with grant_type=refresh_token: a new access token, the same refresh token."""
    if form.get("grant_type") != "refresh_token":
        raise _hubspot_error("BAD_GRANT_TYPE", "The sandbox only supports grant_type=refresh_token.")
    # &, not `and`, so all three are compared.
    credentials_ok = (credential_matches(form.get("client_id", ""), settings.SANDBOX_HUBSPOT_CLIENT_ID)
                      & credential_matches(form.get("client_secret", ""), settings.SANDBOX_HUBSPOT_CLIENT_SECRET)
                      & credential_matches(form.get("refresh_token", ""), settings.SANDBOX_HUBSPOT_REFRESH_TOKEN))
    if not credentials_ok:
        raise _hubspot_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
    lifetime = settings_get(crm="hubspot").token_lifetime_seconds
    token, _ = token_issue(crm="hubspot", subject=form["client_id"], lifetime_seconds=lifetime, prefix="CKsandbox")
    return {"access_token": token, "refresh_token": form["refresh_token"], "expires_in": lifetime,
            "token_type": "bearer"}


def _hubspot_error(status: str, message: str) -> OAuthError:
    return OAuthError(400, {"status": status, "message": message, "correlationId": str(uuid.uuid4())})
