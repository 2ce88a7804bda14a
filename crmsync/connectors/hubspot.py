"""HubSpot contacts through batch upsert keyed on a unique property holding our external ID.

Email is not the key: HubSpot does not support partial upserts by email and recommends a
custom unique property (see CRM_CONTRACTS.md), and an external ID survives an email change.
"""

from typing import Any

from crmsync import outbound
from crmsync.connectors.base import Outcome, RecordResult
from crmsync.models import Destination, Lead
from crmsync.secrets import SecretUnavailable

# Canonical lead field -> HubSpot contact property.
PROPERTY_MAP = {
    "email": "email",
    "first_name": "firstname",
    "last_name": "lastname",
    "phone": "phone",
    "company": "company",
    "country": "country",
}

# Statuses worth retrying: the CRM is busy or broken, not refusing the data.
_TRANSIENT = {408, 423, 500, 502, 503, 504}


class HubSpotConnector:
    batch_size = 100  # HubSpot's limit for batch endpoints

    def __init__(self, destination: Destination) -> None:
        self.destination = destination
        self.url = destination.base_url.rstrip("/") + "/crm/v3/objects/contacts/batch/upsert"

    def upsert(self, leads: list[Lead]) -> list[RecordResult]:
        inputs = [self._input(lead) for lead in leads]
        try:
            headers = {"Authorization": f"Bearer {self.destination.get_token()}"}
        except SecretUnavailable as exc:
            return [self._failed(lead, i, Outcome.AUTH, None, "NO_CREDENTIALS", str(exc)) for lead, i in zip(leads, inputs)]
        try:
            response = outbound.request("POST", self.url, headers=headers, json={"inputs": inputs})
        except outbound.OutboundError as exc:
            return [self._failed(lead, i, Outcome.TRANSIENT, None, "NETWORK", str(exc)) for lead, i in zip(leads, inputs)]
        return self._results(leads, inputs, response)

    def _input(self, lead: Lead) -> dict[str, Any]:
        properties = {prop: getattr(lead, field) for field, prop in PROPERTY_MAP.items() if getattr(lead, field)}
        # HubSpot does not promise results in input order; the key in the properties lets us
        # match each result back to its lead.
        properties[self.destination.upsert_property] = lead.external_id
        return {"id": lead.external_id, "idProperty": self.destination.upsert_property, "properties": properties}

    def _results(self, leads: list[Lead], inputs: list[dict], response: outbound.Response) -> list[RecordResult]:
        if response.status in (200, 207) and isinstance(response.body, dict):
            return self._per_record(leads, inputs, response)
        outcome, retry_after = _classify(response)
        code, message = _error(response.body)
        return [self._failed(lead, i, outcome, response, code, message, retry_after) for lead, i in zip(leads, inputs)]

    def _per_record(self, leads: list[Lead], inputs: list[dict], response: outbound.Response) -> list[RecordResult]:
        by_key = {r.get("properties", {}).get(self.destination.upsert_property): r for r in response.body.get("results", [])}
        results = []
        for lead, sent in zip(leads, inputs):
            got = by_key.get(lead.external_id)
            if got is None:
                code, message = _record_error(response.body, lead.external_id)
                results.append(self._failed(lead, sent, Outcome.PERMANENT, response, code, message))
                continue
            outcome = Outcome.CREATED if got.get("new") else Outcome.UPDATED
            results.append(
                RecordResult(lead, outcome, str(got["id"]), response.status, request=sent, response=got,
                             duration_ms=response.duration_ms)
            )
        return results

    def _failed(self, lead: Lead, sent: dict, outcome: Outcome, response: outbound.Response | None,
                code: str, message: str, retry_after: float | None = None) -> RecordResult:
        return RecordResult(
            lead, outcome, http_status=response.status if response else None, error_code=code,
            error_message=message, retry_after=retry_after, request=sent,
            response=response.body if response and isinstance(response.body, dict) else {},
            duration_ms=response.duration_ms if response else 0,
        )


def _classify(response: outbound.Response) -> tuple[Outcome, float | None]:
    if response.status == 429:
        return Outcome.RATE_LIMITED, _retry_after(response)
    if response.status == 401:
        return Outcome.AUTH, None
    if response.status in _TRANSIENT or response.status >= 500:
        return Outcome.TRANSIENT, None
    return Outcome.PERMANENT, None


def _retry_after(response: outbound.Response) -> float:
    if "Retry-After" in response.headers:
        try:
            return float(response.headers["Retry-After"])
        except ValueError:
            pass
    body = response.body if isinstance(response.body, dict) else {}
    # DAILY means stop until tomorrow's reset; the rolling window is ten seconds.
    return 3600.0 if body.get("policyName") == "DAILY" else 10.0


def _error(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        return str(body.get("category", "")), str(body.get("message", ""))
    return "", str(body)[:500]


def _record_error(body: dict, external_id: str) -> tuple[str, str]:
    for error in body.get("errors", []):
        if external_id in str(error.get("context", "")) or external_id in str(error.get("message", "")):
            return str(error.get("category", "")), str(error.get("message", ""))
    return "MISSING_RESULT", "HubSpot returned no result for this record."
