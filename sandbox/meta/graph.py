"""Meta Lead Ads in the sandbox: the leads Graph API serves and the webhook Meta sends for them.

Meta's leadgen webhook carries only IDs; the product then reads the lead from Graph API
(`GET /v19.0/{leadgen_id}?access_token=...`). Formats follow Meta's Lead Ads retrieval guide and
Graph API's error reference; the webhook body matches the capture from fbsamples/lead-ads-webhook-sample
kept in the project's webhook fixtures (tests/fixtures/webhooks/meta-leadgen-webhook.fbsamples.json).
"""

from datetime import datetime
from datetime import timezone as dt_timezone
import hashlib
import hmac
import json
import secrets
import string
import time
from typing import Any, Iterable

import requests

from sandbox.models import SandboxMetaLead

# Graph omits a field that has no value (ad_id of an organic lead) rather than sending null.
DEFAULT_FIELDS = ("created_time", "ad_id", "form_id", "field_data")
TRACE_ALPHABET = string.ascii_letters + string.digits
NOT_FOUND_MESSAGE = (
    "Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing "
    "permissions, or does not support this operation."
)


class GraphError(Exception):
    """A request Graph API refuses: becomes its `{"error": {...}}` answer."""

    def __init__(self, status: int, type_: str, code: int, message: str, subcode: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.code = code
        self.message = message
        self.subcode = subcode

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        return {"error": {**error, "fbtrace_id": _trace_id()}}


def _trace_id() -> str:
    # Graph's fbtrace_id is an opaque alphanumeric string; only its presence matters to clients.
    return "".join(secrets.choice(TRACE_ALPHABET) for _ in range(23))


# Graph answers 400 to OAuth and permission errors alike; the code tells them apart.
def token_missing() -> GraphError:
    return GraphError(400, "OAuthException", 104, "An access token is required to request this resource.")


def token_invalid() -> GraphError:
    return GraphError(400, "OAuthException", 190, "Invalid OAuth access token - Cannot parse access token")


def object_missing(object_id: str, *, method: str = "GET", status: int = 400) -> GraphError:
    message = NOT_FOUND_MESSAGE.format(method=method.lower(), id=object_id)
    return GraphError(status, "GraphMethodException", 100, message, subcode=33)


def unknown_path(path: str) -> GraphError:
    return GraphError(400, "OAuthException", 2500, f"Unknown path components: /{path}")


def graph_time(moment: datetime) -> str:
    """Graph's timestamp format: UTC, seconds, +0000 offset."""
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


# --- leads ------------------------------------------------------------------------------------

def meta_lead_create(*, leadgen_id: str, field_data: list[dict], access_token: str, page_id: str = "",
                     form_id: str = "", ad_id: str = "") -> SandboxMetaLead:
    """A lead as a form submission on Meta would leave it, readable with `access_token`."""
    _check_field_data(field_data)
    return SandboxMetaLead.objects.create(leadgen_id=leadgen_id, field_data=field_data, access_token=access_token,
                                          page_id=page_id, form_id=form_id, ad_id=ad_id)


def _check_field_data(field_data: Any) -> None:
    # Served verbatim, so a wrong shape here would reach the product as if Meta had sent it.
    if not isinstance(field_data, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("values"), list)
        and all(isinstance(value, str) for value in item["values"])
        for item in field_data
    ):
        raise ValueError('field_data must be a list of {"name": str, "values": [str, ...]}.')


def meta_lead_read(*, leadgen_id: str, access_token: str | None, fields: Iterable[str] = ()) -> dict[str, Any]:
    """The lead as Graph's Lead node, checked the way Graph checks: token first, then object."""
    if not access_token:
        raise token_missing()
    lead = SandboxMetaLead.objects.filter(leadgen_id=leadgen_id).first()
    if lead is not None and hmac.compare_digest(access_token.encode(), lead.access_token.encode()):
        return meta_lead_json(lead, fields=fields)
    # A token Meta issued but for another page reads nothing (missing permissions); one it never
    # issued is refused before any lookup.
    if SandboxMetaLead.objects.filter(access_token=access_token).exists():
        raise object_missing(leadgen_id)
    raise token_invalid()


def meta_lead_json(lead: SandboxMetaLead, *, fields: Iterable[str] = ()) -> dict[str, Any]:
    """The Lead node's fields; `fields` narrows them (unknown names are ignored), `id` is always in."""
    values = {"id": lead.leadgen_id, "created_time": graph_time(lead.created_time), "ad_id": lead.ad_id,
              "form_id": lead.form_id, "field_data": lead.field_data}
    wanted = dict.fromkeys(fields) or DEFAULT_FIELDS
    return {"id": lead.leadgen_id, **{name: values[name] for name in wanted if name in values and values[name] != ""}}


# --- webhook ----------------------------------------------------------------------------------

def meta_webhook_body(*, leads: list[SandboxMetaLead]) -> dict:
    """The notification Meta POSTs for these leads: one entry per page, one change per lead."""
    entries: dict[str, dict[str, Any]] = {}
    now = int(time.time())
    for lead in leads:
        entry = entries.setdefault(lead.page_id, {"id": lead.page_id, "time": now, "changes": []})
        entry["changes"].append({"value": _leadgen_value(lead), "field": "leadgen"})
    return {"object": "page", "entry": list(entries.values())}


def meta_webhook_send(*, leads: list[SandboxMetaLead], url: str, app_secret: str) -> dict[str, Any]:
    """POST the leadgen notification for `leads` to `url`, signed as Meta signs it
    (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body with the app secret>`).
    Returns what came back, for the caller to show."""
    body = json.dumps(meta_webhook_body(leads=leads), separators=(",", ":")).encode()
    signature = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    try:
        answer = requests.post(url, data=body, timeout=(5, 30),
                               headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature})
    except requests.RequestException as exc:
        return {"delivered": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"delivered": answer.ok, "status": answer.status_code, "body": answer.text[:2000]}


def meta_test_lead_create(*, field_data: Any, access_token: str, page_id: str = "", form_id: str = "") -> SandboxMetaLead:
    """What Meta's Lead Ads Testing Tool does: a new lead with a fresh leadgen ID on the page."""
    leadgen_id = "".join(secrets.choice(string.digits) for _ in range(16))
    return meta_lead_create(leadgen_id=leadgen_id, field_data=field_data, access_token=access_token,
                            page_id=page_id or "sandbox-page", form_id=form_id or "sandbox-form")


def _leadgen_value(lead: SandboxMetaLead) -> dict[str, Any]:
    value: dict[str, Any] = {"form_id": lead.form_id, "leadgen_id": lead.leadgen_id,
                             "created_time": int(lead.created_time.timestamp()), "page_id": lead.page_id}
    if lead.ad_id:
        # Leads from an ad also carry the ad, under its current and its legacy (adgroup) name;
        # leads from the testing tool or organic posts have neither, as in the fbsamples capture.
        value.update(ad_id=lead.ad_id, adgroup_id=lead.ad_id)
    return value
