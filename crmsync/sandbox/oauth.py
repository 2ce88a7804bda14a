"""The sandbox CRMs' OAuth token endpoints: HubSpot's refresh-token grant and Salesforce's
server-to-server grants (client credentials, JWT bearer). Credentials are the SANDBOX_* settings;
issued access tokens go to tokens.py with the CRM's lifetime (SandboxSettings.token_lifetime_seconds).
"""

import base64
import hashlib
import hmac
import time
from typing import Any, Mapping
import uuid

from django.conf import settings
import jwt

from crmsync.sandbox.limits import settings_get
from crmsync.sandbox.salesforce_schema import org_settings
from crmsync.sandbox.tokens import token_issue

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The sandbox org's IDs, shaped like Salesforce's (00D: organization, 005: user).
SALESFORCE_ORG_ID = "00D5g000004sandbAAA"
SALESFORCE_USER_ID = "0055g00000sandbAAA"
# Audiences Salesforce accepts in a JWT bearer assertion; the sandbox also takes its own origin.
SALESFORCE_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


class OAuthError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _same(given: str, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


# --- HubSpot ----------------------------------------------------------------------------------

def hubspot_token_refresh(*, form: Mapping[str, str]) -> dict[str, Any]:
    """POST /oauth/v3/token with grant_type=refresh_token: a new access token, the same refresh token."""
    if form.get("grant_type") != "refresh_token":
        raise _hubspot_error("BAD_GRANT_TYPE", "The sandbox only supports grant_type=refresh_token.")
    credentials_ok = _same(form.get("client_id", ""), settings.SANDBOX_HUBSPOT_CLIENT_ID) \
        & _same(form.get("client_secret", ""), settings.SANDBOX_HUBSPOT_CLIENT_SECRET) \
        & _same(form.get("refresh_token", ""), settings.SANDBOX_HUBSPOT_REFRESH_TOKEN)  # & so all three are compared
    if not credentials_ok:
        raise _hubspot_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
    lifetime = settings_get(crm="hubspot").token_lifetime_seconds
    token, _ = token_issue(crm="hubspot", subject=form["client_id"], lifetime_seconds=lifetime, prefix="CKsandbox")
    return {"access_token": token, "refresh_token": form["refresh_token"], "expires_in": lifetime,
            "token_type": "bearer"}


def _hubspot_error(status: str, message: str) -> OAuthError:
    return OAuthError(400, {"status": status, "message": message, "correlationId": str(uuid.uuid4())})


# --- Salesforce -------------------------------------------------------------------------------

def salesforce_token_grant(*, form: Mapping[str, str], instance_url: str) -> dict[str, Any]:
    """POST /services/oauth2/token. `instance_url` is the origin the request reached, which
    Salesforce clients must use for every later call."""
    grant_type = form.get("grant_type", "")
    if grant_type == "client_credentials":
        subject = _client_credentials(form)
    elif grant_type == JWT_BEARER:
        subject = _jwt_bearer(form.get("assertion", ""), instance_url)
    else:
        raise _salesforce_error("unsupported_grant_type", "grant type not supported")
    lifetime = org_settings().token_lifetime_seconds
    token, _ = token_issue(crm="salesforce", subject=subject, lifetime_seconds=lifetime,
                           prefix=f"{SALESFORCE_ORG_ID[:15]}!")
    identity = f"{instance_url}/id/{SALESFORCE_ORG_ID}/{SALESFORCE_USER_ID}"
    issued_at = str(int(time.time() * 1000))
    return {"access_token": token, "instance_url": instance_url, "id": identity, "token_type": "Bearer",
            "issued_at": issued_at, "signature": _signature(identity, issued_at)}


def _client_credentials(form: Mapping[str, str]) -> str:
    if not (_same(form.get("client_id", ""), settings.SANDBOX_SALESFORCE_CLIENT_ID)
            & _same(form.get("client_secret", ""), settings.SANDBOX_SALESFORCE_CLIENT_SECRET)):
        raise _salesforce_error("invalid_client", "invalid client credentials")
    return form["client_id"]


def _jwt_bearer(assertion: str, instance_url: str) -> str:
    """Check the RS256 signature against the configured certificate's key, then the claims."""
    public_key = org_settings().jwt_public_key.strip()
    if not assertion or not public_key:
        raise _salesforce_error("invalid_grant", "invalid assertion")
    try:
        claims = jwt.decode(assertion, public_key, algorithms=["RS256"],
                            audience=[*SALESFORCE_AUDIENCES, instance_url],
                            options={"require": ["iss", "sub", "aud", "exp"]})
    except jwt.ExpiredSignatureError:
        raise _salesforce_error("invalid_grant", "expired authorization code") from None
    except jwt.InvalidAudienceError:
        raise _salesforce_error("invalid_grant", "audience is invalid") from None
    except (jwt.InvalidTokenError, ValueError):  # ValueError: a key that is not a PEM public key
        raise _salesforce_error("invalid_grant", "invalid assertion") from None
    if not _same(str(claims["iss"]), settings.SANDBOX_SALESFORCE_CLIENT_ID):
        raise _salesforce_error("invalid_client", "invalid client credentials")
    if not str(claims["sub"]).strip():
        raise _salesforce_error("invalid_grant", "user hasn't approved this consumer")
    return str(claims["sub"])


def _signature(identity: str, issued_at: str) -> str:
    # Salesforce signs id + issued_at with the consumer secret, so a client can check the answer.
    digest = hmac.new(settings.SANDBOX_SALESFORCE_CLIENT_SECRET.encode(), f"{identity}{issued_at}".encode(),
                      hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _salesforce_error(error: str, description: str) -> OAuthError:
    return OAuthError(400, {"error": error, "error_description": description})
