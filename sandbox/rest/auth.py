"""The REST CRM's credentials: a check per `auth` switch, and the OAuth token endpoint's grants.

The credentials are fixed (listed in sandbox/rest/__init__.py): the sandbox stands for one
CRM account, and a test sets which way it must be called, not what the secrets are.
"""

import base64
import binascii
from typing import Callable

from django.http import HttpRequest, QueryDict

from sandbox.models import SandboxRestSettings
from sandbox.oauth import credential_matches
from sandbox.rest.errors import RestError, invalid, unauthorized
from sandbox.tokens import TokenState, bearer_token, token_issue, token_state

CRM = "rest"
TOKEN = "sandbox-rest-token"
API_KEY = "sandbox-rest-key"
USER = "sandbox-rest-user"
PASSWORD = "sandbox-rest-password"
CLIENT_ID = "sandbox-rest-client"
CLIENT_SECRET = "sandbox-rest-secret"
REFRESH_TOKEN = "sandbox-rest-refresh"
TOKEN_LIFETIME_SECONDS = 3600
Auth = SandboxRestSettings.Auth
# The grant each OAuth mode's tokens must come from: a client set to the other flow is refused.
GRANTS = {Auth.OAUTH_CLIENT_CREDENTIALS: "client_credentials", Auth.OAUTH_REFRESH: "refresh_token"}
# Issued tokens start with their grant's prefix, so a data call can tell which grant issued one.
PREFIXES = {"client_credentials": "cc-", "refresh_token": "rt-"}


def auth_refusal(request: HttpRequest, mode: str) -> RestError | None:
    """Why the request's credentials do not pass under `mode`, or None when they do."""
    if mode == Auth.NONE:
        return None
    check = {Auth.BEARER: _bearer, Auth.HEADER: _api_key, Auth.BASIC: _basic}.get(mode, _oauth)
    return check(request, mode)


def _bearer(request: HttpRequest, mode: str) -> RestError | None:
    if credential_matches(_authorization_token(request, "bearer"), TOKEN):
        return None
    return unauthorized("Send Authorization: Bearer <the API token>.")


def _api_key(request: HttpRequest, mode: str) -> RestError | None:
    key = request.headers.get("X-Api-Key", "") or _authorization_token(request, "token")
    if credential_matches(key, API_KEY):
        return None
    return unauthorized("Send the API key as X-Api-Key: <key> or Authorization: Token <key>.")


def _basic(request: HttpRequest, mode: str) -> RestError | None:
    user, password = basic_credentials(request)
    if credential_matches(user, USER) & credential_matches(password, PASSWORD):  # & : both compared, always
        return None
    return unauthorized("Send HTTP Basic credentials of the API user.")


def _oauth(request: HttpRequest, mode: str) -> RestError | None:
    token = bearer_token(request.headers.get("Authorization", ""))
    state = token_state(crm=CRM, token=token)
    if state is TokenState.EXPIRED:
        return unauthorized("The access token has expired; get a new one from /sandbox/rest/oauth/token.")
    if state is TokenState.UNKNOWN:
        return unauthorized("Send Authorization: Bearer <an access token from /sandbox/rest/oauth/token>.")
    if not token.startswith(PREFIXES[GRANTS[mode]]):
        return unauthorized(f"This access token was not issued by the {GRANTS[mode]} grant this CRM expects.")
    return None


def _authorization_token(request: HttpRequest, scheme: str) -> str:
    given, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if given.lower() == scheme else ""


def basic_credentials(request: HttpRequest) -> tuple[str, str]:
    """User and password of an `Authorization: Basic` header, ("", "") without a readable one."""
    encoded = _authorization_token(request, "basic")
    try:
        user, colon, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return (user, password) if colon else ("", "")


# --- the token endpoint -----------------------------------------------------------------------

def token_grant(*, form: QueryDict, request: HttpRequest) -> dict:
    """POST /sandbox/rest/oauth/token: an access token for the client credentials, or for the
    refresh token. The client may authenticate in the form or with HTTP Basic (RFC 6749 2.3.1),
    as OAuth libraries do by default."""
    grant = form.get("grant_type", "")
    checks: dict[str, Callable[[QueryDict], bool]] = {
        "client_credentials": lambda f: True,
        "refresh_token": lambda f: credential_matches(f.get("refresh_token", ""), REFRESH_TOKEN),
    }
    if grant not in checks:
        raise invalid("grant_type must be client_credentials or refresh_token.")
    client_id, client_secret = basic_credentials(request)
    client_id, client_secret = form.get("client_id", client_id), form.get("client_secret", client_secret)
    if not (credential_matches(client_id, CLIENT_ID) & credential_matches(client_secret, CLIENT_SECRET)):
        raise unauthorized("Unknown client_id or wrong client_secret.")
    if not checks[grant](form):
        raise unauthorized("The refresh_token is not valid.")
    token, _ = token_issue(crm=CRM, subject=client_id, lifetime_seconds=TOKEN_LIFETIME_SECONDS,
                           prefix=PREFIXES[grant])
    return {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_SECONDS}
