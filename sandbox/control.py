"""The sandbox's control API: what tests, benchmarks and demos do to the sandbox CRMs that no
CRM API offers, under /sandbox/_control/ (the product never calls these).

    GET/PUT  /sandbox/_control/clock/<crm>                 {"offset_seconds": 300}: the CRM's clock vs real time
    PUT/DELETE /sandbox/_control/faults/<crm>              {"error_rate": 0.2, ...} (as manage.py sandbox_faults)
    POST     /sandbox/_control/reset                       empty every CRM (sandbox_reset)
    POST     /sandbox/_control/hubspot/<contacts|companies>/bulk
             {"records": [{...}, ...]} or {"count": 12000, "template": {"email": "u{i}@example.com"}, "start": 1}:
             create many records at once, modification times 1 ms apart ending now
    POST     /sandbox/_control/hubspot/webhooks/send       {"url", "client_secret", "events": [...], "timestamp_ms"?}:
             POST the events there as HubSpot does (signature v3)
    POST/DELETE /sandbox/_control/hubspot/webhooks/subscriptions
             {"target_url", "client_secret", "object_type"?}: send person edits, deletions and merges there
    POST     /sandbox/_control/salesforce/merge            {"sobject": "Lead", "master_id", "merged_ids": [...]}

Writes made here honour `X-Sandbox-Actor: person:<name>` like the CRM APIs (bulk creates and
merges by a person). Answers are JSON; a bad request is a 400 with {"error": "..."}.
"""

import json
from typing import Any, Callable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sandbox.clock import (
    ACTOR_HEADER,
    ActorError,
    acting_as,
    actor_parse,
    clock_offset,
    clock_offset_set,
    crm_now,
    current_actor,
)
from sandbox.faults import faults_reset, faults_set, sandbox_reset
from sandbox.hubspot import webhooks
from sandbox.hubspot.errors import HubSpotError
from sandbox.hubspot.properties import OBJECT_TYPES
from sandbox.hubspot.records import records_bulk_create
from sandbox.models import SandboxWebhookSubscription
from sandbox.salesforce.records import SalesforceError, records_merge

CLOCK_CRMS = ("hubspot", "salesforce")
MAX_OFFSET_SECONDS = 366 * 86_400
FAULT_KNOBS = {"error_rate": float, "rate_limit_rate": float, "lost_reply_rate": float, "latency_ms": int,
               "timeout_rate": float, "timeout_seconds": float, "lock_rate": float, "seed": int}


class ControlError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def control(*methods: str) -> Callable:
    """A control view: the methods it answers, JSON errors, the request's actor."""

    def wrap(handler: Callable[..., JsonResponse]) -> Callable:
        @csrf_exempt
        @transaction.non_atomic_requests
        def view(request: HttpRequest, **kwargs: Any) -> JsonResponse:
            try:
                if request.method not in methods:
                    raise ControlError(f"Use {' or '.join(methods)}.", status=405)
                with acting_as(actor_parse(request.headers.get(ACTOR_HEADER, ""))):
                    return handler(request, **kwargs)
            except (ControlError, ActorError, ValueError) as exc:
                return JsonResponse({"error": str(exc)}, status=getattr(exc, "status", 400))
            except HubSpotError as exc:
                return JsonResponse(exc.body(), status=exc.status)
            except SalesforceError as exc:
                return JsonResponse(exc.body, status=exc.status, safe=False)

        return view

    return wrap


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise ControlError("The body must be JSON.") from None
    if not isinstance(body, dict):
        raise ControlError("The body must be a JSON object.")
    return body


def _crm(crm: str, allowed: tuple[str, ...]) -> str:
    if crm not in allowed:
        raise ControlError(f"crm must be one of {', '.join(allowed)}, not {crm!r}.", status=404)
    return crm


# --- clock, faults, reset ---------------------------------------------------------------------

@control("GET", "PUT")
def clock(request: HttpRequest, crm: str) -> JsonResponse:
    crm = _crm(crm, CLOCK_CRMS)
    if request.method == "PUT":
        offset = _body(request).get("offset_seconds")
        if isinstance(offset, bool) or not isinstance(offset, int) or abs(offset) > MAX_OFFSET_SECONDS:
            raise ControlError(f"offset_seconds must be a whole number of seconds within ±{MAX_OFFSET_SECONDS}.")
        clock_offset_set(crm=crm, seconds=offset)
    return JsonResponse({"crm": crm, "offset_seconds": clock_offset(crm=crm), "now": crm_now(crm=crm).isoformat()})


@control("PUT", "DELETE")
def faults(request: HttpRequest, crm: str) -> JsonResponse:
    crm = _crm(crm, ("hubspot", "salesforce", "rest"))
    if request.method == "DELETE":
        faults_reset(crm=crm)
        return JsonResponse({"crm": crm, "faults": None})
    knobs = _body(request)
    unknown = sorted(set(knobs) - set(FAULT_KNOBS))
    if unknown:
        raise ControlError(f"Unknown knobs: {', '.join(unknown)}. Known: {', '.join(FAULT_KNOBS)}.")
    for name, value in knobs.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (FAULT_KNOBS[name] is int and not isinstance(value, int)):
            raise ControlError(f"{name} must be a number, not {value!r}.")
    try:
        row = faults_set(crm=crm, **knobs)
    except ValidationError as exc:
        raise ControlError("; ".join(exc.messages)) from None
    return JsonResponse({"crm": crm, "faults": {name: getattr(row, name) for name in FAULT_KNOBS}})


@control("POST")
def reset(request: HttpRequest) -> JsonResponse:
    sandbox_reset()
    return JsonResponse({"reset": True})


# --- HubSpot ----------------------------------------------------------------------------------

@control("POST")
def hubspot_bulk(request: HttpRequest, object_type: str) -> JsonResponse:
    body = _body(request)
    records = body.get("records")
    if records is None:
        records = _from_template(body)
    created = records_bulk_create(OBJECT_TYPES[object_type], records=records, actor=current_actor())
    return JsonResponse({"created": len(created), "ids": [str(row.pk) for row in created]}, status=201)


def _from_template(body: dict[str, Any]) -> list[dict[str, str]]:
    count, template, start = body.get("count"), body.get("template"), body.get("start", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not isinstance(template, dict) \
            or isinstance(start, bool) or not isinstance(start, int):
        raise ControlError('Send {"records": [...]} or {"count": n, "template": {...}, "start": 1}.')
    return [{name: str(value).replace("{i}", str(i)) for name, value in template.items()}
            for i in range(start, start + count)]


@control("POST")
def hubspot_webhook_send(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    url, secret, events = body.get("url"), body.get("client_secret"), body.get("events")
    stamp = body.get("timestamp_ms")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(secret, str) \
            or not secret or not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ControlError('Send {"url": "http(s)://...", "client_secret": "...", "events": [{...}, ...]}.')
    if stamp is not None and (isinstance(stamp, bool) or not isinstance(stamp, int)):
        raise ControlError("timestamp_ms must be an integer (epoch milliseconds).")
    return JsonResponse(webhooks.webhook_send(url=url, client_secret=secret, events=events, timestamp_ms=stamp))


@control("POST", "DELETE")
def hubspot_webhook_subscriptions(request: HttpRequest) -> JsonResponse:
    if request.method == "DELETE":
        deleted, _ = SandboxWebhookSubscription.objects.all().delete()
        return JsonResponse({"deleted": deleted})
    body = _body(request)
    row = SandboxWebhookSubscription(
        object_type=body.get("object_type", "contacts"), target_url=body.get("target_url") or "",
        client_secret=body.get("client_secret") or "",
        **{flag: body[flag] for flag in ("property_changes", "deletions", "merges") if isinstance(body.get(flag), bool)})
    try:
        row.full_clean()
    except ValidationError as exc:
        raise ControlError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    row.save()
    return JsonResponse({"id": row.pk, "object_type": row.object_type, "target_url": row.target_url}, status=201)


# --- Salesforce -------------------------------------------------------------------------------

@control("POST")
def salesforce_merge(request: HttpRequest) -> JsonResponse:
    body = _body(request)
    result = records_merge(sobject_name=str(body.get("sobject") or "Lead"), master_id=str(body.get("master_id") or ""),
                           merged_ids=body.get("merged_ids"))
    return JsonResponse({"master_id": result.master_id, "merged_ids": result.merged_ids})
