"""Any REST/JSON CRM, driven by the destination's recipe (delivery/rest_recipe.py): a create
request, an update request by the CRM's record ID, an optional lookup before creating, an
optional batch request, and how to read the answers.

What we called decides create or update, never the status code. An answer is a success only
when the recipe's predicate says so (a 200 carrying {"error": true} is not). An answer that says
the record already exists (a duplicate email, or our own create whose reply was lost) makes us
look the person up and update that record instead of parking the lead.

Every request carries the destination's headers, its authentication (none, bearer, a custom
header, HTTP basic, or an OAuth2 token shared by every worker), an Idempotency-Key and, when
configured, an HMAC signature of the exact bytes sent.
"""

import base64
from dataclasses import dataclass, field
from datetime import timedelta
from email.utils import parsedate_to_datetime
import hashlib
import hmac
import json
import time
from typing import Any

from django.utils import timezone
from requests.structures import CaseInsensitiveDict

from core import outbound
from core.secrets import SecretUnavailable
from delivery.connectors.auth import AccessToken, TokenProvider
from delivery.connectors.base import ConnectorError, CrmField, CrmSchema, Outcome, PushRecord, RecordResult
from delivery.fieldmap import render as render_fields
from delivery.models import Destination, DestinationField
from delivery.rest_recipe import (
    MAX_BATCH,
    Recipe,
    RecipeError,
    Request,
    TemplateError,
    fill,
    fill_url,
    shown_url,
    unknown_placeholders,
)
from delivery.session import DestinationSession, RateLimitWait

Auth = Destination.Auth
_TRANSIENT = {408, 423}
_DEFAULT_RETRY_AFTER = 10.0
_MESSAGE_LIMIT = 500
_OAUTH = (Auth.OAUTH2_CLIENT_CREDENTIALS, Auth.OAUTH2_REFRESH_TOKEN)
# The lookup a preflight or connection test makes: an address no person can have.
PROBE_EMAIL = "crmsync-preflight@example.invalid"


class _AuthFailed(Exception):
    def __init__(self, code: str, message: str, answer: outbound.Response | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.answer = code, message, answer


@dataclass
class _Call:
    """One request as sent and what came of it, before it is a record's result."""

    request: dict[str, Any]
    answer: outbound.Response | None = None
    outcome: Outcome | None = None  # set when the call failed
    code: str = ""
    message: str = ""
    retry_after: float | None = None
    exists: bool = False  # the CRM says the record is already there

    @property
    def ok(self) -> bool:
        return self.outcome is None and not self.exists


@dataclass(frozen=True)
class _Item:
    """What one record of a batch call is: an update of crm_id, or a create when it is empty."""

    crm_id: str
    adopted: bool = False  # crm_id was found by the lookup
    keep: frozenset[str] = frozenset()  # fields the found record keeps


@dataclass
class _Found:
    ids: list[str] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    call: _Call | None = None


class RestConnector:
    # The most a batch recipe may send per call; without one the connector makes one call per
    # record whatever it is given (the destination's batch_size is 1 then).
    max_batch = MAX_BATCH

    def __init__(self, destination: Destination, session: DestinationSession) -> None:
        self.destination = destination
        self.session = session
        self.tokens = TokenProvider(destination, self._oauth_token)
        self._field_map: list[DestinationField] | None = None

    # --- pushing ------------------------------------------------------------------------

    def upsert(self, records: list[PushRecord]) -> list[RecordResult]:
        try:
            recipe = self.destination.recipe()
        except RecipeError as exc:
            return [_failed(r, Outcome.PERMANENT, "INVALID_RECIPE", str(exc)) for r in records]
        unknown = unknown_placeholders(recipe, self._known())
        if unknown:
            # Loud, not null: a misspelt placeholder would blank a field in the CRM.
            text = "; ".join(f"{where}: {', '.join('{{ %s }}' % n for n in names)}" for where, names in unknown.items())
            return [_failed(r, Outcome.PERMANENT, "UNKNOWN_PLACEHOLDER", f"the recipe names fields the map does not send: {text}")
                    for r in records]
        if recipe.batch is not None:
            return self._batched(recipe, records)
        return self._one_by_one(recipe, records)

    def _one_by_one(self, recipe: Recipe, records: list[PushRecord]) -> list[RecordResult]:
        results: list[RecordResult] = []
        for index, record in enumerate(records):
            try:
                results.append(self._push(recipe, record))
            except RateLimitWait as wait:
                if not results:
                    raise  # nothing settled yet: the dispatcher hands the whole chunk back
                results += [_failed(r, Outcome.RATE_LIMITED, "RATE_BUDGET", str(wait), retry_after=wait.seconds)
                            for r in records[index:]]
                break
        return results

    def _push(self, recipe: Recipe, record: PushRecord) -> RecordResult:
        if record.crm_record_id:
            return self._update(recipe, record, record.crm_record_id, changed_only=self.destination.changed_fields_only)
        if record.lookup_email and recipe.lookup is not None:
            found = self._lookup(recipe, record, record.lookup_email)
            if found.call is not None:
                return _result(record, found.call)
            if found.ids:
                return self._adopt(recipe, record, found, "found by email")
            result = self._create(recipe, record)
            # Nobody had the email. After a refusal a retry (from review) need not ask again.
            # After a failure the CRM may have applied (a lost reply, a 5xx), the retry asks
            # first: one lookup and an update cost less than a create refused as a duplicate,
            # a lookup and an update.
            result.looked_up = result.outcome == Outcome.PERMANENT
            return result
        return self._create(recipe, record)

    def _create(self, recipe: Recipe, record: PushRecord) -> RecordResult:
        full = self._full(record)
        call = self._send(recipe, recipe.create, record, full, self._nulls(recipe, full), "create")
        if call.exists:
            return self._after_exists(recipe, record, call)
        if not call.ok:
            return _result(record, call)
        crm_id = _id(recipe.answer.id_path, call.answer.body)
        if not crm_id:
            if recipe.update is not None:
                # The update URL needs the CRM's ID: a success without one cannot be used.
                return _result(record, _error(call, Outcome.PERMANENT, "NO_RECORD_ID",
                                              f"the create answered {call.answer.status} without a record ID at "
                                              f"{recipe.answer.id_path.text if recipe.answer.id_path else '(no id_path)'}"))
            crm_id = record.external_id  # a receiver without IDs of its own: our key names the record
        return _result(record, call, Outcome.CREATED, crm_id)

    def _update(self, recipe: Recipe, record: PushRecord, crm_id: str, *, changed_only: bool,
                keep: frozenset[str] = frozenset()) -> RecordResult:
        full = self._full(record)
        # No update request: the create is called again, with the full record.
        changed_only = changed_only and recipe.update is not None
        # Changed fields only: what is not sent is unchanged, never null.
        fields = {k: v for k, v in (record.fields if changed_only else full).items() if k not in keep}
        nulls = frozenset() if changed_only else self._nulls(recipe, full) - keep
        call = self._send(recipe, recipe.update or recipe.create, record, fields, nulls, "update", crm_id=crm_id)
        if not call.ok:
            if call.exists:  # e.g. the new email is another record's: a person must decide
                call = _error(call, Outcome.PERMANENT, call.code or "ALREADY_EXISTS", call.message)
            return _result(record, call)
        return _result(record, call, Outcome.UPDATED, crm_id)

    def _adopt(self, recipe: Recipe, record: PushRecord, found: _Found, how: str) -> RecordResult:
        """Update the one record the lookup found, or send the lead to review when it found several."""
        if len(found.ids) > 1:
            shown = ", ".join(found.ids[:10]) + (" …" if len(found.ids) > 10 else "")
            return _failed(record, Outcome.PERMANENT, "AMBIGUOUS_LOOKUP",
                           f"the lookup found {len(found.ids)} records ({shown}); a person must choose",
                           response={"found": found.records[:10]})
        crm_id, existing = found.ids[0], found.records[0]
        # A person the CRM knew first keeps what the CRM decided for them (owner, stage).
        keep = frozenset(t for t in record.keep_existing if isinstance(existing, dict) and existing.get(t) not in (None, ""))
        result = self._update(recipe, record, crm_id, changed_only=False, keep=keep)
        result.looked_up = result.succeeded
        if result.succeeded:
            result.adopted = f"record {crm_id} {how}"
        return result

    def _after_exists(self, recipe: Recipe, record: PushRecord, call: _Call) -> RecordResult:
        """The create was refused as a duplicate: the person is there already (typed in, or
        created by our own earlier attempt whose reply was lost). Update that record."""
        if recipe.lookup is None:
            return _result(record, _error(call, Outcome.PERMANENT, call.code or "ALREADY_EXISTS",
                                          f"{call.message} (add a lookup request to the recipe to update the existing record)"))
        found = self._lookup(recipe, record, record.lookup_email or record.lead.email)
        if found.call is not None:
            return _result(record, found.call)
        if not found.ids:
            return _result(record, _error(call, Outcome.PERMANENT, call.code or "ALREADY_EXISTS",
                                          f"{call.message} (and the lookup found no record)"))
        return self._adopt(recipe, record, found, "found by lookup after the CRM answered that it already exists")

    def _lookup(self, recipe: Recipe, record: PushRecord | None, email: str) -> _Found:
        """The records the CRM has for the email; a failed call comes back in `call`."""
        values = {"email": email, **(self._full(record) if record else {}),
                  "external_id": record.external_id if record else ""}
        call = self._send(recipe, recipe.lookup, record, values, frozenset(), "lookup", idempotent=False)
        if not call.ok:
            if call.exists:
                call = _error(call, Outcome.PERMANENT, call.code or "LOOKUP_FAILED", call.message)
            return _Found(call=call)
        matches = recipe.lookup.id_path.matches(call.answer.body)
        ids = [_text(value) for value, _ in matches if value not in (None, "")]
        return _Found(ids=list(dict.fromkeys(ids)), records=[holder for value, holder in matches if value not in (None, "")])

    # --- batches ------------------------------------------------------------------------

    def _batched(self, recipe: Recipe, records: list[PushRecord]) -> list[RecordResult]:
        results: dict[str, RecordResult] = {}
        plans = {r.external_id: _Item(r.crm_record_id) for r in records}
        asked: set[str] = set()  # the lookup answered: nobody, or one record to update
        for record in records:
            if record.crm_record_id or not (record.lookup_email and recipe.lookup):
                continue
            # One lookup per new record first: a generic API has no batch search.
            found = self._lookup(recipe, record, record.lookup_email)
            if found.call is not None:
                results[record.external_id] = _result(record, found.call)
            elif len(found.ids) > 1:
                results[record.external_id] = self._adopt(recipe, record, found, "found by email")
            elif not found.ids:
                asked.add(record.external_id)
            else:
                asked.add(record.external_id)
                existing = found.records[0] if isinstance(found.records[0], dict) else {}
                plans[record.external_id] = _Item(found.ids[0], adopted=True, keep=frozenset(
                    t for t in record.keep_existing if existing.get(t) not in (None, "")))
        pending = [r for r in records if r.external_id not in results]
        exists: dict[str, _Call] = {}
        for start in range(0, len(pending), recipe.batch.max):
            self._batch_call(recipe, pending[start : start + recipe.batch.max], plans, results, exists)
        for record in records:
            plan, result = plans[record.external_id], results.get(record.external_id)
            if record.external_id in exists:
                # A create refused as a duplicate: look the person up and update that record.
                result = results[record.external_id] = self._after_exists(recipe, record, exists[record.external_id])
            elif plan.adopted and result.succeeded:
                result.adopted = f"record {result.crm_record_id} found by email"
            if record.external_id in asked and record.external_id not in exists:
                result.looked_up = result.succeeded or result.outcome == Outcome.PERMANENT  # as in _push
        return [results[r.external_id] for r in records]

    def _batch_call(self, recipe: Recipe, records: list[PushRecord], plans: dict[str, "_Item"],
                    results: dict[str, RecordResult], exists: dict[str, _Call]) -> None:
        batch = recipe.batch
        items = [self._batch_body(recipe, record, plans[record.external_id]) for record in records]
        url = fill_url(batch.url, {}, self.destination.base_url, where="batch.url")
        call = self._call(recipe, batch.method, url, {batch.wrap: items} if batch.wrap else items,
                          key=f"batch-{records[0].external_id}")
        if not call.ok:
            call = _error(call, Outcome.PERMANENT, call.code, call.message) if call.exists else call
            for record, item in zip(records, items):
                results[record.external_id] = _result(record, call, request={**call.request, "body": item})
            return
        answers = batch.results_path.find(call.answer.body)
        if len(answers) == 1 and isinstance(answers[0], list):
            answers = answers[0]  # the path names the list itself ("results"), not its items
        by_index = _by_index(answers, batch.index_path)
        for position, (record, item) in enumerate(zip(records, items)):
            request = {**call.request, "body": item}
            got = by_index.get(position)
            if got is None:
                # The call went through but says nothing of this record: try it again (an
                # applied create comes back as "already exists" and is settled then).
                results[record.external_id] = _failed(record, Outcome.TRANSIENT, "NO_RESULT",
                                                      f"the batch answer has no result for item {position}",
                                                      request=request, answer=call.answer)
                continue
            result = self._batch_item(recipe, record, plans[record.external_id].crm_id, got, request, call.answer)
            if isinstance(result, _Call):
                exists[record.external_id] = result
                result = _failed(record, Outcome.PERMANENT, result.code, result.message, request=request)
            results[record.external_id] = result

    def _batch_body(self, recipe: Recipe, record: PushRecord, plan: "_Item") -> Any:
        full = self._full(record)
        changed_only = bool(record.crm_record_id) and self.destination.changed_fields_only
        fields = {k: v for k, v in (record.fields if changed_only else full).items() if k not in plan.keep}
        values = {**fields, "external_id": record.external_id, **({"crm_record_id": plan.crm_id} if plan.crm_id else {})}
        if "email" not in self._known():
            values.setdefault("email", record.lead.email)
        return fill(recipe.batch.body, values, nulls=frozenset() if changed_only else self._nulls(recipe, full) - plan.keep)

    def _batch_item(self, recipe: Recipe, record: PushRecord, crm_id: str, got: Any, request: dict,
                    answer: outbound.Response) -> RecordResult | _Call:
        """One record's result in a batch answer; a _Call when it says the record already exists."""
        spec = recipe.answer
        common = {"http_status": answer.status, "request": request, "duration_ms": answer.duration_ms,
                  "response": got if isinstance(got, dict) else {"result": got}}
        if spec.success_when is None or spec.success_when.holds(got):
            if crm_id:
                return RecordResult(record.lead, Outcome.UPDATED, crm_id, **common)
            new_id = _id(recipe.batch.id_path, got)
            if new_id:
                return RecordResult(record.lead, Outcome.CREATED, new_id, **common)
            return RecordResult(record.lead, Outcome.PERMANENT, error_code="NO_RECORD_ID",
                                error_message=f"the batch result has no record ID at {recipe.batch.id_path.text}", **common)
        code, message = spec.error(got)
        message = _truncate(message or json.dumps(got, default=str))
        if not crm_id and spec.exists_match is not None and (spec.exists_match.search(code) or spec.exists_match.search(message)):
            return _Call(request, answer, Outcome.PERMANENT, code, message, exists=True)
        outcome = Outcome.TRANSIENT if spec.on_failure == "retry" else Outcome.PERMANENT
        return RecordResult(record.lead, outcome, error_code=code or "REFUSED", error_message=message, **common)

    # --- one call ------------------------------------------------------------------------

    def _send(self, recipe: Recipe, request: Request, record: PushRecord | None, fields: dict[str, Any],
              nulls: frozenset[str], where: str, *, crm_id: str = "", idempotent: bool = True) -> _Call:
        values = {**fields, "external_id": record.external_id if record else "", **({"crm_record_id": crm_id} if crm_id else {})}
        if record and "email" not in self._known():
            values.setdefault("email", record.lead.email)  # a map without an email field: the lead's
        try:
            url = fill_url(request.url, values, self.destination.base_url, where=f"{where}.url")
        except TemplateError as exc:
            return _Call(request={"method": request.method, "url": request.url}, outcome=Outcome.PERMANENT,
                         code="TEMPLATE", message=str(exc))
        if request.method == "GET" and request.body is None:
            body = None
        elif request.body is None:
            body = {"external_id": values["external_id"], **fields}  # no template: the fields as they are
        else:
            body = fill(request.body, values, nulls=nulls)
        key = record.external_id if (record and idempotent) else ""
        return self._call(recipe, request.method, url, body, key=key)

    def _call(self, recipe: Recipe, method: str, url: str, body: Any, *, key: str = "") -> _Call:
        raw = encode(body) if body is not None else None
        sent = {"method": method, "url": shown_url(url), **({"body": body} if body is not None else {})}
        try:
            answer = self._authorized(recipe, method, url, raw, key)
        except _AuthFailed as exc:
            return _Call(sent, exc.answer, Outcome.AUTH, exc.code, exc.message)
        except SecretUnavailable as exc:
            return _Call(sent, None, Outcome.AUTH, "NO_CREDENTIALS", str(exc))
        except outbound.OutboundError as exc:
            return _Call(sent, None, Outcome.TRANSIENT, "NETWORK", str(exc))
        return _interpret(recipe, sent, answer)

    def _authorized(self, recipe: Recipe, method: str, url: str, raw: bytes | None, key: str) -> outbound.Response:
        """Call; with OAuth2, on 401 get a new token once and call again."""
        answer = outbound.request(method, url, headers=self._headers(recipe, raw, key), data=raw, via=self.session)
        if answer.status == 401 and self.destination.auth_method in _OAUTH:
            self.tokens.refresh()
            answer = outbound.request(method, url, headers=self._headers(recipe, raw, key), data=raw, via=self.session)
        if answer.status in (401, 403):
            code, message = _error_of(recipe, answer)
            raise _AuthFailed(code, message, answer)
        return answer

    def _headers(self, recipe: Recipe, raw: bytes | None, key: str) -> dict[str, str]:
        headers = CaseInsensitiveDict({str(k): str(v) for k, v in (self.destination.headers or {}).items()})
        headers.update(self._auth_headers(recipe))
        if raw is None:
            return dict(headers)
        headers.setdefault("Content-Type", "application/json")
        if key:
            # Same record, same bytes, same key: a receiver that honours it drops our retries.
            headers["Idempotency-Key"] = f"{key}:{hashlib.sha256(raw).hexdigest()}"
        if self.destination.signature_header:
            secret = self._credential("signing_secret")
            digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            headers[self.destination.signature_header] = f"sha256={digest}"
        return dict(headers)

    def _auth_headers(self, recipe: Recipe) -> dict[str, str]:
        method = self.destination.auth_method
        if method == Auth.BEARER:
            return {"Authorization": f"Bearer {self._credential('token')}"}
        if method == Auth.HEADER:
            return {recipe.auth_header: f"{recipe.auth_prefix}{self._credential('token')}"}
        if method == Auth.BASIC:
            pair = f"{self._credential('username')}:{self._credential('password')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        if method in _OAUTH:
            return {"Authorization": f"Bearer {self.tokens.token()}"}
        return {}

    def _credential(self, name: str) -> str:
        value = self.destination.credentials().get(name, "")
        if not value:
            raise SecretUnavailable(f"The destination's credentials have no {name}.")
        return value

    def _oauth_token(self) -> AccessToken:
        """A new access token from the recipe's token endpoint (RFC 6749 4.4 / 6), form-encoded."""
        recipe = self.destination.recipe()
        if not recipe.token_url:
            raise SecretUnavailable("OAuth2 needs the token endpoint: set token_url in the REST recipe.")
        form = {"client_id": self._credential("client_id"), "client_secret": self._credential("client_secret")}
        if self.destination.auth_method == Auth.OAUTH2_REFRESH_TOKEN:
            form.update(grant_type="refresh_token", refresh_token=self._credential("refresh_token"))
        else:
            form["grant_type"] = "client_credentials"
        if recipe.token_scope:
            form["scope"] = recipe.token_scope
        url = fill_url(recipe.token_url, {}, self.destination.base_url, where="token_url")
        answer = outbound.request("POST", url, data=form, via=self.session)
        if answer.status >= 500 or answer.status in (408, 429):
            raise outbound.OutboundError(f"the token endpoint answered HTTP {answer.status}")
        if answer.status != 200 or not isinstance(answer.body, dict) or not answer.body.get("access_token"):
            code, message = _error_of(recipe, answer)
            raise _AuthFailed(code, f"the token endpoint refused: {message}", answer)
        expires_in = answer.body.get("expires_in")
        expires_at = timezone.now() + timedelta(seconds=int(expires_in)) if str(expires_in or "").isdigit() else None
        return AccessToken(str(answer.body["access_token"]), expires_at)

    # --- the field map ------------------------------------------------------------------

    def _fields(self) -> list[DestinationField]:
        if self._field_map is None:
            self._field_map = list(self.destination.fields.all())
        return self._field_map

    def _known(self) -> set[str]:
        return {f.target for f in self._fields() if f.object == DestinationField.Object.PRIMARY}

    def _full(self, record: PushRecord) -> dict[str, Any]:
        """Every mapped field the lead has a value for: what a create (or a full update) sends,
        whatever the dispatcher left out as unchanged."""
        primary, _ = render_fields(record.lead, self._fields(), company_key="")
        return {**primary, **record.fields}

    def _nulls(self, recipe: Recipe, full: dict[str, Any]) -> frozenset[str]:
        """The mapped fields with no value, when the recipe sends those as null."""
        return frozenset(self._known() - set(full)) if recipe.missing == "null" else frozenset()

    # --- setup ----------------------------------------------------------------------------

    def test_connection(self) -> str:
        recipe = self._setup_recipe()
        if recipe.lookup is not None:
            return self.lookup_probe()
        url = self.destination.base_url
        call = self._call(recipe, "OPTIONS", url, None)
        if call.outcome == Outcome.AUTH:
            status = f"HTTP {call.answer.status}" if call.answer is not None else call.code
            raise ConnectorError(f"{url} refused our credentials ({status}): {call.message}")
        if call.answer is None:
            raise ConnectorError(f"{url} is not reachable: {call.message}")
        if call.answer.status >= 500:
            raise ConnectorError(f"{url} answered HTTP {call.answer.status}: {_message(call.answer.body)}")
        return f"Reachable: {url} answered OPTIONS with HTTP {call.answer.status}"

    def lookup_probe(self) -> str:
        """Call the lookup with an address nobody has: checks its URL, credentials and ID path."""
        recipe = self._setup_recipe()
        if recipe.lookup is None:
            raise ConnectorError("The REST recipe has no lookup request.")
        found = self._lookup(recipe, None, PROBE_EMAIL)
        if found.call is not None:
            call = found.call
            status = f"HTTP {call.answer.status}" if call.answer is not None else "no answer"
            raise ConnectorError(f"The lookup failed ({status}): {call.code} {call.message}".strip())
        return f"The lookup answered for {PROBE_EMAIL}: {len(found.ids)} record(s) found, credentials accepted."

    def _setup_recipe(self) -> Recipe:
        try:
            return self.destination.recipe()
        except RecipeError as exc:
            raise ConnectorError(f"The REST recipe is invalid: {exc}") from exc

    def schema(self) -> CrmSchema:
        return CrmSchema(primary={})  # free-form JSON: the preflight checks the recipe's templates instead

    def create_fields(self, fields: list[CrmField], *, company: bool = False) -> list[str]:
        raise NotImplementedError("A REST endpoint has no fields to create; edit the recipe's templates instead")


# --- answers ----------------------------------------------------------------------------------


def _interpret(recipe: Recipe, sent: dict[str, Any], answer: outbound.Response) -> _Call:
    spec = recipe.answer
    if spec.succeeded(answer.status, answer.body):
        return _Call(sent, answer)
    code, message = _error_of(recipe, answer)
    if spec.already_exists(answer.status, code, message):
        return _Call(sent, answer, Outcome.PERMANENT, code, message, exists=True)
    if answer.status == 429:
        return _Call(sent, answer, Outcome.RATE_LIMITED, code, message, retry_after(answer.headers) or _DEFAULT_RETRY_AFTER)
    if answer.status in _TRANSIENT or answer.status >= 500:
        return _Call(sent, answer, Outcome.TRANSIENT, code, message, retry_after(answer.headers))
    if 200 <= answer.status < 300:
        # A 2xx the predicate calls a failure (e.g. {"error": true}): never a success.
        outcome = Outcome.TRANSIENT if spec.on_failure == "retry" else Outcome.PERMANENT
        return _Call(sent, answer, outcome, code if code != f"HTTP_{answer.status}" else "REFUSED", message)
    return _Call(sent, answer, Outcome.PERMANENT, code, message)


def _error_of(recipe: Recipe, answer: outbound.Response) -> tuple[str, str]:
    code, message = recipe.answer.error(answer.body)
    code = code if 0 < len(code) <= 100 else _code(answer)
    return code, _truncate(message) if message else _message(answer.body)


def _error(call: _Call, outcome: Outcome, code: str, message: str) -> _Call:
    return _Call(call.request, call.answer, outcome, code, message, call.retry_after)


def _result(record: PushRecord, call: _Call, outcome: Outcome | None = None, crm_id: str = "",
            request: dict | None = None) -> RecordResult:
    answer = call.answer
    common = {"request": request or call.request, "http_status": answer.status if answer else None,
              "duration_ms": answer.duration_ms if answer else 0,
              "response": (answer.body if isinstance(answer.body, dict) else {"body": _truncate(answer.body)}) if answer else {}}
    if outcome is not None:
        return RecordResult(record.lead, outcome, crm_record_id=crm_id, **common)
    return RecordResult(record.lead, call.outcome, error_code=call.code, error_message=call.message,
                        retry_after=call.retry_after, **common)


def _failed(record: PushRecord, outcome: Outcome, code: str, message: str, *, retry_after: float | None = None,
            request: dict | None = None, response: dict | None = None, answer: outbound.Response | None = None) -> RecordResult:
    return RecordResult(record.lead, outcome, error_code=code, error_message=message, retry_after=retry_after,
                        request=request or {}, response=response or {}, http_status=answer.status if answer else None,
                        duration_ms=answer.duration_ms if answer else 0)


def _id(path: Any, body: Any) -> str:
    value = path.first(body) if path is not None and isinstance(body, (dict, list)) else None
    return "" if value in (None, "") else _text(value)


def _by_index(answers: list[Any], index_path: Any) -> dict[int, Any]:
    if index_path is None:
        return dict(enumerate(answers))
    by_index = {}
    for got in answers:
        index = index_path.first(got) if isinstance(got, (dict, list)) else None
        if isinstance(index, int) and not isinstance(index, bool):
            by_index[index] = got
    return by_index


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def encode(body: Any) -> bytes:
    """The exact bytes sent, hashed and signed: compact, key order as built."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def retry_after(headers: dict[str, str]) -> float | None:
    """Retry-After in seconds, or as an HTTP date (RFC 9110 10.2.3)."""
    value = CaseInsensitiveDict(headers).get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _code(answer: outbound.Response) -> str:
    body = answer.body if isinstance(answer.body, dict) else {}
    for key in ("code", "error_code", "error"):
        if isinstance(body.get(key), str) and 0 < len(body[key]) <= 100:
            return body[key]
    return f"HTTP_{answer.status}"


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "error_description", "detail", "error"):
            if isinstance(body.get(key), str) and body[key]:
                return _truncate(body[key])
        return _truncate(json.dumps(body, default=str))
    return _truncate(body)


def _truncate(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"
