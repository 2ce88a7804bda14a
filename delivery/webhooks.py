"""HubSpot's webhooks: the two-way sync's optional fast path.

HubSpot calls POST /api/crm-webhooks/hubspot/<destination id> with a JSON array of events
when a contact or company changes. A call is believed only when its v3 signature holds; it
then only names records for the poller to read now (delivery.sync.poll_hint). The event's
values are never applied: the poller reads the record and stays the one source of truth, so a
lost, repeated or reordered webhook changes nothing but how soon a change arrives.

Signature v3 (HubSpot, "Validating requests", v3): base64(HMAC-SHA256(the app's client secret,
method + URI + raw body + X-HubSpot-Request-Timestamp)), the URI as HubSpot addressed it
(scheme, host, path and query) with some %-escapes decoded; refused when the timestamp (ms) is
more than 5 minutes old. We also refuse one more than 5 minutes ahead: no honest sender signs
in the future, and a far-future timestamp would make a captured call replayable for as long.
"""

import base64
from collections.abc import Iterable, Sequence
import hashlib
import hmac
import json
import logging
import re
import time

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.secrets import SecretUnavailable
from delivery.models import Destination
from delivery.sync import poll_hint
from ingestion.parsing import IntakeError, read_body

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
WINDOW_MS = 5 * 60 * 1000
# The destination credential (stored encrypted, or in its credentials_env JSON) holding the
# HubSpot app's client secret.
SECRET_KEY = "webhook_client_secret"
# HubSpot decodes these escapes in the URI before signing (its v3 table); any other escape,
# %20 for one, stays as sent.
_DECODED = {"3A": ":", "2F": "/", "3F": "?", "40": "@", "21": "!", "24": "$", "27": "'", "28": "(", "29": ")",
            "2A": "*", "2C": ",", "3B": ";"}
_ESCAPE = re.compile("%(" + "|".join(_DECODED) + ")", re.IGNORECASE)
# subscriptionType "contact.propertyChange" / "company.deletion"..., or the generic
# "object.propertyChange" with HubSpot's object type IDs (0-1 contacts, 0-2 companies).
_OBJECTS = {"contact": "primary", "company": "company"}
_OBJECT_TYPE_IDS = {"0-1": "primary", "0-2": "company"}
# Besides objectId, a merge event names the records it merged and the one that survived.
_MERGE_ID_KEYS = ("primaryObjectId", "newObjectId")


class WebhookRefused(Exception):
    """Refused with an HTTP status, a stable code and plain words (never the secret or digest)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


# --- Signature v3 -------------------------------------------------------------------------


def signed_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed %-escapes decoded, everything else as sent."""
    return _ESCAPE.sub(lambda match: _DECODED[match.group(1).upper()], uri)


def signature_v3(*, secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + signed_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signature_v3_verify(*, secret: str, method: str, uris: Sequence[str], body: bytes, signature: str,
                        timestamp: str, now_ms: int | None = None) -> None:
    """Raises WebhookRefused (401) unless `signature` signs the request at one of `uris` (the
    URL as this server sees it, and the https form of it behind a TLS proxy) within the window."""
    if not signature or not timestamp:
        missing = " and ".join(name for name, value in ((SIGNATURE_HEADER, signature), (TIMESTAMP_HEADER, timestamp))
                               if not value)
        raise WebhookRefused(401, "missing_signature", f"The request carries no {missing} header.")
    _check_timestamp(timestamp, int(time.time() * 1000) if now_ms is None else now_ms)
    given = signature.strip().encode("utf-8", "replace")
    for uri in uris:
        expected = signature_v3(secret=secret, method=method, uri=uri, body=body, timestamp=timestamp)
        if hmac.compare_digest(expected.encode(), given):
            return
    raise WebhookRefused(401, "bad_signature", f"{SIGNATURE_HEADER} does not match the request for this "
                                               "destination's webhook client secret.")


def _check_timestamp(timestamp: str, now_ms: int) -> None:
    if not timestamp.isascii() or not timestamp.isdigit():
        raise WebhookRefused(401, "malformed_timestamp", f"{TIMESTAMP_HEADER} is not a time in milliseconds.")
    skew = now_ms - int(timestamp)
    if skew > WINDOW_MS:
        raise WebhookRefused(401, "stale_timestamp", f"{TIMESTAMP_HEADER} is more than 5 minutes old.")
    if skew < -WINDOW_MS:
        raise WebhookRefused(401, "future_timestamp", f"{TIMESTAMP_HEADER} is more than 5 minutes ahead of this "
                                                      "server's clock.")


# --- Events -> records to poll ------------------------------------------------------------


def hints_from_events(events: Iterable, *, companies: bool) -> tuple[dict[str, list[str]], int]:
    """The CRM IDs each event names, by object ("primary" contacts, "company"), each once and in
    order; and how many events named nothing we sync (other objects, companies when the
    destination writes none, association changes, malformed items). Those are skipped, not
    refused: HubSpot would only retry a refused batch."""
    hints: dict[str, dict[str, None]] = {"primary": {}, "company": {}}
    ignored = 0
    for event in events:
        object_ = _object_of(event)
        ids = _ids_of(event) if object_ else []
        if not ids or (object_ == "company" and not companies):
            ignored += 1
            continue
        hints[object_].update(dict.fromkeys(ids))
    return {object_: list(ids) for object_, ids in hints.items() if ids}, ignored


def _object_of(event) -> str:
    if not isinstance(event, dict) or not isinstance(event.get("subscriptionType"), str):
        return ""
    kind = event["subscriptionType"].split(".", 1)[0]
    if kind == "object":
        return _OBJECT_TYPE_IDS.get(str(event.get("objectTypeId", "")), "")
    return _OBJECTS.get(kind, "")


def _ids_of(event: dict) -> list[str]:
    candidates = [event.get("objectId"), *(event.get(key) for key in _MERGE_ID_KEYS)]
    merged = event.get("mergedObjectIds")
    if isinstance(merged, list):
        candidates.extend(merged)
    return [str(value) for value in candidates if _is_id(value)]


def _is_id(value) -> bool:
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and value > 0) or (isinstance(value, str) and value.isascii() and value.isdigit())


# --- The view ---------------------------------------------------------------------------------


@csrf_exempt
def hubspot_webhook(request: HttpRequest, destination_id: int) -> JsonResponse:
    if request.method != "POST":
        answer = _error(WebhookRefused(405, "method_not_allowed", "HubSpot webhooks are POSTed here."))
        answer["Allow"] = "POST"
        return answer
    try:
        destination, events = _verified_events(request, destination_id)
    except WebhookRefused as refused:
        log.warning("hubspot webhook refused", extra={"destination": destination_id, "status": refused.status,
                                                      "reason": refused.code})
        return _error(refused)
    hints, ignored = hints_from_events(events, companies=_writes_companies(destination))
    _poll_hint(destination, hints)
    counts = {object_: len(ids) for object_, ids in hints.items()}
    log.info("hubspot webhook", extra={"destination": destination.pk, "records": counts, "ignored": ignored})
    return JsonResponse({"status": "accepted", "records": counts, "ignored": ignored})


def _verified_events(request: HttpRequest, destination_id: int) -> tuple[Destination, list]:
    destination = Destination.objects.filter(pk=destination_id, kind=Destination.Kind.HUBSPOT).first()
    if destination is None:
        raise WebhookRefused(404, "not_found", f"No HubSpot destination {destination_id} receives webhooks here.")
    secret = _webhook_secret(destination)
    body = _read(request)
    signature_v3_verify(secret=secret, method=request.method, uris=_candidate_uris(request), body=body,
                        signature=request.headers.get(SIGNATURE_HEADER, ""),
                        timestamp=request.headers.get(TIMESTAMP_HEADER, ""))
    try:
        events = json.loads(body)
    except (ValueError, RecursionError):
        raise WebhookRefused(400, "malformed_json", "The body is not JSON.") from None
    if not isinstance(events, list):
        raise WebhookRefused(400, "invalid_payload", "HubSpot sends a JSON array of events; the body is not one.")
    return destination, events


def _webhook_secret(destination: Destination) -> str:
    # credentials_env may name a plain token, which holds no webhook secret: then the one
    # stored from the admin counts.
    try:
        secret = destination.credentials().get(SECRET_KEY) or destination.stored_credentials().get(SECRET_KEY)
    except SecretUnavailable:
        raise WebhookRefused(503, "secret_unavailable", "This destination's credentials cannot be read right now "
                                                        "(encryption keys or environment variable).") from None
    if not secret:
        raise WebhookRefused(404, "not_found", f"HubSpot destination {destination.pk} has no webhook client secret: "
                                               "webhooks are off for it.")
    return secret


def _read(request: HttpRequest) -> bytes:
    # Django's own request-body limit: a batch of HubSpot's (100 events at most) is far smaller.
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    try:
        return read_body(request, request.META.get("CONTENT_LENGTH") or None, limit)
    except IntakeError as exc:
        detail = f"The body exceeds {limit} bytes." if exc.status == 413 else exc.detail
        raise WebhookRefused(exc.status, exc.code, detail) from None


def _candidate_uris(request: HttpRequest) -> list[str]:
    # HubSpot calls an https URL; behind a proxy that ends TLS without telling Django
    # (SECURE_PROXY_SSL_HEADER), the request looks like http here. The scheme only changes
    # the signed text, so checking the https form too lets no forged call in.
    uri = request.build_absolute_uri()
    if uri.startswith("http://"):
        return [uri, "https://" + uri.removeprefix("http://")]
    return [uri]


def _writes_companies(destination: Destination) -> bool:
    return destination.object_model == Destination.ObjectModel.CONTACT_COMPANY


def _poll_hint(destination: Destination, hints: dict[str, list[str]]) -> None:
    for object_, crm_ids in hints.items():
        poll_hint(destination=destination, object=object_, crm_ids=crm_ids)


def _error(refused: WebhookRefused) -> JsonResponse:
    return JsonResponse({"error": refused.code, "detail": refused.detail}, status=refused.status)
