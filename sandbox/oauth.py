"""What the sandbox CRMs' OAuth endpoints share: their error and a constant-time credential check.

The grants are the vendors': hubspot/oauth.py (refresh token) and salesforce/oauth.py (client
credentials, JWT bearer).
"""

import hmac
from typing import Any


class OAuthError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def credential_matches(given: str, expected: str) -> bool:
    """False for an unset (empty) credential, so a missing setting never admits anyone."""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
