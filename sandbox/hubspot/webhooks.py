"""HubSpot's webhooks (v3 signature) sent by the sandbox: on demand to any URL, and from the
sandbox's own subscriptions (SandboxWebhookSubscription) on person edits, deletions and merges.

HubSpot POSTs a JSON array of events with `X-HubSpot-Request-Timestamp` (ms) and
`X-HubSpot-Signature-v3`: base64 of HMAC-SHA256, keyed with the app's client secret, over
method + URI + body + timestamp. The URI is the one addressed, with the %-escapes HubSpot's
validation guide lists decoded (a receiver decodes the same ones before checking).
"""

import base64
from datetime import datetime
import hashlib
import hmac
import itertools
import json
import threading
import time
from typing import Any

import requests

from sandbox.clock import Actor, crm_now
from sandbox.hubspot.properties import ObjectType
from sandbox.hubspot.records import APP_ID, CRM, iso
from sandbox.models import SandboxRecord, SandboxWebhookSubscription

PORTAL_ID = 2026000
# HubSpot's request validation (v3): these escapes are decoded in the URI that is signed.
DECODED_ESCAPES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                   "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
SEND_TIMEOUT = (5, 10)
_event_ids = itertools.count(int(time.time()))


def signed_uri(url: str) -> str:
    for escape, char in DECODED_ESCAPES.items():
        url = url.replace(escape, char).replace(escape.lower(), char)
    return url


def signature_v3(*, client_secret: str, method: str, url: str, body: bytes, timestamp_ms: int) -> str:
    message = method.upper().encode() + signed_uri(url).encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(client_secret.encode(), message, hashlib.sha256).digest()).decode()


def event_complete(raw: dict[str, Any], *, now_ms: int) -> dict[str, Any]:
    """An event with HubSpot's envelope fields filled in where the caller left them out."""
    return {"eventId": next(_event_ids), "subscriptionId": 1, "portalId": PORTAL_ID, "appId": int(APP_ID),
            "occurredAt": now_ms, "attemptNumber": 0, "changeSource": "CRM_UI", **raw}


def webhook_send(*, url: str, client_secret: str, events: list[dict[str, Any]],
                 timestamp_ms: int | None = None, now_ms: int | None = None) -> dict[str, Any]:
    """POST the events to `url` as HubSpot does; what came back, for the caller to show.
    `timestamp_ms` (default: the CRM's clock now) lets a test send a stale or future request."""
    now_ms = _ms(crm_now(crm=CRM)) if now_ms is None else now_ms
    body = json.dumps([event_complete(e, now_ms=now_ms) for e in events], separators=(",", ":")).encode()
    stamp = now_ms if timestamp_ms is None else timestamp_ms
    headers = {"Content-Type": "application/json", "X-HubSpot-Request-Timestamp": str(stamp),
               "X-HubSpot-Signature-v3": signature_v3(client_secret=client_secret, method="POST", url=url, body=body,
                                                      timestamp_ms=stamp)}
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=SEND_TIMEOUT)
    except requests.RequestException as exc:
        return {"delivered": False, "error": f"{type(exc).__name__}: {exc}", "events": json.loads(body)}
    return {"delivered": answer.ok, "status": answer.status_code, "body": answer.text[:2000], "events": json.loads(body)}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# --- the sandbox's own subscriptions ----------------------------------------------------------

def person_edit_notify(kind: ObjectType, record: SandboxRecord, *, actor: Actor) -> None:
    """propertyChange events for the properties a person's write just changed (their newest
    history entry carries the record's modification time)."""
    if not actor.is_person:
        return
    stamp = iso(record.updated_at)
    changed = {name: entries[0]["value"] for name, entries in record.history.items()
               if entries and entries[0]["timestamp"] == stamp}
    _notify(kind, "property_changes", [
        {"subscriptionType": f"{kind.singular}.propertyChange", "objectId": record.pk, "propertyName": name,
         "propertyValue": value, "changeSource": "CRM_UI", "sourceId": actor.person,
         "occurredAt": _ms(record.updated_at)} for name, value in changed.items()])


def deletion_notify(kind: ObjectType, record: SandboxRecord, *, actor: Actor) -> None:
    _notify(kind, "deletions", [{"subscriptionType": f"{kind.singular}.deletion", "objectId": record.pk,
                                 "changeSource": _source(actor), "occurredAt": _ms(record.archived_at or crm_now(crm=CRM))}])


def merge_notify(kind: ObjectType, survivor: SandboxRecord, *, merged_id: int, actor: Actor) -> None:
    _notify(kind, "merges", [{"subscriptionType": f"{kind.singular}.merge", "objectId": survivor.pk,
                              "primaryObjectId": survivor.pk, "newObjectId": survivor.pk,
                              "mergedObjectIds": [merged_id], "changeSource": _source(actor),
                              "occurredAt": _ms(survivor.updated_at)}])


def _source(actor: Actor) -> str:
    return "CRM_UI" if actor.is_person else "INTEGRATION"


def _notify(kind: ObjectType, flag: str, events: list[dict[str, Any]]) -> None:
    """Send to every active subscription that wants these events, off the request's thread:
    the receiver may be served by this very process."""
    if not events:
        return
    targets = list(SandboxWebhookSubscription.objects.filter(active=True, object_type=kind.name, **{flag: True})
                   .values_list("target_url", "client_secret"))
    now_ms = _ms(crm_now(crm=CRM))  # here: the sending thread must not open a database connection
    for url, secret in targets:
        threading.Thread(target=webhook_send, daemon=True,
                         kwargs={"url": url, "client_secret": secret, "events": events, "now_ms": now_ms}).start()
