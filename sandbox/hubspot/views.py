"""HubSpot's objects (contacts, companies), properties, associations and OAuth APIs over the
sandbox's own tables.

Each handler parses, calls one service and shapes the answer. `endpoint` adds what every
HubSpot data call has: the bearer token, the rate limits and their headers, the error JSON, the
reply delay a demo or test can set, the injected faults (reads included), the request log, the
CRM's `Date` header (its own clock, sandbox/clock.py) and the actor of its writes: the header
`X-Sandbox-Actor: person:<name>` makes a write a person's edit (sourceType CRM_UI) instead of
the integration's.
"""

import hmac
import json
import time
from typing import Any, Callable

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.clock import ACTOR_HEADER, ActorError, acting_as, actor_parse, crm_now, current_actor, date_header
from sandbox.faults import FaultDecision, fault_call, fault_decide, fault_finish, no_faults, request_log_record
from sandbox.hubspot import associations, properties, webhooks
from sandbox.hubspot import records as hubspot_records  # not `records`: that name is a view below
from sandbox.hubspot.errors import (
    HubSpotError,
    auth_error,
    expired_error,
    fault_error,
    not_found,
    rate_limit_error,
    validation_error,
)
from sandbox.hubspot.oauth import hubspot_token_refresh
from sandbox.hubspot.properties import OBJECT_TYPE_ALIASES, OBJECT_TYPES, ObjectType
from sandbox.hubspot.rate_limits import Usage, request_count
from sandbox.hubspot.records import BatchOutcome, iso, record_json
from sandbox.hubspot.search import records_search
from sandbox.limits import settings_get
from sandbox.oauth import OAuthError
from sandbox.tokens import TokenState, bearer_token, token_state

CRM = hubspot_records.CRM
LIST_LIMIT_MAX = 100
Handler = Callable[..., JsonResponse]
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


def endpoint(*, writes: frozenset[str] = frozenset(), search: bool = False, faulty: bool = True,
             **handlers: Handler) -> Callable:
    """A view answering the given methods (GET=..., POST=...) the way HubSpot does."""

    @csrf_exempt
    @transaction.non_atomic_requests  # records commit their writes before any reply delay or lost reply
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        started = timezone.now()
        decision = no_faults()
        state = _token_state(request)
        if state is not TokenState.VALID:
            response = _error_response(expired_error() if state is TokenState.EXPIRED else auth_error())
        else:  # HubSpot sends no rate-limit headers with a 401
            limits = settings_get(crm=CRM)
            usage = request_count(limits, search=search)
            decision = fault_decide(crm=CRM) if faulty and usage.refusal() is None else no_faults()
            response = fault_call(decision, refuse=_fault_response, run=lambda: _answer(request, usage, handlers, kwargs))
            for name, value in usage.headers().items():
                response[name] = value
            if request.method in writes and response.status_code < 300 and limits.reply_delay_ms:
                # The write is committed: a client that gives up now has lost only the reply.
                time.sleep(limits.reply_delay_ms / 1000)
        response["Date"] = date_header(crm=CRM)
        request_log_record(crm=CRM, request=request, status=response.status_code, fault=decision.logged_kind(),
                           started_at=started)
        return fault_finish(request, decision, response)

    return view


def _answer(request: HttpRequest, usage: Usage, handlers: dict[str, Handler], kwargs: dict) -> HttpResponse:
    try:
        refusal = usage.refusal()
        if refusal:
            raise refusal
        handler = handlers.get(request.method or "")
        if handler is None:
            raise HubSpotError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported at {request.path}")
        try:
            actor = actor_parse(request.headers.get(ACTOR_HEADER, ""))
        except ActorError as exc:
            raise validation_error(str(exc)) from None
        with acting_as(actor):
            return handler(request, **kwargs)
    except HubSpotError as exc:
        return _error_response(exc)


def _token_state(request: HttpRequest) -> TokenState:
    """The static private-app token, or an access token the OAuth endpoint issued."""
    token = bearer_token(request.headers.get("Authorization", ""))
    expected = settings.SANDBOX_HUBSPOT_TOKEN
    if token and expected and hmac.compare_digest(token.encode(), expected.encode()):
        return TokenState.VALID
    return token_state(crm=CRM, token=token)


def _fault_response(decision: FaultDecision) -> JsonResponse:
    if decision.kind == "rate_limit":
        response = _error_response(rate_limit_error("TEN_SECONDLY_ROLLING"))
        response["Retry-After"] = "1"
        return response
    return _error_response(fault_error(423 if decision.kind == "lock" else decision.error_status))


def _error_response(error: HubSpotError) -> JsonResponse:
    return JsonResponse(error.body(), status=error.status)


# --- request parsing --------------------------------------------------------------------------

def _json(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body)
    except json.JSONDecodeError as exc:
        raise validation_error(f"Invalid input JSON on line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except ValueError:  # not UTF-8
        raise validation_error("Invalid input JSON: the body is not UTF-8 text.") from None
    if not isinstance(body, dict):
        raise validation_error("Invalid input JSON: the body must be a JSON object.")
    return body


def _names(request: HttpRequest) -> list[str]:
    """`properties=a,b` or `properties=a&properties=b`, as HubSpot accepts both."""
    return [name.strip() for value in request.GET.getlist("properties") for name in value.split(",") if name.strip()]


def _history_names(request: HttpRequest) -> list[str]:
    return [name.strip() for value in request.GET.getlist("propertiesWithHistory") for name in value.split(",")
            if name.strip()]


def _archived(request: HttpRequest) -> bool:
    return request.GET.get("archived", "false").lower() == "true"


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name, "")
    if value == "":
        return default
    if not value.isdecimal() or len(value) > 18:  # longer would overflow the database's integers
        raise validation_error(f"{name} must be a non-negative integer, not {value!r}.")
    return int(value)


# --- objects ----------------------------------------------------------------------------------
# Every handler gets the URL's object type ("contacts", "companies") first.

def _kind(object_type: str) -> ObjectType:
    return OBJECT_TYPES[object_type]  # the URL pattern admits only known names


def _records_list(request: HttpRequest, object_type: str) -> JsonResponse:
    limit = min(_int_param(request, "limit", 10), LIST_LIMIT_MAX)  # HubSpot caps the page size at 100
    if limit < 1:
        raise validation_error("limit must be at least 1.")
    results, next_after = hubspot_records.records_page(
        _kind(object_type), limit=limit, after=_int_param(request, "after", 0), properties=_names(request),
        archived=_archived(request), history=_history_names(request))
    body: dict[str, Any] = {"results": results}
    if next_after:
        body["paging"] = {"next": {"after": next_after, "link": _next_link(request, next_after)}}
    return JsonResponse(body)


def _next_link(request: HttpRequest, after: str) -> str:
    query = request.GET.copy()
    query["after"] = after
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def _record_create(request: HttpRequest, object_type: str) -> JsonResponse:
    record = hubspot_records.record_create(_kind(object_type), properties=_json(request).get("properties", {}))
    return JsonResponse(record_json(record), status=201)


def _record_read(request: HttpRequest, object_type: str, record_id: str) -> JsonResponse:
    record = hubspot_records.record_get(_kind(object_type), key=record_id, id_property=request.GET.get("idProperty"),
                                        properties=_names(request), archived=_archived(request),
                                        history=_history_names(request))
    return JsonResponse(record)


def _record_update(request: HttpRequest, object_type: str, record_id: str) -> JsonResponse:
    record = hubspot_records.record_update(_kind(object_type), key=record_id,
                                           id_property=request.GET.get("idProperty"),
                                           properties=_json(request).get("properties", {}))
    webhooks.person_edit_notify(_kind(object_type), record, actor=current_actor())
    return JsonResponse(record_json(record))


def _record_archive(request: HttpRequest, object_type: str, record_id: str) -> HttpResponse:
    record = hubspot_records.record_archive(_kind(object_type), key=record_id)
    if record is not None:
        webhooks.deletion_notify(_kind(object_type), record, actor=current_actor())
    return HttpResponse(status=204)


def _merge(request: HttpRequest, object_type: str) -> JsonResponse:
    survivor, merged_id = hubspot_records.records_merge(_kind(object_type), body=_json(request))
    webhooks.merge_notify(_kind(object_type), survivor, merged_id=merged_id, actor=current_actor())
    return JsonResponse(record_json(survivor))


def _batch_read(request: HttpRequest, object_type: str) -> JsonResponse:
    body = _json(request)
    outcome = hubspot_records.records_batch_read(_kind(object_type), inputs=body.get("inputs"),
                                                 id_property=body.get("idProperty"),
                                                 properties=body.get("properties", []), archived=_archived(request),
                                                 history=body.get("propertiesWithHistory") or [])
    return _batch_response(outcome)


def _batch_create(request: HttpRequest, object_type: str) -> JsonResponse:
    outcome = hubspot_records.records_batch_create(_kind(object_type), inputs=_json(request).get("inputs"))
    return _batch_response(outcome, status=201)


def _batch_update(request: HttpRequest, object_type: str) -> JsonResponse:
    outcome = hubspot_records.records_batch_update(_kind(object_type), inputs=_json(request).get("inputs"))
    return _batch_response(outcome)


def _batch_upsert(request: HttpRequest, object_type: str) -> JsonResponse:
    return _batch_response(hubspot_records.records_upsert(_kind(object_type), inputs=_json(request).get("inputs")))


def _batch_response(outcome: BatchOutcome, status: int = 200) -> JsonResponse:
    body = {"status": "COMPLETE", "results": outcome.results, "startedAt": iso(outcome.started_at),
            "completedAt": iso(crm_now(crm=CRM))}
    if not outcome.errors:
        return JsonResponse(body, status=status)
    return JsonResponse({**body, "numErrors": len(outcome.errors), "errors": outcome.errors}, status=207)


def _search(request: HttpRequest, object_type: str) -> JsonResponse:
    page = records_search(_kind(object_type), body=_json(request))
    body: dict[str, Any] = {"total": page.total, "results": page.results}
    if page.next_after:
        body["paging"] = {"next": {"after": page.next_after}}
    return JsonResponse(body)


# --- properties -------------------------------------------------------------------------------

def _properties_list(request: HttpRequest, object_type: str) -> JsonResponse:
    definitions = properties.property_definitions(_kind(object_type))
    return JsonResponse({"results": [properties.property_json(p) for p in definitions.values()]})


def _property_read(request: HttpRequest, object_type: str, name: str) -> JsonResponse:
    return JsonResponse(properties.property_json(properties.property_get(kind=_kind(object_type), name=name)))


def _property_create(request: HttpRequest, object_type: str) -> JsonResponse:
    created = properties.property_create(kind=_kind(object_type), data=_json(request))
    return JsonResponse(properties.property_json(created), status=201)


# --- associations (v4) ------------------------------------------------------------------------

def _association_kind(name: str) -> ObjectType:
    kind = OBJECT_TYPE_ALIASES.get(name)
    if kind is None:
        raise validation_error(f"Unknown object type {name!r}; the sandbox associates contacts and companies.")
    return kind


def _association_default(request: HttpRequest, from_type: str, from_id: str, to_type: str, to_id: str) -> JsonResponse:
    started = timezone.now()
    results = associations.association_default_create(
        from_kind=_association_kind(from_type), from_id=from_id, to_kind=_association_kind(to_type), to_id=to_id)
    return JsonResponse({"status": "COMPLETE", "results": results, "startedAt": iso(started),
                         "completedAt": iso(timezone.now())})


def _associations_batch_create(request: HttpRequest, from_type: str, to_type: str) -> JsonResponse:
    outcome = associations.associations_batch_create(
        from_kind=_association_kind(from_type), to_kind=_association_kind(to_type), inputs=_json(request).get("inputs"))
    return _batch_response(outcome, status=201)


def _associations_list(request: HttpRequest, from_type: str, from_id: str, to_type: str) -> JsonResponse:
    limit = _int_param(request, "limit", associations.PAGE_MAX)
    if not 0 < limit <= associations.PAGE_MAX:
        raise validation_error(f"limit must be between 1 and {associations.PAGE_MAX}.")
    results, next_after = associations.associations_list(
        from_kind=_association_kind(from_type), from_id=from_id, to_kind=_association_kind(to_type),
        limit=limit, after=_int_param(request, "after", 0))
    body: dict[str, Any] = {"results": results}
    if next_after:
        body["paging"] = {"next": {"after": next_after, "link": _next_link(request, next_after)}}
    return JsonResponse(body)


def _unknown(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    raise not_found(f"The sandbox CRM has no endpoint at {request.path}")


# --- OAuth ------------------------------------------------------------------------------------

@csrf_exempt
@transaction.non_atomic_requests
def oauth_token(request: HttpRequest) -> JsonResponse:
    """POST /oauth/v3/token: a refresh token for an access token. No faults, limits or log:
    only data calls get those."""
    if request.method != "POST":
        return JsonResponse({"status": "error", "message": "Use POST."}, status=405)
    try:
        return JsonResponse(hubspot_token_refresh(form=request.POST))
    except OAuthError as exc:
        return JsonResponse(exc.body, status=exc.status)


records = endpoint(GET=_records_list, POST=_record_create, writes=WRITES)
record = endpoint(GET=_record_read, PATCH=_record_update, DELETE=_record_archive, writes=WRITES)
records_merge = endpoint(POST=_merge, writes=WRITES)
records_batch_read = endpoint(POST=_batch_read)
records_batch_create = endpoint(POST=_batch_create, writes=WRITES)
records_batch_update = endpoint(POST=_batch_update, writes=WRITES)
records_batch_upsert = endpoint(POST=_batch_upsert, writes=WRITES)
records_search_view = endpoint(POST=_search, search=True)
object_properties = endpoint(GET=_properties_list, POST=_property_create, writes=WRITES)
object_property = endpoint(GET=_property_read)
association_default = endpoint(PUT=_association_default, writes=WRITES)
associations_batch_create = endpoint(POST=_associations_batch_create, writes=WRITES)
associations_list = endpoint(GET=_associations_list)
unknown = endpoint(**{method: _unknown for method in ("GET", "POST", "PUT", "PATCH", "DELETE")})
