"""Salesforce Leads, or Contacts with their Accounts, through sObject Collections upserts keyed
on External ID fields (see docs/wire-contracts.md, Salesforce).

simple-salesforce makes the REST calls, given our DestinationSession, so every call takes a slot
of the destination's shared budget. We ask for the token ourselves: its login helpers only know
https://{login,test}.salesforce.com, while a destination names its own My Domain (or the
sandbox). One collections call carries up to 200 records, and Salesforce answers per record in
request order, so one refused record never holds back the others (allOrNone: false).

Leads and Contacts typed in by hand or imported have no key of ours, and an upsert on our key
would create a second record beside them. So before the first push of a lead we query its
email and, when Salesforce has a record with it, update that one by its Id (Collections update),
writing our key onto it: from then on the upserts find it by the key.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import time
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.cache import cache
import jwt
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceExpiredSession

from core import outbound
from core.secrets import SecretUnavailable
from delivery.connectors.auth import AccessToken, TokenProvider
from delivery.connectors.base import (
    ChangePage,
    ConnectorError,
    CrmChange,
    CrmField,
    CrmSchema,
    Outcome,
    PollError,
    PushRecord,
    RecordResult,
)
from delivery.connectors.clock import clock_offset
from delivery.connectors.salesforce_read import Answer, SalesforceReader
from delivery.models import Destination
from delivery.session import DestinationSession

T = TypeVar("T")

DEFAULT_API_VERSION = "62.0"  # collections upsert needs >= 46.0
# Salesforce sends no Retry-After with REQUEST_LIMIT_EXCEEDED (a rolling 24-hour allocation).
DEFAULT_RETRY_AFTER_SECONDS = 60.0
# Per-record codes worth another try; every other record error is the data's fault.
_RECORD_TRANSIENT = {"UNABLE_TO_LOCK_ROW"}
_RECORD_RATE_LIMITED = {"REQUEST_LIMIT_EXCEEDED"}
_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Bytes of the URL-encoded SOQL of one email lookup. Salesforce takes up to 16,384 bytes of URI
# and headers and recommends URIs of about 2,000 characters; 3,500 keeps the request line within
# the 4 KB many web servers accept (gunicorn, which serves the sandbox) and fits ~100 emails.
QUERY_URL_BUDGET = 3_500
# What a query's URL may carry as is: SOQL quotes, lists and email addresses stay readable.
_QUERY_SAFE = "@',()*"
_QUERY_FRAME = 300  # the URL's path and the SOQL around the email list, with room to spare
USER_ID_CACHE_SECONDS = 24 * 3600


@dataclass(eq=False)  # exceptions stay hashable
class CallFailed(Exception):
    """A whole call (token or REST) failed; every record it carried gets this outcome."""

    outcome: Outcome
    code: str
    message: str
    http_status: int | None = None
    body: Any = None
    retry_after: float | None = None
    duration_ms: int = 0

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


@dataclass
class _Answer:
    body: Any
    http_status: int | None
    duration_ms: int


@dataclass(frozen=True)
class _Existing:
    """The record found by email that a lead adopts."""

    sobject: str
    id: str
    count: int  # records of the sObject with this email
    ours: bool  # it already carries the lead's key (an earlier adoption or create whose reply was lost)
    held: frozenset[str] = frozenset()  # fields Salesforce already decided (owner...), kept on adoption

    @classmethod
    def choose(cls, sobject: str, free: list[dict[str, Any]], count: int, key: str, external_id: str) -> "_Existing":
        """Ours if one carries our key, else the oldest: deterministic whatever order the query gave."""
        best = min(free, key=lambda row: (row.get(key) != external_id, str(row.get("CreatedDate") or ""),
                                          str(row["Id"])))
        held = frozenset(name for name, value in best.items() if value not in (None, "") and name != "attributes")
        return cls(sobject, str(best["Id"]), count, best.get(key) == external_id, held)

    def fields(self, record: PushRecord, sent: dict[str, Any]) -> dict[str, Any]:
        """What to write onto the adopted record: not what Salesforce already decided (owner,
        lifecycle), unless the record is ours already."""
        if self.ours:
            return sent
        return {k: v for k, v in sent.items() if not (k in record.keep_existing and k in self.held)}

    def adopted(self, result: RecordResult) -> RecordResult:
        if result.succeeded:
            result.adopted = f"Salesforce {self.sobject} {self.id} found by email{self._why()}"
        return result

    def _why(self) -> str:
        if self.ours:
            return " (it already carried this lead's key)"
        if self.count > 1:
            return f" (the oldest of {self.count} {self.sobject} records with this email that no other lead holds)"
        return ""


class SalesforceConnector:
    max_batch = 200  # sObject Collections' limit per call

    def __init__(self, destination: Destination, session: DestinationSession) -> None:
        self.destination = destination
        self.session = session
        self.tokens = TokenProvider(destination, self._fetch_token)
        self._last_status: int | None = None
        self._last_clock_offset: float | None = None
        self._user_id: str | None = None
        session.hooks["response"].append(self._remember_status)

    # --- the Connector protocol ---

    def upsert(self, records: list[PushRecord]) -> list[RecordResult]:
        if not records:
            return []
        contacts = self.destination.object_model == Destination.ObjectModel.CONTACT_ACCOUNT
        lookups = [r for r in records if r.lookup_email]
        found, settled = self._existing("Contact" if contacts else "Lead", lookups)
        unmatched = {r.external_id for r in lookups if r.external_id not in found and r.external_id not in settled}
        pending = [r for r in records if r.external_id not in settled]
        if contacts:
            pushed = self._upsert_contacts_with_accounts(pending, found)
        else:
            pushed = self._save("Lead", pending, [r.fields for r in pending], found)
        results = {**settled, **{r.external_id: result for r, result in zip(pending, pushed)}}
        for record in records:
            # A retry may skip the lookup when Salesforce had no record with the email, whatever
            # became of the write; not when a found one could not be adopted (it would be
            # duplicated by an upsert on our key).
            result = results[record.external_id]
            result.looked_up = record.external_id in unmatched or (record.external_id in found and result.succeeded)
        return [results[r.external_id] for r in records]

    def test_connection(self) -> str:
        answer = self._for_person(lambda: self._call("GET", "limits"))
        daily = answer.body.get("DailyApiRequests", {}) if isinstance(answer.body, dict) else {}
        instance = urlsplit(self._instance_url()).netloc
        left, allocation = daily.get("Remaining"), daily.get("Max")
        if not (isinstance(left, int) and isinstance(allocation, int)):
            return f"Connected to {instance}"
        return f"Connected to {instance}: {left:,} of {allocation:,} daily API requests left"

    def schema(self) -> CrmSchema:
        contacts = self.destination.object_model == Destination.ObjectModel.CONTACT_ACCOUNT
        primary = self._describe("Contact" if contacts else "Lead")
        return CrmSchema(primary=primary, company=self._describe("Account") if contacts else {})

    def create_fields(self, fields: list[CrmField], *, company: bool = False) -> list[str]:
        raise NotImplementedError("Salesforce custom fields are created in Setup")

    # --- reading changes back (salesforce_read.py) ---

    def changes(self, *, object: str, since: datetime | None, cursor: str, fields: list[str]) -> ChangePage:
        return self._reader().changes(object=object, since=since, cursor=cursor, fields=fields)

    def read(self, *, object: str, ids: list[str], fields: list[str], history: bool = False) -> list[CrmChange]:
        return self._reader().read(object=object, ids=ids, fields=fields, history=history)

    def deletions(self, *, object: str, since: datetime | None, cursor: str) -> ChangePage:
        return self._reader().deletions(object=object, since=since, cursor=cursor)

    def _reader(self) -> SalesforceReader:
        contacts = self.destination.object_model == Destination.ObjectModel.CONTACT_ACCOUNT
        return SalesforceReader(self._read_call, calls=lambda: self.session.calls, user_id=self._integration_user_id,
                                sobjects={"primary": "Contact" if contacts else "Lead", "company": "Account"},
                                key={"primary": self.destination.upsert_property,
                                     "company": self.destination.company_upsert_property})

    def _read_call(self, path: str) -> Answer:
        """One GET for the poller, or a PollError saying whether trying again may work."""
        self._last_clock_offset = None
        try:
            answer = self._call("GET", path)
        except CallFailed as failure:
            raise _poll_error(failure) from failure
        return Answer(answer.body, self._last_clock_offset)

    def _integration_user_id(self) -> str:
        """The user our token acts as, whose changes are our own echoes: from the token answer's
        `id` URL when this process fetched the token, else asked once (`/services/oauth2/userinfo`)
        and kept for every worker; "" when it cannot be learnt."""
        if self._user_id is None:
            self._user_id = cache.get(_user_cache_key(self.destination)) or self._userinfo()
        return self._user_id

    def _userinfo(self) -> str:
        try:
            body = self._call("GET", "userinfo", api="oauth2").body
        except CallFailed:
            return ""  # not asked again by this connector: its changes read as not ours
        user_id = str(body.get("user_id") or "") if isinstance(body, dict) else ""
        if user_id:
            cache.set(_user_cache_key(self.destination), user_id, USER_ID_CACHE_SECONDS)
        return user_id

    # --- Contacts and Accounts ---

    def _upsert_contacts_with_accounts(self, records: list[PushRecord],
                                       found: dict[str, _Existing]) -> list[RecordResult]:
        key = self.destination.company_upsert_property
        by_domain = self._upsert_accounts(records)
        accounts = [by_domain.get(_domain(record, key)) for record in records]  # None: no Account
        # A Contact whose Account failed is not sent: it would land without its Account.
        ready = [i for i, account in enumerate(accounts) if account is None or account.succeeded]
        fields = [_with_account_id(records[i].fields, accounts[i]) for i in ready]
        pushed = dict(zip(ready, self._save("Contact", [records[i] for i in ready], fields, found)))
        return [_with_account(pushed[i], accounts[i], record) if i in pushed else _as_account_failure(record, accounts[i])
                for i, record in enumerate(records)]

    def _upsert_accounts(self, records: list[PushRecord]) -> dict[str, RecordResult]:
        """One collections call for the batch's distinct Accounts; each result keyed by domain."""
        key = self.destination.company_upsert_property
        accounts = _distinct_accounts(records, key)  # domain -> Account fields, in batch order
        if not accounts:
            return {}
        first_record = {}
        for record in records:
            first_record.setdefault(_domain(record, key), record)
        sent = [self._sobject("Account", key, domain, fields) for domain, fields in accounts.items()]
        results = self._collection(f"composite/sobjects/Account/{key}", [first_record[d] for d in accounts], sent)
        return dict(zip(accounts, results))

    # --- records Salesforce already has ---

    def _existing(self, sobject: str,
                  records: list[PushRecord]) -> tuple[dict[str, _Existing], dict[str, RecordResult]]:
        """The records Salesforce has with the lookup emails that we may adopt, by external ID; and
        the results of records the lookup settles: those whose email only records of other leads
        have, and those whose query failed."""
        key = self.destination.upsert_property
        # A converted Lead cannot be updated; its person is a Contact now.
        converted = " AND IsConverted = false" if sobject == "Lead" else ""
        found: dict[str, _Existing] = {}
        settled: dict[str, RecordResult] = {}
        for chunk in _lookup_chunks(records):
            emails = ",".join(_soql_string(r.lookup_email.strip()) for r in chunk)
            kept = "".join(f", {name}" for name in sorted(set().union(*(r.keep_existing for r in chunk))
                                                              - {"Id", "Email", "CreatedDate", key}))
            soql = f"SELECT Id, Email, CreatedDate, {key}{kept} FROM {sobject} WHERE Email IN ({emails}){converted}"
            try:
                rows, answer = self._query(soql)
            except CallFailed as failure:
                settled |= {r.external_id: _failed(r, {"query": soql}, failure) for r in chunk}
                continue
            by_email: dict[str, list[dict[str, Any]]] = {}
            for row in rows:
                by_email.setdefault(str(row.get("Email") or "").lower(), []).append(row)
            for record in chunk:
                same = by_email.get(record.lookup_email.strip().lower(), [])
                free = [row for row in same if row.get(key) in (None, "", record.external_id)]
                if free:
                    found[record.external_id] = _Existing.choose(sobject, free, len(same), key, record.external_id)
                elif same:
                    settled[record.external_id] = _belongs_to_other(record, sobject, same[0], key, soql, answer)
        return found, settled

    def _query(self, soql: str) -> tuple[list[dict[str, Any]], _Answer]:
        """Every row of the query, following nextRecordsUrl past Salesforce's batch of 2,000."""
        answer = self._call("GET", "query?q=" + quote(soql, safe=_QUERY_SAFE))
        body = answer.body if isinstance(answer.body, dict) else {}
        rows = list(body.get("records") or [])
        while not body.get("done", True) and body.get("nextRecordsUrl"):
            _, _, locator = str(body["nextRecordsUrl"]).partition("/query/")
            more = self._call("GET", f"query/{locator}")
            body = more.body if isinstance(more.body, dict) else {}
            rows += body.get("records") or []
        return rows, answer

    # --- collections: upsert on our key, update adopted records by Id ---

    def _save(self, sobject: str, records: list[PushRecord], fields: list[dict[str, Any]],
              found: dict[str, _Existing]) -> list[RecordResult]:
        """Upsert the records on our key, except the ones found by email: those are updated by
        their Id, with our key written onto them. Results in the records' order."""
        key = self.destination.upsert_property
        sent = [self._sobject(sobject, key, r.external_id, f) for r, f in zip(records, fields)]
        adopt = [i for i, r in enumerate(records) if r.external_id in found]
        create = [i for i, r in enumerate(records) if r.external_id not in found]
        updated = self._collection("composite/sobjects", [records[i] for i in adopt],
                                   [{**found[records[i].external_id].fields(records[i], sent[i]),
                                     "Id": found[records[i].external_id].id} for i in adopt])
        results = {i: found[records[i].external_id].adopted(result) for i, result in zip(adopt, updated)}
        upserted = self._collection(f"composite/sobjects/{sobject}/{key}", [records[i] for i in create],
                                    [sent[i] for i in create])
        results |= dict(zip(create, upserted))
        return [results[i] for i in range(len(records))]

    def _collection(self, path: str, records: list[PushRecord], sent: list[dict[str, Any]]) -> list[RecordResult]:
        if not records:
            return []
        try:
            answer = self._call("PATCH", path, json={"allOrNone": False, "records": sent})
        except CallFailed as failure:
            return [_failed(record, one, failure) for record, one in zip(records, sent)]
        got = answer.body if isinstance(answer.body, list) else []
        return [_classified(record, one, got[i] if i < len(got) else None, answer)
                for i, (record, one) in enumerate(zip(records, sent))]

    @staticmethod
    def _sobject(sobject: str, key: str, key_value: str, fields: dict[str, Any]) -> dict[str, Any]:
        # The key goes last so a field map can never send another value under it.
        return {"attributes": {"type": sobject}, **fields, key: key_value}

    # --- REST calls: token, one refresh on INVALID_SESSION_ID, errors as CallFailed ---

    def _call(self, method: str, path: str, api: str = "restful", **kwargs: Any) -> _Answer:
        """`api`: "restful" for paths below /services/data/vNN.N/, "oauth2" below /services/oauth2/."""
        started, self._last_status = time.monotonic(), None
        try:
            try:
                body = getattr(self._client(self._token()), api)(path, method=method, **kwargs)
            except SalesforceExpiredSession:
                # INVALID_SESSION_ID: the token expired or was revoked. One new token, one retry;
                # a second refusal is an auth failure.
                body = getattr(self._client(self._refresh()), api)(path, method=method, **kwargs)
        except SalesforceError as exc:
            raise _call_failed(exc, _ms_since(started)) from exc
        except requests.exceptions.JSONDecodeError as exc:  # an answer, but not Salesforce's JSON
            raise CallFailed(Outcome.TRANSIENT, "BAD_RESPONSE", f"The answer is not JSON: {exc}",
                             self._last_status, duration_ms=_ms_since(started)) from exc
        except requests.RequestException as exc:  # no answer: refused, reset, timed out
            raise CallFailed(Outcome.TRANSIENT, "NETWORK", f"{type(exc).__name__}: {exc}",
                             duration_ms=_ms_since(started)) from exc
        return _Answer(body, self._last_status, _ms_since(started))

    def _client(self, token: str) -> Salesforce:
        version = (self.destination.api_version or DEFAULT_API_VERSION).lstrip("vV")
        return Salesforce(instance_url=self._instance_url(), session_id=token, session=self.session,
                          version=version, object_pairs_hook=dict)

    def _instance_url(self) -> str:
        return self.destination.instance_url or self.destination.base_url

    def _remember_status(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # simple-salesforce returns parsed bodies only; the status is for the sync log, the
        # Date header (against the middle of the call) for the poller's clock offset.
        self._last_status = response.status_code
        self._last_clock_offset = clock_offset(response.headers.get("Date"),
                                               time.time() - response.elapsed.total_seconds() / 2)

    def _token(self) -> str:
        return self._guarded(self.tokens.token)

    def _refresh(self) -> str:
        return self._guarded(self.tokens.refresh)

    def _guarded(self, get: Callable[[], str]) -> str:
        try:
            token = get()
        except SecretUnavailable as exc:
            raise CallFailed(Outcome.AUTH, "NO_CREDENTIALS", str(exc)) from exc
        self._allow_plain_http_instance()
        return token

    def _allow_plain_http_instance(self) -> None:
        # A destination configured over plain HTTP (the built-in sandbox) gets its instance URL
        # with the token, after the session was built; never downgrade an https destination.
        if urlsplit(self.destination.base_url).scheme == "http":
            outbound.allow_plain_http(self.session, self.destination.instance_url)

    # --- OAuth (server to server) ---

    def _fetch_token(self) -> AccessToken:
        credentials = self.destination.credentials()
        if self.destination.auth_method == Destination.Auth.JWT_BEARER:
            form = self._jwt_form(credentials)
        else:
            form = _require(credentials, "client_id", "client_secret")
            form = {"grant_type": "client_credentials", **form}
        url = self.destination.base_url.rstrip("/") + "/services/oauth2/token"
        try:
            answer = outbound.request("POST", url, data=form, via=self.session)
        except outbound.OutboundError as exc:
            raise CallFailed(Outcome.TRANSIENT, "NETWORK", f"Token request failed: {exc}") from exc
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.ok and body.get("access_token"):
            # The identity URL ends in the user the token acts as: the author of our own writes.
            user_id = str(body.get("id") or "").rstrip("/").rpartition("/")[2]
            if user_id:
                cache.set(_user_cache_key(self.destination), user_id, USER_ID_CACHE_SECONDS)
            # Salesforce states no expiry (the org's session timeout applies): keep the token
            # until it is refused.
            return AccessToken(body["access_token"], None, body.get("instance_url", ""))
        outcome = Outcome.TRANSIENT if answer.status >= 500 or answer.status in (408, 429) else Outcome.AUTH
        message = body.get("error_description") or str(answer.body)[:500] or f"HTTP {answer.status}"
        raise CallFailed(outcome, str(body.get("error") or f"HTTP_{answer.status}"), f"Token refused: {message}",
                         answer.status, answer.body, duration_ms=answer.duration_ms)

    def _jwt_form(self, credentials: dict[str, str]) -> dict[str, str]:
        values = _require(credentials, "client_id", "username", "private_key")
        claims = {"iss": values["client_id"], "sub": values["username"], "aud": jwt_audience(self.destination.base_url),
                  "exp": int(time.time()) + 180}
        try:
            assertion = jwt.encode(claims, values["private_key"], algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise CallFailed(Outcome.AUTH, "INVALID_PRIVATE_KEY", f"The private key cannot sign: {exc}") from exc
        return {"grant_type": _JWT_GRANT, "assertion": assertion}

    # --- schema and connection checks (errors for a person) ---

    def _describe(self, sobject: str) -> dict[str, CrmField]:
        answer = self._for_person(lambda: self._call("GET", f"sobjects/{sobject}/describe"))
        fields = answer.body.get("fields", []) if isinstance(answer.body, dict) else []
        return {field["name"]: _crm_field(field) for field in fields if field.get("name")}

    def _for_person(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except CallFailed as failure:
            raise ConnectorError(f"Salesforce: {failure}") from failure


def jwt_audience(base_url: str) -> str:
    """Salesforce checks `aud` against its login server: test.salesforce.com for sandbox orgs,
    login.salesforce.com otherwise; any other host (the built-in sandbox) is its own."""
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "test.salesforce.com" or host.endswith(".sandbox.my.salesforce.com"):
        return "https://test.salesforce.com"
    if host == "salesforce.com" or host.endswith(".salesforce.com"):
        return "https://login.salesforce.com"
    return base_url.rstrip("/")


def _user_cache_key(destination: Destination) -> str:
    return f"crmsync:salesforce-user:{destination.pk}:{destination.base_url}"


def _poll_error(failure: CallFailed) -> PollError:
    """A poll's failed call: a refused token or session, or a 403 other than the API allocation
    (no API access, a missing permission), is an auth failure; 5xx, timeouts and the allocation
    may pass; any other refusal is the query's fault."""
    auth = failure.outcome == Outcome.AUTH or (failure.http_status == 403 and failure.outcome == Outcome.PERMANENT)
    return PollError(f"Salesforce: {failure}", retryable=failure.outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED),
                     auth=auth, retry_after=failure.retry_after)


def _require(credentials: dict[str, str], *names: str) -> dict[str, str]:
    missing = [name for name in names if not credentials.get(name)]
    if missing:
        raise CallFailed(Outcome.AUTH, "NO_CREDENTIALS", f"Credentials lack {', '.join(missing)}.")
    return {name: credentials[name] for name in names}


def _call_failed(exc: SalesforceError, duration_ms: int) -> CallFailed:
    """Salesforce's whole-call errors: a body `[{"message", "errorCode", "fields"}]`."""
    code, message = _error_of(exc.content)
    status = exc.status
    if status == 401:
        outcome = Outcome.AUTH
    elif code in _RECORD_RATE_LIMITED or status == 429:
        outcome = Outcome.RATE_LIMITED
    elif status >= 500 or status in (408, 423) or code in _RECORD_TRANSIENT:
        outcome = Outcome.TRANSIENT
    else:
        outcome = Outcome.PERMANENT
    return CallFailed(outcome, code or f"HTTP_{status}", message, status, exc.content,
                      _retry_after() if outcome == Outcome.RATE_LIMITED else None, duration_ms)


def _error_of(content: Any) -> tuple[str, str]:
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        return str(first.get("errorCode", "")), "; ".join(str(e.get("message", "")) for e in content if isinstance(e, dict))
    if isinstance(content, dict):
        return str(content.get("errorCode") or content.get("error") or ""), str(
            content.get("message") or content.get("error_description") or content)[:500]
    return "", (content.decode(errors="replace") if isinstance(content, bytes) else str(content))[:500]


def _retry_after() -> float:
    return float(settings.CRMSYNC.get("SALESFORCE_RETRY_AFTER_SECONDS", DEFAULT_RETRY_AFTER_SECONDS))


def _classified(record: PushRecord, sent: dict[str, Any], got: Any, answer: _Answer) -> RecordResult:
    common = {"request": sent, "http_status": answer.http_status, "duration_ms": answer.duration_ms}
    if not isinstance(got, dict):
        return RecordResult(record.lead, Outcome.PERMANENT, error_code="MISSING_RESULT",
                            error_message="Salesforce returned no result for this record.", **common)
    if got.get("success"):
        outcome = Outcome.CREATED if got.get("created") else Outcome.UPDATED
        return RecordResult(record.lead, outcome, crm_record_id=str(got.get("id") or ""), response=got, **common)
    errors = [e for e in got.get("errors") or [] if isinstance(e, dict)]
    code = str(errors[0].get("statusCode", "")) if errors else "UNKNOWN_ERROR"
    message = "; ".join(_record_message(e) for e in errors) or "Salesforce refused the record without a reason."
    if code in _RECORD_TRANSIENT:
        outcome, retry_after = Outcome.TRANSIENT, None
    elif code in _RECORD_RATE_LIMITED:
        outcome, retry_after = Outcome.RATE_LIMITED, _retry_after()
    else:
        outcome, retry_after = Outcome.PERMANENT, None
    return RecordResult(record.lead, outcome, error_code=code, error_message=message, retry_after=retry_after,
                        response=got, **common)


def _record_message(error: dict[str, Any]) -> str:
    message = str(error.get("message", ""))
    fields = error.get("fields") or []
    return f"{message} ({', '.join(map(str, fields))})" if fields and not all(str(f) in message for f in fields) else message


def _failed(record: PushRecord, sent: dict[str, Any], failure: CallFailed) -> RecordResult:
    body = failure.body
    response = body if isinstance(body, dict) else ({"errors": body} if isinstance(body, list) else {})
    return RecordResult(record.lead, failure.outcome, http_status=failure.http_status, error_code=failure.code,
                        error_message=failure.message, retry_after=failure.retry_after, request=sent,
                        response=response, duration_ms=failure.duration_ms)


def _lookup_chunks(records: list[PushRecord]) -> list[list[PushRecord]]:
    """The records in runs whose email lists keep each query's URL within QUERY_URL_BUDGET."""
    chunks: list[list[PushRecord]] = []
    room = 0
    for record in records:
        cost = len(quote(_soql_string(record.lookup_email.strip()), safe=_QUERY_SAFE)) + 1  # and a comma
        if cost > room:
            chunks.append([])
            room = QUERY_URL_BUDGET - _QUERY_FRAME
        chunks[-1].append(record)
        room -= cost
    return chunks


def _soql_string(value: str) -> str:
    """A SOQL string literal: backslashes and single quotes escaped with a backslash."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _belongs_to_other(record: PushRecord, sobject: str, row: dict[str, Any], key: str, soql: str,
                      answer: _Answer) -> RecordResult:
    return RecordResult(
        record.lead, Outcome.PERMANENT, http_status=answer.http_status, error_code="EMAIL_BELONGS_TO_OTHER_LEAD",
        error_message=f"Salesforce {sobject} {row.get('Id')} has this email but belongs to another lead "
                      f"({key} {row.get(key)}).",
        request={"query": soql}, response=row, duration_ms=answer.duration_ms)


def _domain(record: PushRecord, key: str) -> str:
    return str((record.company or {}).get(key) or "")


def _distinct_accounts(records: list[PushRecord], key: str) -> dict[str, dict[str, Any]]:
    """One Account per domain; fields of several records for one domain are merged in batch
    order (with changed-fields-only pushes, each may carry a different part)."""
    accounts: dict[str, dict[str, Any]] = {}
    for record in records:
        domain = _domain(record, key)
        if domain:
            accounts.setdefault(domain, {}).update({k: v for k, v in record.company.items() if k != key})
    return accounts


def _with_account_id(fields: dict[str, Any], account: RecordResult | None) -> dict[str, Any]:
    return {**fields, "AccountId": account.crm_record_id} if account is not None else dict(fields)


def _as_account_failure(record: PushRecord, account: RecordResult) -> RecordResult:
    """The Contact was not sent: its Account failed, so it shares that Account's outcome."""
    return RecordResult(
        record.lead, account.outcome, http_status=account.http_status, error_code=account.error_code,
        error_message=f"Account: {account.error_message}", retry_after=account.retry_after,
        request={"Account": account.request}, response={"Account": account.response},
        duration_ms=account.duration_ms)


def _with_account(result: RecordResult, account: RecordResult | None, record: PushRecord) -> RecordResult:
    if account is None:
        result.company_crm_id = record.company_crm_id
        return result
    result.company_crm_id = account.crm_record_id
    result.request = {"Account": account.request, "Contact": result.request}
    result.response = {"Account": account.response, "Contact": result.response}
    result.duration_ms += account.duration_ms
    return result


def _crm_field(field: dict[str, Any]) -> CrmField:
    picklist = field.get("type") in ("picklist", "multipicklist")
    options = tuple(str(v["value"]) for v in field.get("picklistValues") or [] if v.get("active", True)) if picklist else ()
    return CrmField(
        name=field["name"],
        type=str(field.get("type", "string")),
        label=str(field.get("label", "")),
        options=options,
        restricted=bool(field.get("restrictedPicklist")),
        unique=bool(field.get("unique") or field.get("externalId")),
        required=bool(field.get("createable") and not field.get("nillable") and not field.get("defaultedOnCreate")),
    )


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
