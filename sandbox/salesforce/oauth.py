"""Salesforce's OAuth token endpoint in the sandbox: client-credentials and JWT-bearer grants.

Credentials are the SANDBOX_SALESFORCE_* settings and the org's JWT public key; issued access
tokens go to sandbox/tokens.py with the org's session lifetime (SandboxSettings.token_lifetime_seconds).
"""

import base64
import hashlib
import hmac
import time
from typing import Any, Mapping

from django.conf import settings
import jwt

from sandbox.oauth import OAuthError, credential_matches
from sandbox.salesforce.schema import org_settings
from sandbox.tokens import token_issue

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The sandbox org's IDs, shaped like Salesforce's (00D: organization, 005: user).
SALESFORCE_ORG_ID = "00D5g000004sandbAAA"
SALESFORCE_USER_ID = "0055g00000sandbAAA"
# Audiences Salesforce accepts in a JWT bearer assertion; the sandbox also takes its own origin.
SALESFORCE_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")


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
    if not (credential_matches(form.get("client_id", ""), settings.SANDBOX_SALESFORCE_CLIENT_ID)
            & credential_matches(form.get("client_secret", ""), settings.SANDBOX_SALESFORCE_CLIENT_SECRET)):
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
    if not credential_matches(str(claims["iss"]), settings.SANDBOX_SALESFORCE_CLIENT_ID):
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
