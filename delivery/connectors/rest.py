"""Any REST/JSON endpoint: one request per lead, with a body built from the destination's
template, an Idempotency-Key so the receiver can drop our retries, and an optional HMAC
signature of the exact bytes sent.
"""

from email.utils import parsedate_to_datetime
import hashlib
import hmac
import json
import re
import time
from typing import Any

from requests.structures import CaseInsensitiveDict

from core import outbound
from core.secrets import SecretUnavailable
from delivery.connectors.base import ConnectorError, CrmField, CrmSchema, Outcome, PushRecord, RecordResult
from delivery.models import Destination
from delivery.session import DestinationSession

# A string value that is exactly one placeholder takes the field's value with its JSON type.
_WHOLE = re.compile(r"^\{\{\s*([\w.\-]+)\s*\}\}$")
# Placeholders inside longer strings are replaced by the value as text.
_INNER = re.compile(r"\{\{\s*([\w.\-]+)\s*\}\}")
_TRANSIENT = {408, 423}
_DEFAULT_RETRY_AFTER = 10.0
_MESSAGE_LIMIT = 500


class TemplateError(ValueError):
    """The destination's body template is not a JSON document."""


class RestConnector:
    max_batch = 1  # one request per record: a generic endpoint has no batch contract

    def __init__(self, destination: Destination, session: DestinationSession) -> None:
        self.destination = destination
        self.session = session

    def upsert(self, records: list[PushRecord]) -> list[RecordResult]:
        return [self._push(record) for record in records]

    def test_connection(self) -> str:
        try:
            headers = self._auth_headers()
        except SecretUnavailable as exc:
            raise ConnectorError(f"Credentials unavailable: {exc}") from exc
        url = self.destination.base_url
        try:
            answer = outbound.request("OPTIONS", url, headers=headers, via=self.session)
        except outbound.OutboundError as exc:
            raise ConnectorError(f"{url} is not reachable: {exc}") from exc
        if answer.status in (401, 403):
            raise ConnectorError(f"{url} refused our credentials (HTTP {answer.status}).")
        if answer.status >= 500:
            raise ConnectorError(f"{url} answered HTTP {answer.status}: {_message(answer.body)}")
        return f"Reachable: {url} answered OPTIONS with HTTP {answer.status}"

    def schema(self) -> CrmSchema:
        return CrmSchema(primary={})  # free-form JSON: nothing to check before a push

    def create_fields(self, fields: list[CrmField], *, company: bool = False) -> list[str]:
        raise NotImplementedError("A REST endpoint has no fields to create; edit the body template instead")

    # --- one record ---

    def _push(self, record: PushRecord) -> RecordResult:
        try:
            body = render(self.destination.body_template, record)
        except TemplateError as exc:
            return RecordResult(record.lead, Outcome.PERMANENT, error_code="INVALID_TEMPLATE", error_message=str(exc))
        sent = body if isinstance(body, dict) else {"body": body}
        raw = encode(body)
        try:
            headers = self._headers(record, raw)
        except SecretUnavailable as exc:
            return RecordResult(record.lead, Outcome.AUTH, error_code="NO_CREDENTIALS", error_message=str(exc),
                                request=sent)
        try:
            answer = outbound.request(self.destination.http_method, self.destination.base_url,
                                      headers=dict(headers), data=raw, via=self.session)
        except outbound.OutboundError as exc:
            return RecordResult(record.lead, Outcome.TRANSIENT, error_code="NETWORK", error_message=str(exc),
                                request=sent)
        return _result(record, sent, answer)

    def _headers(self, record: PushRecord, raw: bytes) -> CaseInsensitiveDict:
        headers = CaseInsensitiveDict({str(k): str(v) for k, v in (self.destination.headers or {}).items()})
        headers.setdefault("Content-Type", "application/json")
        headers.update(self._auth_headers())
        # Same record, same bytes, same key: a receiver can recognise our retries.
        headers["Idempotency-Key"] = f"{record.external_id}:{hashlib.sha256(raw).hexdigest()}"
        if self.destination.signature_header:
            secret = self._credential("signing_secret")
            digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
            headers[self.destination.signature_header] = f"sha256={digest}"
        return headers

    def _auth_headers(self) -> dict[str, str]:
        if self.destination.auth_method == Destination.Auth.BEARER:
            return {"Authorization": f"Bearer {self._credential('token')}"}
        return {}

    def _credential(self, name: str) -> str:
        value = self.destination.credentials().get(name, "")
        if not value:
            raise SecretUnavailable(f"The destination's credentials have no {name}.")
        return value


def render(template: str, record: PushRecord) -> Any:
    """The body for a record: the template with its placeholders filled, or, without a
    template, the external ID and the mapped fields."""
    values = {**record.fields, "external_id": record.external_id}
    if not template.strip():
        return {"external_id": record.external_id, **values}
    try:
        document = json.loads(template)
    except ValueError as exc:
        raise TemplateError(f"The body template is not valid JSON: {exc}") from exc
    return _fill(document, values)


def _fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, values) for value in node]
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            return values.get(whole[1])  # unknown placeholder: null
        return _INNER.sub(lambda m: _text(values.get(m[1])), node)
    return node


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def encode(body: Any) -> bytes:
    """The exact bytes sent, hashed and signed: compact, key order as built."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _result(record: PushRecord, sent: dict[str, Any], answer: outbound.Response) -> RecordResult:
    common = {"request": sent, "http_status": answer.status, "duration_ms": answer.duration_ms,
              "response": answer.body if isinstance(answer.body, dict) else {"body": _truncate(answer.body)}}
    if answer.ok:
        got = answer.body.get("id") if isinstance(answer.body, dict) else None
        crm_id = str(got) if got not in (None, "") else record.external_id
        outcome = Outcome.CREATED if answer.status == 201 else Outcome.UPDATED
        return RecordResult(record.lead, outcome, crm_record_id=crm_id, **common)
    code, message = _code(answer), _message(answer.body)
    if answer.status == 429:
        return RecordResult(record.lead, Outcome.RATE_LIMITED, error_code=code, error_message=message,
                            retry_after=retry_after(answer.headers) or _DEFAULT_RETRY_AFTER, **common)
    if answer.status in (401, 403):
        return RecordResult(record.lead, Outcome.AUTH, error_code=code, error_message=message, **common)
    if answer.status in _TRANSIENT or answer.status >= 500:
        return RecordResult(record.lead, Outcome.TRANSIENT, error_code=code, error_message=message,
                            retry_after=retry_after(answer.headers), **common)
    return RecordResult(record.lead, Outcome.PERMANENT, error_code=code, error_message=message, **common)


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
