"""Salesforce's REST API (and its OAuth token endpoint) over the sandbox org, at Salesforce's
own paths below the server root: /services/oauth2/token and /services/data/vNN.N/...

`endpoint` adds what every Salesforce data call has: the bearer session, the version check,
the daily API allocation and its Sforce-Limit-Info header, the injected faults (reads included),
the request log, the org's `Date` header (its own clock) and the actor of its writes
(`X-Sandbox-Actor: person:<name>` makes LastModifiedById that person's user, not the integration user).
"""

import json
import time
from typing import Any, Callable

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from sandbox.clock import ACTOR_HEADER, ActorError, acting_as, actor_parse, date_header
from sandbox.faults import FaultDecision, fault_call, fault_decide, fault_finish, no_faults, request_log_record
from sandbox.limits import daily_count, daily_used
from sandbox.oauth import OAuthError
from sandbox.salesforce import records
from sandbox.salesforce.oauth import SALESFORCE_ORG_ID, salesforce_token_grant
from sandbox.salesforce.records import SalesforceError, WriteOptions
from sandbox.salesforce.schema import CRM, SANDBOX_USER_ID, describe_json, org_settings
from sandbox.tokens import TokenState, bearer_token, token_state

Handler = Callable[..., HttpResponse]
FAULT_ERRORS = {
    500: ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if you contact support."),
    502: ("SERVER_UNAVAILABLE", "The server is temporarily unavailable (bad gateway)."),
    503: ("SERVER_UNAVAILABLE", "The server is temporarily unavailable."),
}


def endpoint(*, faulty: bool = True, **handlers: Handler) -> Callable:
    """A view answering the given methods (GET=..., PATCH=...) the way Salesforce does. Each
    handler gets the request, the API version, the fault decision and the URL's other parts."""

    @csrf_exempt
    @transaction.non_atomic_requests  # writes commit before any reply delay or lost reply
    def view(request: HttpRequest, version: str, **kwargs: Any) -> HttpResponse:
        started = timezone.now()
        decision = no_faults()
        org = org_settings()
        if token_state(crm=CRM, token=bearer_token(request.headers.get("Authorization", ""))) is not TokenState.VALID:
            used = daily_used(crm=CRM)
            response = _errors(SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid"))
        else:
            used = daily_count(crm=CRM)
            if used > org.daily_limit:
                response = _errors(SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
            else:
                decision = fault_decide(crm=CRM) if faulty else no_faults()
                response = fault_call(decision, refuse=_fault_response,
                                      run=lambda: _answer(request, handlers, version, decision, kwargs))
                if request.method in ("POST", "PATCH") and response.status_code < 300 and org.reply_delay_ms:
                    time.sleep(org.reply_delay_ms / 1000)  # committed: a client giving up loses only the reply
        response["Sforce-Limit-Info"] = f"api-usage={used}/{org.daily_limit}"
        response["Date"] = date_header(crm=CRM)
        request_log_record(crm=CRM, request=request, status=response.status_code, fault=decision.logged_kind(),
                           started_at=started)
        return fault_finish(request, decision, response)

    return view


def _answer(request: HttpRequest, handlers: dict[str, Handler], version: str, decision: FaultDecision,
            kwargs: dict[str, Any]) -> HttpResponse:
    try:
        records.version_check(version)
        handler = handlers.get(request.method or "")
        if handler is None:
            raise SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. "
                                                             f"Allowed are {', '.join(handlers)}")
        try:
            actor = actor_parse(request.headers.get(ACTOR_HEADER, ""))
        except ActorError as exc:
            raise SalesforceError(400, "INVALID_HEADER_TYPE", str(exc)) from None
        with acting_as(actor):
            return handler(request, version, decision, **kwargs)
    except SalesforceError as exc:
        return _errors(exc)


def _errors(error: SalesforceError) -> JsonResponse:
    return JsonResponse(error.body, status=error.status, safe=False)


def _fault_response(decision: FaultDecision) -> JsonResponse:
    if decision.kind == "rate_limit":
        return _errors(SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."))
    code, message = FAULT_ERRORS[decision.error_status]
    return _errors(SalesforceError(decision.error_status, code, message))


def _json(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body)
    except ValueError as exc:
        raise SalesforceError(400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {exc}") from None


def _options(request: HttpRequest, decision: FaultDecision) -> WriteOptions:
    header = request.headers.get("Sforce-Duplicate-Rule-Header", "")
    allow = any(part.strip().lower() == "allowsave=true" for part in header.split(","))
    return WriteOptions(allow_duplicates=allow, locked=decision.record_locked)


# --- handlers ---------------------------------------------------------------------------------

def _record_create(request: HttpRequest, version: str, decision: FaultDecision, sobject: str) -> JsonResponse:
    outcome = records.record_create(sobject_name=sobject, body=_json(request), options=_options(request, decision))
    return JsonResponse({"id": outcome.id, "success": True, "errors": []}, status=201)


def _collection_update(request: HttpRequest, version: str, decision: FaultDecision) -> JsonResponse:
    results = records.records_update(body=_json(request), options=_options(request, decision))
    return JsonResponse(results, safe=False)


def _collection_upsert(request: HttpRequest, version: str, decision: FaultDecision, sobject: str,
                       field: str) -> JsonResponse:
    results = records.records_upsert(sobject_name=sobject, key_name=field, body=_json(request),
                                     options=_options(request, decision))
    return JsonResponse(results, safe=False)


def _record_upsert(request: HttpRequest, version: str, decision: FaultDecision, sobject: str, field: str,
                   value: str) -> JsonResponse:
    outcome = records.record_upsert(sobject_name=sobject, key_name=field, key_value=value, body=_json(request),
                                    options=_options(request, decision), version=version)
    return JsonResponse(outcome.json(), status=201 if outcome.created else 200)


def _describe(request: HttpRequest, version: str, decision: FaultDecision, sobject: str) -> JsonResponse:
    return JsonResponse(describe_json(records.sobject_get(sobject), version))


def _query(request: HttpRequest, version: str, decision: FaultDecision) -> JsonResponse:
    return JsonResponse(records.query_run(soql=request.GET.get("q", ""), version=version,
                                          batch_size=_query_batch_size(request)))


def _query_all(request: HttpRequest, version: str, decision: FaultDecision) -> JsonResponse:
    return JsonResponse(records.query_run(soql=request.GET.get("q", ""), version=version,
                                          batch_size=_query_batch_size(request), all_rows=True))


def _record_read(request: HttpRequest, version: str, decision: FaultDecision, sobject: str,
                 record_id: str) -> JsonResponse:
    fields = [name.strip() for name in request.GET.get("fields", "").split(",") if name.strip()]
    return JsonResponse(records.record_get(sobject_name=sobject, record_id=record_id, fields=fields, version=version))


def _record_update(request: HttpRequest, version: str, decision: FaultDecision, sobject: str,
                   record_id: str) -> HttpResponse:
    records.record_update(sobject_name=sobject, record_id=record_id, body=_json(request),
                          options=_options(request, decision))
    return HttpResponse(status=204)


def _record_delete(request: HttpRequest, version: str, decision: FaultDecision, sobject: str,
                   record_id: str) -> HttpResponse:
    records.record_delete(sobject_name=sobject, record_id=record_id)
    return HttpResponse(status=204)


def _updated(request: HttpRequest, version: str, decision: FaultDecision, sobject: str) -> JsonResponse:
    return JsonResponse(records.changed_ids(sobject_name=sobject, start=request.GET.get("start", ""),
                                            end=request.GET.get("end", ""), deleted=False))


def _deleted(request: HttpRequest, version: str, decision: FaultDecision, sobject: str) -> JsonResponse:
    return JsonResponse(records.changed_ids(sobject_name=sobject, start=request.GET.get("start", ""),
                                            end=request.GET.get("end", ""), deleted=True))


def _query_batch_size(request: HttpRequest) -> int:
    """Sforce-Query-Options: batchSize=N (Salesforce keeps it within 200..2000)."""
    for part in request.headers.get("Sforce-Query-Options", "").split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "batchsize" and value.strip().isdecimal():
            return int(value.strip())
    return records.QUERY_BATCH


def _query_more(request: HttpRequest, version: str, decision: FaultDecision, locator: str,
                offset: str) -> JsonResponse:
    return JsonResponse(records.query_more(locator=locator, offset=int(offset), version=version))


def _limits(request: HttpRequest, version: str, decision: FaultDecision) -> JsonResponse:
    return JsonResponse(records.limits_json(used=daily_used(crm=CRM), allocation=org_settings().daily_limit))


def _unknown(request: HttpRequest, version: str, decision: FaultDecision, **kwargs: Any) -> JsonResponse:
    raise SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


record_create = endpoint(POST=_record_create)
collection_update = endpoint(PATCH=_collection_update)
collection_upsert = endpoint(PATCH=_collection_upsert)
record_upsert = endpoint(PATCH=_record_upsert)
describe = endpoint(GET=_describe)
query = endpoint(GET=_query)
query_all = endpoint(GET=_query_all)
record = endpoint(GET=_record_read, PATCH=_record_update, DELETE=_record_delete)
updated = endpoint(GET=_updated)
deleted = endpoint(GET=_deleted)
query_more = endpoint(GET=_query_more)
limits = endpoint(GET=_limits, faulty=False)  # what a client reads to pace itself stays reliable
unknown = endpoint(**{method: _unknown for method in ("GET", "POST", "PUT", "PATCH", "DELETE")})


@csrf_exempt
@transaction.non_atomic_requests
def token(request: HttpRequest) -> JsonResponse:
    """POST /services/oauth2/token: no faults, limits or log, only data calls get those."""
    if request.method != "POST":
        return JsonResponse({"error": "invalid_request", "error_description": "must use HTTP POST"}, status=400)
    instance_url = f"{request.scheme}://{request.get_host()}"
    try:
        return JsonResponse(salesforce_token_grant(form=request.POST, instance_url=instance_url))
    except OAuthError as exc:
        return JsonResponse(exc.body, status=exc.status)


@csrf_exempt
@transaction.non_atomic_requests
def userinfo(request: HttpRequest) -> JsonResponse:
    """GET /services/oauth2/userinfo: who the session's user is. The integration user's
    `user_id` is the LastModifiedById of every write made through the API (echoes)."""
    if token_state(crm=CRM, token=bearer_token(request.headers.get("Authorization", ""))) is not TokenState.VALID:
        return JsonResponse({"error": "invalid_token", "error_description": "Access token is invalid or expired."},
                            status=403)
    base = f"{request.scheme}://{request.get_host()}"
    return JsonResponse({"sub": f"{base}/id/{SALESFORCE_ORG_ID}/{SANDBOX_USER_ID}", "user_id": SANDBOX_USER_ID,
                         "organization_id": SALESFORCE_ORG_ID, "preferred_username": "integration@sandbox.example",
                         "name": "Sandbox Integration User", "user_type": "STANDARD", "active": True,
                         "urls": {"rest": f"{base}/services/data/v{{version}}/"}},
                        headers={"Date": date_header(crm=CRM)})
