"""The REST CRM's endpoints: leads, batch, the OAuth token, the switches and the test helper.

Each handler parses, calls one function of records.py and shapes the answer per the switches.
`endpoint` adds what every data call has: the configured auth, the injected faults (exactly as
for HubSpot: sandbox.faults), the reply delay and the request log.
"""

import json
import time
from typing import Any, Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.faults import FaultDecision, fault_call, fault_decide, fault_finish, no_faults, request_log_record
from sandbox.models import SandboxRestRecord, SandboxRestSettings
from sandbox.rest import records
from sandbox.rest.auth import CRM, auth_refusal, token_grant
from sandbox.rest.errors import REFUSAL_CODES, RestError, invalid, not_found
from sandbox.rest.switches import switches_get, switches_json, switches_update

Handler = Callable[..., JsonResponse]
WRITES = frozenset({"POST", "PATCH", "PUT"})
RATE_LIMIT_RETRY_AFTER = "1"  # seconds


def endpoint(**handlers: Handler) -> Callable:
    """A data-call view answering the given methods (GET=..., POST=...)."""

    @csrf_exempt
    @transaction.non_atomic_requests  # writes commit before any reply delay or lost reply
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        started = timezone.now()
        switches = switches_get()
        decision = no_faults()
        refusal = auth_refusal(request, switches.auth)
        if refusal is not None:
            response = _error_response(refusal, switches)
        else:
            decision = fault_decide(crm=CRM)
            response = fault_call(decision, refuse=_fault_response,
                                  run=lambda: _answer(request, switches, handlers, kwargs))
            if request.method in WRITES and response.status_code < 300 and switches.reply_delay_ms:
                # The write is committed: a client that gives up now has lost only the reply.
                time.sleep(switches.reply_delay_ms / 1000)
        request_log_record(crm=CRM, request=request, status=response.status_code, fault=decision.logged_kind(),
                           started_at=started)
        return fault_finish(request, decision, response)

    return view


def _answer(request: HttpRequest, switches: SandboxRestSettings, handlers: dict[str, Handler],
            kwargs: dict[str, Any]) -> JsonResponse:
    if request.method == "OPTIONS":  # what a client's connection test may send
        return _allow(JsonResponse({"methods": sorted(handlers)}), handlers)
    handler = handlers.get(request.method or "")
    if handler is None:
        error = RestError(405, "method_not_allowed", f"{request.method} is not supported at {request.path}.")
        return _allow(_error_response(error, switches), handlers)
    try:
        return handler(request, switches, **kwargs)
    except RestError as exc:
        return _error_response(exc, switches)


def _allow(response: JsonResponse, handlers: dict[str, Handler]) -> JsonResponse:
    response["Allow"] = ", ".join(sorted({*handlers, "OPTIONS"}))
    return response


def _error_response(error: RestError, switches: SandboxRestSettings) -> JsonResponse:
    as_200 = switches.errors_as_200 and error.code in REFUSAL_CODES
    return JsonResponse(error.body(), status=200 if as_200 else error.status)


def _fault_response(decision: FaultDecision) -> JsonResponse:
    if decision.kind == "rate_limit":
        response = JsonResponse(RestError(429, "rate_limited", "Too many requests; retry later.").body(), status=429)
        response["Retry-After"] = RATE_LIMIT_RETRY_AFTER
        return response
    error = RestError(decision.error_status, "server_error", "The CRM failed to process the request; nothing "
                                                             "was applied.")
    return JsonResponse(error.body(), status=error.status)


# --- parsing and shaping ----------------------------------------------------------------------

def _json(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body)
    except json.JSONDecodeError as exc:
        raise invalid(f"The body is not JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}.") from None
    except ValueError:  # not UTF-8
        raise invalid("The body is not UTF-8 text.") from None


def _page(request: HttpRequest) -> int:
    value = request.GET.get("page", "1")
    if not value.isdecimal() or len(value) > 9 or int(value) < 1:
        raise invalid(f"page must be a whole number from 1, not {value!r}.")
    return int(value)


def _record_answer(record: SandboxRestRecord, switches: SandboxRestSettings, status: int = 200) -> JsonResponse:
    body = records.record_json(record)
    return JsonResponse({"data": {"lead": body}} if switches.nested_ids else body, status=status)


def _list_answer(key: str, items: list[dict[str, Any]], switches: SandboxRestSettings) -> JsonResponse:
    """`{"results": [...]}`, or nested `{"data": {<key>: [...]}}`."""
    return JsonResponse({"data": {key: items}} if switches.nested_ids else {"results": items})


# --- handlers ---------------------------------------------------------------------------------

def _leads_list(request: HttpRequest, switches: SandboxRestSettings) -> JsonResponse:
    rows = records.records_list(email=request.GET.get("email"), page=_page(request))
    return _list_answer("items", [records.record_json(row) for row in rows], switches)


def _lead_create(request: HttpRequest, switches: SandboxRestSettings) -> JsonResponse:
    record = records.record_create(data=_json(request), duplicate_status=switches.duplicate_status)
    return _record_answer(record, switches, status=switches.create_status)


def _lead_read(request: HttpRequest, switches: SandboxRestSettings, record_id: str) -> JsonResponse:
    return _record_answer(records.record_get(record_id=record_id), switches)


def _lead_update(request: HttpRequest, switches: SandboxRestSettings, record_id: str) -> JsonResponse:
    record = records.record_update(record_id=record_id, data=_json(request), replace=request.method == "PUT",
                                   duplicate_status=switches.duplicate_status)
    return _record_answer(record, switches)


def _leads_batch(request: HttpRequest, switches: SandboxRestSettings) -> JsonResponse:
    results = records.records_batch(items=_json(request), batch_max=switches.batch_max,
                                    duplicate_status=switches.duplicate_status)
    return _list_answer("results", results, switches)


leads_data = endpoint(GET=_leads_list, POST=_lead_create)
lead = endpoint(GET=_lead_read, PATCH=_lead_update, PUT=_lead_update)
leads_batch = endpoint(POST=_leads_batch)


# --- helpers outside the data calls: no auth, faults or log -----------------------------------

@csrf_exempt
@transaction.non_atomic_requests
def leads(request: HttpRequest) -> HttpResponse:
    """/leads: DELETE clears every lead (a test helper, no auth); anything else is a data call."""
    if request.method == "DELETE":
        return JsonResponse({"deleted": records.records_clear()})
    return leads_data(request)


@csrf_exempt
def settings_view(request: HttpRequest) -> JsonResponse:
    """GET shows the switches; PUT sets any of them and answers all of them."""
    try:
        if request.method == "PUT":
            return JsonResponse(switches_json(switches_update(changes=_json(request))))
        if request.method == "GET":
            return JsonResponse(switches_json(switches_get()))
        raise RestError(405, "method_not_allowed", "Use GET or PUT.")
    except RestError as exc:
        return JsonResponse(exc.body(), status=exc.status)


@csrf_exempt
@transaction.non_atomic_requests
def oauth_token(request: HttpRequest) -> JsonResponse:
    """POST /oauth/token, form-encoded: client credentials or refresh token grants."""
    try:
        if request.method != "POST":
            raise RestError(405, "method_not_allowed", "Use POST with a form-encoded body.")
        response = JsonResponse(token_grant(form=request.POST, request=request))
    except RestError as exc:
        response = JsonResponse(exc.body(), status=exc.status)
    response["Cache-Control"] = "no-store"  # RFC 6749 5.1: token answers are never cached
    return response


def unknown(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    return JsonResponse(not_found(f"The REST CRM has no endpoint at {request.path}.").body(), status=404)
