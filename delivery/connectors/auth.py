"""Short-lived access tokens (HubSpot OAuth, Salesforce), shared by every worker.

A token is kept encrypted on the destination row with its expiry, so a fleet of workers asks
the CRM for one token, not one each. A connector calls `token()` before a call and
`refresh()` once when the CRM refuses the token; a second refusal is an auth failure.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from django.utils import timezone

from core import secrets
from delivery.models import Destination

# Refresh this long before the stated expiry, so a token never dies in flight.
EARLY = timedelta(seconds=60)


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: datetime | None  # None: valid until refused
    instance_url: str = ""  # Salesforce returns the instance to call with the token


class TokenProvider:
    def __init__(self, destination: Destination, fetch: Callable[[], AccessToken]) -> None:
        self.destination = destination
        self.fetch = fetch  # asks the CRM for a new token; raises ConnectorError or SecretUnavailable

    def token(self) -> str:
        row = Destination.objects.filter(pk=self.destination.pk).values(
            "access_token_encrypted", "access_token_expires_at", "instance_url").first() or {}
        encrypted, expires_at = row.get("access_token_encrypted"), row.get("access_token_expires_at")
        if encrypted and (expires_at is None or expires_at - EARLY > timezone.now()):
            self.destination.instance_url = row.get("instance_url") or ""
            try:
                return secrets.decrypt(encrypted)
            except secrets.SecretUnavailable:
                pass  # the keys were rotated away: fetch a new one
        return self.refresh()

    def refresh(self) -> str:
        token = self.fetch()
        changes = {"access_token_encrypted": secrets.encrypt(token.value), "access_token_expires_at": token.expires_at}
        if token.instance_url:
            changes["instance_url"] = token.instance_url
        Destination.objects.filter(pk=self.destination.pk).update(**changes)
        for name, value in changes.items():
            setattr(self.destination, name, value)
        return token.value
