"""HubSpot's contacts and properties API over the sandbox's own tables.

Each handler parses, calls one service and shapes the answer. `endpoint` adds what every
HubSpot call has: the bearer token, the rate limits and their headers, the error JSON, and the
reply delay a demo or test can set.
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

from crmsync.sandbox import properties, services
from crmsync.sandbox.errors import HubSpotError, auth_error, not_found, validation_error
from crmsync.sandbox.limits import Usage, request_count, settings_get
from crmsync.sandbox.search import contacts_search
from crmsync.sandbox.services import BatchOutcome, contact_json, iso

LIST_LIMIT_MAX = 100
Handler = Callable[..., JsonResponse]


def endpoint(*, writes: frozenset[str] = frozenset(), search: bool = False, **handlers: Handler) -> Callable:
    """A view answering the given methods (GET=..., POST=...) the way HubSpot does."""

    @csrf_exempt
    @transaction.non_atomic_requests  # services commit their writes before any reply delay
    def view(request: HttpRequest, **kwargs: Any) -> HttpResponse:
        if not _authorized(request):
            return _error_response(auth_error())  # HubSpot sends no rate-limit headers with a 401
        limits = settings_get(crm=services.CRM)
        usage = request_count(limits, search=search)
        response = _answer(request, usage, handlers, kwargs)
        for name, value in usage.headers().items():
            response[name] = value
        if request.method in writes and response.status_code < 300 and limits.reply_delay_ms:
            # The write is committed: a client that gives up now has lost only the reply.
            time.sleep(limits.reply_delay_ms / 1000)
        return response

    return view


def _answer(request: HttpRequest, usage: Usage, handlers: dict[str, Handler], kwargs: dict) -> HttpResponse:
    try:
        refusal = usage.refusal()
        if refusal:
            raise refusal
        handler = handlers.get(request.method or "")
        if handler is None:
            raise HubSpotError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported at {request.path}")
        return handler(request, **kwargs)
    except HubSpotError as exc:
        return _error_response(exc)


def _authorized(request: HttpRequest) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = settings.SANDBOX_HUBSPOT_TOKEN
    return scheme.lower() == "bearer" and bool(expected) and hmac.compare_digest(token.strip().encode(), expected.encode())


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


def _archived(request: HttpRequest) -> bool:
    return request.GET.get("archived", "false").lower() == "true"


def _int_param(request: HttpRequest, name: str, default: int) -> int:
    value = request.GET.get(name, "")
    if value == "":
        return default
    if not value.isdecimal() or len(value) > 18:  # longer would overflow the database's integers
        raise validation_error(f"{name} must be a non-negative integer, not {value!r}.")
    return int(value)


# --- contacts ---------------------------------------------------------------------------------

def _contacts_list(request: HttpRequest) -> JsonResponse:
    limit = min(_int_param(request, "limit", 10), LIST_LIMIT_MAX)  # HubSpot caps the page size at 100
    if limit < 1:
        raise validation_error("limit must be at least 1.")
    results, next_after = services.contacts_page(limit=limit, after=_int_param(request, "after", 0),
                                                 properties=_names(request), archived=_archived(request))
    body: dict[str, Any] = {"results": results}
    if next_after:
        body["paging"] = {"next": {"after": next_after, "link": _next_link(request, next_after)}}
    return JsonResponse(body)


def _next_link(request: HttpRequest, after: str) -> str:
    query = request.GET.copy()
    query["after"] = after
    return request.build_absolute_uri(f"{request.path}?{query.urlencode()}")


def _contact_create(request: HttpRequest) -> JsonResponse:
    contact = services.contact_create(properties=_json(request).get("properties", {}))
    return JsonResponse(contact_json(contact), status=201)


def _contact_read(request: HttpRequest, contact_id: str) -> JsonResponse:
    contact = services.contact_get(key=contact_id, id_property=request.GET.get("idProperty"),
                                   properties=_names(request), archived=_archived(request))
    return JsonResponse(contact)


def _batch_read(request: HttpRequest) -> JsonResponse:
    body = _json(request)
    outcome = services.contacts_batch_read(inputs=body.get("inputs"), id_property=body.get("idProperty"),
                                           properties=body.get("properties", []), archived=_archived(request))
    return _batch_response(outcome)


def _batch_upsert(request: HttpRequest) -> JsonResponse:
    return _batch_response(services.contacts_upsert(inputs=_json(request).get("inputs")))


def _batch_response(outcome: BatchOutcome) -> JsonResponse:
    body = {"status": "COMPLETE", "results": outcome.results, "startedAt": iso(outcome.started_at),
            "completedAt": iso(timezone.now())}
    if not outcome.errors:
        return JsonResponse(body)
    return JsonResponse({**body, "numErrors": len(outcome.errors), "errors": outcome.errors}, status=207)


def _search(request: HttpRequest) -> JsonResponse:
    page = contacts_search(body=_json(request))
    body: dict[str, Any] = {"total": page.total, "results": page.results}
    if page.next_after:
        body["paging"] = {"next": {"after": page.next_after}}
    return JsonResponse(body)


# --- properties -------------------------------------------------------------------------------

def _properties_list(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"results": [properties.property_json(p) for p in properties.property_definitions().values()]})


def _property_read(request: HttpRequest, name: str) -> JsonResponse:
    return JsonResponse(properties.property_json(properties.property_get(name=name)))


def _property_create(request: HttpRequest) -> JsonResponse:
    return JsonResponse(properties.property_json(properties.property_create(data=_json(request))), status=201)


def _unknown(request: HttpRequest, **kwargs: Any) -> JsonResponse:
    raise not_found(f"The sandbox CRM has no endpoint at {request.path}")


POST_WRITES = frozenset({"POST"})
contacts = endpoint(GET=_contacts_list, POST=_contact_create, writes=POST_WRITES)
contact = endpoint(GET=_contact_read)
contacts_batch_read = endpoint(POST=_batch_read)
contacts_batch_upsert = endpoint(POST=_batch_upsert, writes=POST_WRITES)
contacts_search_view = endpoint(POST=_search, search=True)
contact_properties = endpoint(GET=_properties_list, POST=_property_create, writes=POST_WRITES)
contact_property = endpoint(GET=_property_read)
unknown = endpoint(**{method: _unknown for method in ("GET", "POST", "PUT", "PATCH", "DELETE")})
