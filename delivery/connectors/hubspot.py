"""HubSpot contacts (and companies) through batch upsert keyed on unique properties.

Email is not the key: HubSpot does not support partial upserts by email and recommends a
custom unique property (docs/wire-contracts.md), and our external ID survives an email change.
Companies are keyed the same way on a unique property holding their domain, then associated
to their contacts with the v4 associations batch API (re-creating an association is harmless).

A contact typed in by hand or imported has no key of ours, and HubSpot refuses a second contact
with its email. So before the first push of a lead we read contacts by email (batch read takes
`email` as idProperty) and update a found one by its ID, writing our key onto it: from then on
the upserts find it by the key.
"""

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

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
from delivery.connectors.hubspot_read import HubSpotReader
from delivery.models import Destination
from delivery.session import DestinationSession

# Statuses worth retrying: the CRM is busy or broken, not refusing the data.
_TRANSIENT = {408, 423, 500, 502, 503, 504}
CONTACT_TO_COMPANY = 279  # HUBSPOT_DEFINED association type "contact to company (primary)"


class _AuthFailed(Exception):
    def __init__(self, code: str, message: str, response: outbound.Response | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.response = code, message, response


class HubSpotConnector:
    max_batch = 100  # HubSpot's limit for batch endpoints

    def __init__(self, destination: Destination, session: DestinationSession) -> None:
        self.destination = destination
        self.session = session
        self.base = destination.base_url.rstrip("/")
        self.tokens = TokenProvider(destination, self._oauth_token)

    # --- pushing --------------------------------------------------------------------------

    def upsert(self, records: list[PushRecord]) -> list[RecordResult]:
        results: dict[str, RecordResult] = {}
        # Looked up first, so that a record refused for its email upserts no company either.
        lookups = [r for r in records if r.lookup_email]
        found = self._existing(lookups, results)
        unmatched = {r.external_id for r in lookups if r.external_id not in found and r.external_id not in results}
        pending = [r for r in records if r.external_id not in results]
        if self.destination.object_model == Destination.ObjectModel.CONTACT_COMPANY:
            pending = self._companies(pending, results)
        self._adopt([r for r in pending if r.external_id in found], found, results)
        self._contacts([r for r in pending if r.external_id not in found], results)
        if self.destination.object_model == Destination.ObjectModel.CONTACT_COMPANY:
            self._associate([r for r in pending if results[r.external_id].succeeded], results)
        for record in records:
            # A retry may skip the lookup when HubSpot had no contact with the email, whatever
            # became of the write; not when a found one could not be adopted (an upsert on our
            # key would be refused for its email).
            result = results[record.external_id]
            result.looked_up = record.external_id in unmatched or (record.external_id in found and result.succeeded)
        return [results[record.external_id] for record in records]

    def _existing(self, records: list[PushRecord], results: dict[str, RecordResult]) -> dict[str, dict]:
        """The contacts HubSpot already has with the records' lookup emails that we may adopt, by
        external ID. One whose key names another lead refuses its record (in results), as does
        a failed read."""
        if not records:
            return {}
        key = self.destination.upsert_property
        inputs = {r.external_id: {"id": r.lookup_email} for r in records}
        kept = sorted(set().union(*(r.keep_existing for r in records)) - {"email", key, "lifecyclestage"})
        answer = self._call(records, inputs, results, "POST", "/crm/v3/objects/contacts/batch/read",
                            {"idProperty": "email", "properties": ["email", key, "lifecyclestage", *kept],
                             "propertiesWithHistory": [], "inputs": list(inputs.values())})
        if answer is None:
            return {}
        # Emails not found come back in `errors` (207): those records are created as usual.
        by_email = {str(c.get("properties", {}).get("email") or "").lower(): c for c in answer.body.get("results", [])}
        found = {}
        for record in records:
            contact = by_email.get(record.lookup_email.strip().lower())
            if contact is None:
                continue
            holder = str(contact.get("properties", {}).get(key) or "")
            if holder and holder != record.external_id:
                results[record.external_id] = RecordResult(
                    record.lead, Outcome.PERMANENT, http_status=answer.status, error_code="EMAIL_BELONGS_TO_OTHER_LEAD",
                    error_message=f"HubSpot contact {contact['id']} has this email but belongs to another lead "
                                  f"({key} {holder}).",
                    request=inputs[record.external_id], response=contact, duration_ms=answer.duration_ms)
            else:
                found[record.external_id] = contact
        return found

    def _adopt(self, records: list[PushRecord], found: dict[str, dict], results: dict[str, RecordResult]) -> None:
        """Update the found contacts by ID with the records' fields and our key."""
        if not records:
            return
        key = self.destination.upsert_property
        inputs = {r.external_id: {"id": str(found[r.external_id]["id"]),
                                  "properties": {**_strings(_unkept(r, found[r.external_id], key)), key: r.external_id}}
                  for r in records}
        answer = self._call(records, inputs, results, "POST", "/crm/v3/objects/contacts/batch/update",
                            {"inputs": list(inputs.values())})
        if answer is None:
            return
        by_id = {str(r.get("id")): r for r in answer.body.get("results", [])}
        for record in records:
            contact_id = inputs[record.external_id]["id"]
            got = by_id.get(contact_id)
            if got is None:
                code, message = _record_error(answer.body, contact_id, exact=True)
                # Deleted since the read: the next attempt looks again and creates it.
                outcome = Outcome.TRANSIENT if code == "OBJECT_NOT_FOUND" else Outcome.PERMANENT
                results[record.external_id] = _result(record, outcome, inputs, answer, code, message)
                continue
            existing = found[record.external_id].get("properties", {})
            ours = " (it already carried this lead's key)" if existing.get(key) else ""
            results[record.external_id] = RecordResult(
                record.lead, Outcome.UPDATED, contact_id, _company_id(results, record), answer.status,
                request=inputs[record.external_id], response=got, duration_ms=answer.duration_ms,
                adopted=f"HubSpot contact {contact_id} found by email{ours}",
                crm_lifecycle=str(existing.get("lifecyclestage") or "").lower())

    def _contacts(self, records: list[PushRecord], results: dict[str, RecordResult]) -> None:
        if not records:
            return
        key = self.destination.upsert_property
        inputs = {r.external_id: {"id": r.external_id, "idProperty": key,
                                  "properties": {**_strings(r.fields), key: r.external_id}} for r in records}
        answer = self._call(records, inputs, results, "POST", "/crm/v3/objects/contacts/batch/upsert",
                            {"inputs": list(inputs.values())})
        if answer is None:
            return
        by_key = {str(r.get("properties", {}).get(key)): r for r in answer.body.get("results", [])}
        for record in records:
            got = by_key.get(record.external_id)
            if got is None:
                code, message = _record_error(answer.body, record.external_id)
                results[record.external_id] = _result(record, Outcome.PERMANENT, inputs, answer, code, message)
                continue
            outcome = Outcome.CREATED if got.get("new") else Outcome.UPDATED
            results[record.external_id] = RecordResult(
                record.lead, outcome, str(got["id"]), _company_id(results, record), answer.status,
                request=inputs[record.external_id], response=got, duration_ms=answer.duration_ms)

    def _companies(self, records: list[PushRecord], results: dict[str, RecordResult]) -> list[PushRecord]:
        """Upsert each distinct company of the batch; returns the records whose company is in
        place (or that have none). A record whose company failed takes its outcome."""
        key = self.destination.company_upsert_property
        with_company = [r for r in records if r.company and r.company.get(key)]
        domains: dict[str, dict] = {}
        for record in with_company:  # one company per domain; its records' fields merged in batch order
            domains.setdefault(str(record.company[key]), {}).update(record.company)
        if not domains:
            return records
        inputs = {d: {"id": d, "idProperty": key, "properties": _strings(c)} for d, c in domains.items()}
        company_results: dict[str, RecordResult] = {}
        holders = [_DomainRecord(r, str(r.company[key])) for r in with_company]
        answer = self._call(holders, {h.domain: inputs[h.domain] for h in holders}, company_results, "POST",
                            "/crm/v3/objects/companies/batch/upsert", {"inputs": list(inputs.values())}, key_of="domain")
        ids: dict[str, str] = {}
        if answer is not None:
            ids = {str(r.get("properties", {}).get(key)): str(r["id"]) for r in answer.body.get("results", [])}
        ready = []
        for record in records:
            domain = str(record.company.get(key)) if record.company and record.company.get(key) else ""
            if not domain:
                ready.append(record)
            elif domain in ids:
                results[record.external_id] = RecordResult(record.lead, Outcome.UPDATED, company_crm_id=ids[domain])
                ready.append(record)
            else:
                failed = company_results.get(domain)
                if failed is None:
                    code, message = _record_error(answer.body if answer else {}, domain)
                    failed = RecordResult(record.lead, Outcome.PERMANENT, error_code=code, error_message=message)
                results[record.external_id] = RecordResult(
                    record.lead, failed.outcome, http_status=failed.http_status, error_code=failed.error_code,
                    error_message=f"company {domain}: {failed.error_message}", retry_after=failed.retry_after,
                    request={"company": inputs[domain]}, response=failed.response, duration_ms=failed.duration_ms)
        return ready

    def _associate(self, records: list[PushRecord], results: dict[str, RecordResult]) -> None:
        pairs = [(r, results[r.external_id]) for r in records if results[r.external_id].company_crm_id]
        # Known pairs were associated by an earlier push.
        pairs = [(r, res) for r, res in pairs
                 if not (r.crm_record_id == res.crm_record_id and r.company_crm_id == res.company_crm_id)]
        if not pairs:
            return
        body = {"inputs": [{"from": {"id": res.crm_record_id}, "to": {"id": res.company_crm_id},
                            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CONTACT_TO_COMPANY}]}
                           for _, res in pairs]}
        failures: dict[str, RecordResult] = {}
        records_only = [r for r, _ in pairs]
        answer = self._call(records_only, {r.external_id: {} for r in records_only}, failures, "POST",
                            "/crm/v4/associations/contact/company/batch/create", body)
        for record, result in pairs:
            failed = failures.get(record.external_id)
            if failed is not None:
                # The contact is written; only the association must be retried. Retrying the
                # whole record is safe (upserts), so report the association's outcome.
                failed.error_message = f"association to company: {failed.error_message}"
                results[record.external_id] = failed
            elif answer is not None and answer.status not in (200, 201):
                code, message = _error(answer.body)
                results[record.external_id] = _result(record, Outcome.TRANSIENT, {}, answer, code or "ASSOCIATION",
                                                      f"association to company: {message}")

    def _call(self, records: list, inputs: dict[str, dict], results: dict[str, RecordResult], method: str,
              path: str, body: dict, key_of: str = "external_id") -> outbound.Response | None:
        """One call for a batch; on a whole-call failure every record gets the outcome and
        None is returned."""
        def fail_all(outcome: Outcome, answer: outbound.Response | None, code: str, message: str,
                     retry_after: float | None = None) -> None:
            for record in records:
                k = getattr(record, key_of)
                results[k] = _result(record, outcome, inputs, answer, code, message, retry_after, key=k)

        try:
            answer = self._authorized(method, path, body)
        except _AuthFailed as exc:
            fail_all(Outcome.AUTH, exc.response, exc.code, exc.message)
            return None
        except outbound.OutboundError as exc:
            fail_all(Outcome.TRANSIENT, None, "NETWORK", str(exc))
            return None
        if answer.status in (200, 201, 207) and isinstance(answer.body, dict):
            return answer
        outcome, retry_after = _classify(answer)
        code, message = _error(answer.body)
        fail_all(outcome, answer, code, message, retry_after)
        return None

    def _authorized(self, method: str, path: str, body: Any = None) -> outbound.Response:
        """Call with the current token; on 401 get a new token once and call again."""
        try:
            token = self._token()
            answer = outbound.request(method, self.base + path, headers=_bearer(token), json=body, via=self.session)
            if answer.status == 401 and self.destination.auth_method == Destination.Auth.OAUTH:
                token = self.tokens.refresh()
                answer = outbound.request(method, self.base + path, headers=_bearer(token), json=body, via=self.session)
        except SecretUnavailable as exc:
            raise _AuthFailed("NO_CREDENTIALS", str(exc)) from exc
        if answer.status == 401:
            code, message = _error(answer.body)
            raise _AuthFailed(code or "UNAUTHORIZED", message, answer)
        return answer

    def _token(self) -> str:
        if self.destination.auth_method == Destination.Auth.OAUTH:
            return self.tokens.token()
        token = self.destination.get_token()
        if not token:
            raise SecretUnavailable("No HubSpot token is configured.")
        return token

    def _oauth_token(self) -> AccessToken:
        credentials = self.destination.credentials()
        missing = [k for k in ("client_id", "client_secret", "refresh_token") if not credentials.get(k)]
        if missing:
            raise SecretUnavailable(f"OAuth credentials lack {', '.join(missing)}.")
        answer = outbound.request("POST", self.base + "/oauth/v3/token", via=self.session, data={
            "grant_type": "refresh_token", "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"], "refresh_token": credentials["refresh_token"]})
        if answer.status != 200 or not isinstance(answer.body, dict) or "access_token" not in answer.body:
            code, message = _error(answer.body)
            raise _AuthFailed(code or "BAD_REFRESH_TOKEN", f"token refresh refused: {message}", answer)
        expires_in = int(answer.body.get("expires_in") or 1800)
        return AccessToken(answer.body["access_token"], timezone.now() + timedelta(seconds=expires_in))

    # --- reading changes back (hubspot_read.py) --------------------------------------------

    def changes(self, *, object: str, since: datetime | None, cursor: str, fields: list[str]) -> ChangePage:
        return self._reader().changes(object=object, since=since, cursor=cursor, fields=fields)

    def read(self, *, object: str, ids: list[str], fields: list[str], history: bool = False) -> list[CrmChange]:
        return self._reader().read(object=object, ids=ids, fields=fields, history=history)

    def deletions(self, *, object: str, since: datetime | None, cursor: str) -> ChangePage:
        return self._reader().deletions(object=object, since=since, cursor=cursor)

    def _reader(self) -> HubSpotReader:
        keys = {"primary": self.destination.upsert_property, "company": self.destination.company_upsert_property}
        return HubSpotReader(self._read_call, calls=lambda: self.session.calls, pace_key=f"{self.destination.pk}:{self.base}",
                             keys=keys)

    def _read_call(self, method: str, path: str, body: Any = None) -> outbound.Response:
        """One read for the poller: its answer (200, or 207 for a batch read with missing IDs),
        or a PollError saying whether trying again may work."""
        try:
            answer = self._authorized(method, path, body)
        except _AuthFailed as exc:
            raise PollError(f"HubSpot refused the credentials: {exc.message}", retryable=False, auth=True) from exc
        except outbound.OutboundError as exc:
            raise PollError(f"HubSpot could not be reached: {exc}") from exc
        if answer.status in (200, 207):
            return answer
        outcome, retry_after = _classify(answer)
        code, message = _error(answer.body)
        raise PollError(f"HubSpot answered {answer.status} {code}: {message}".replace("  ", " "),
                        retryable=outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED), auth=outcome == Outcome.AUTH,
                        retry_after=retry_after)

    # --- setup ----------------------------------------------------------------------------

    def test_connection(self) -> str:
        answer = self._setup_call("GET", "/crm/v3/objects/contacts?limit=1")
        daily = answer.headers.get("X-HubSpot-RateLimit-Daily-Remaining")
        left = f"; {int(daily):,} requests left today" if daily and daily.isdigit() else ""
        return f"Connected to HubSpot at {self.base}: token accepted{left}."

    def schema(self) -> CrmSchema:
        company = self.destination.object_model == Destination.ObjectModel.CONTACT_COMPANY
        return CrmSchema(primary=self._properties("contacts"), company=self._properties("companies") if company else {})

    def create_fields(self, fields: list[CrmField], *, company: bool = False) -> list[str]:
        object_type, group = ("companies", "companyinformation") if company else ("contacts", "contactinformation")
        created = []
        for spec in fields:
            self._setup_call("POST", f"/crm/v3/properties/{object_type}", {
                "name": spec.name, "label": spec.label or spec.name.replace("_", " ").capitalize(),
                "type": "string", "fieldType": "text", "groupName": group, "hasUniqueValue": spec.unique,
                "description": "Created by crmsync's preflight."})
            created.append(spec.name)
        return created

    def _properties(self, object_type: str) -> dict[str, CrmField]:
        answer = self._setup_call("GET", f"/crm/v3/properties/{object_type}")
        fields = {}
        for prop in answer.body.get("results", []):
            options = tuple(str(o.get("value")) for o in prop.get("options") or [] if not o.get("hidden"))
            enumeration = prop.get("type") == "enumeration"
            fields[prop["name"]] = CrmField(
                name=prop["name"], type=prop.get("type", "string"), label=prop.get("label", ""), options=options,
                restricted=enumeration, unique=bool(prop.get("hasUniqueValue")))
        return fields

    def _setup_call(self, method: str, path: str, body: Any = None) -> outbound.Response:
        try:
            answer = self._authorized(method, path, body)
        except _AuthFailed as exc:
            raise ConnectorError(f"HubSpot refused the credentials: {exc.message}") from exc
        except outbound.OutboundError as exc:
            raise ConnectorError(f"HubSpot could not be reached: {exc}") from exc
        if not 200 <= answer.status < 300:
            code, message = _error(answer.body)
            raise ConnectorError(f"HubSpot answered {answer.status} {code}: {message}")
        return answer


class _DomainRecord:
    """A record seen from its company's side, so a company failure is reported per domain."""

    def __init__(self, record: PushRecord, domain: str) -> None:
        self.lead, self.domain = record.lead, domain


def _company_id(results: dict[str, RecordResult], record: PushRecord) -> str:
    """The company the record's company upsert gave it, if any."""
    earlier = results.get(record.external_id)
    return earlier.company_crm_id if earlier else ""


def _unkept(record: PushRecord, contact: dict, key: str) -> dict[str, Any]:
    """The fields to write onto an adopted contact: not those HubSpot already decided (owner,
    lifecycle stage), unless the contact is ours already."""
    existing = contact.get("properties", {})
    if existing.get(key) == record.external_id:
        return record.fields
    return {k: v for k, v in record.fields.items() if not (k in record.keep_existing and existing.get(k))}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _strings(fields: dict[str, Any]) -> dict[str, str]:
    """HubSpot stores every property value as a string; None clears a property."""
    return {k: ("" if v is None else ("true" if v is True else "false" if v is False else str(v))) for k, v in fields.items()}


def _result(record: Any, outcome: Outcome, inputs: dict[str, dict], answer: outbound.Response | None, code: str,
            message: str, retry_after: float | None = None, key: str | None = None) -> RecordResult:
    k = key if key is not None else record.external_id
    return RecordResult(
        record.lead, outcome, http_status=answer.status if answer else None, error_code=code,
        error_message=message, retry_after=retry_after, request=inputs.get(k, {}),
        response=answer.body if answer and isinstance(answer.body, dict) else {},
        duration_ms=answer.duration_ms if answer else 0)


def _classify(response: outbound.Response) -> tuple[Outcome, float | None]:
    if response.status == 429:
        return Outcome.RATE_LIMITED, _retry_after(response)
    if response.status in (401, 403):
        return Outcome.AUTH, None
    if response.status in _TRANSIENT or response.status >= 500:
        return Outcome.TRANSIENT, 2.0 if response.status == 423 else None  # HubSpot: wait >= 2 s on 423
    return Outcome.PERMANENT, None


def _retry_after(response: outbound.Response) -> float:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        pass
    body = response.body if isinstance(response.body, dict) else {}
    # DAILY means stop until tomorrow's reset; the rolling window is ten seconds.
    return 3600.0 if body.get("policyName") == "DAILY" else 10.0


def _error(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        return str(body.get("category") or body.get("status") or ""), str(body.get("message", ""))
    return "", str(body)[:500]


def _record_error(body: dict, key: str, *, exact: bool = False) -> tuple[str, str]:
    """The batch error about this key. `exact` matches whole values of the error's context only:
    a record ID like "12" must not match "123"."""
    for error in body.get("errors", []):
        context = error.get("context") or {}
        if exact:
            hit = any(key in map(str, values) for values in context.values() if isinstance(values, list))
        else:
            hit = key in str(context) or key in str(error.get("message", ""))
        if hit:
            return str(error.get("category", "")), str(error.get("message", ""))
    return "MISSING_RESULT", "HubSpot returned no result for this record."
