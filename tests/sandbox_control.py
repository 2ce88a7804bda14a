"""Drive the sandbox CRMs over HTTP from tests: what a person does in the CRM, the CRM's clock,
deletes and merges, signed HubSpot webhooks, and many changed records at once.

Every function takes `base_url`, the server's root (`live_server.url` or `stack.base_url`), and
talks to the sandbox exactly as a client would: HubSpot's and Salesforce's own APIs where they
have the operation (with `X-Sandbox-Actor: person:<name>` for a person's edit), the sandbox's
control API under /sandbox/_control/ where they do not (see sandbox/control.py). Each raises
`requests.HTTPError` when the sandbox refuses.
"""

from typing import Any

from django.conf import settings
import requests

TIMEOUT = 60  # seconds; bulk creates of thousands of records take a few
SALESFORCE_VERSION = "v62.0"
ACTOR = "X-Sandbox-Actor"


def _checked(answer: requests.Response) -> requests.Response:
    answer.raise_for_status()
    return answer


def _person(person: str | None) -> dict[str, str]:
    return {ACTOR: f"person:{person}"} if person else {}


# --- HubSpot ----------------------------------------------------------------------------------

def _hubspot(base_url: str, object_type: str) -> str:
    return f"{base_url}/sandbox/hubspot/crm/v3/objects/{object_type}"


def _hubspot_headers(person: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}", **_person(person)}


def hubspot_create(base_url: str, properties: dict[str, str], *, object_type: str = "contacts",
                   person: str | None = None) -> dict[str, Any]:
    """Create a record (by the integration, or by `person`); HubSpot's SimplePublicObject."""
    return _checked(requests.post(_hubspot(base_url, object_type), json={"properties": properties},
                                  headers=_hubspot_headers(person), timeout=TIMEOUT)).json()


def hubspot_person_edit(base_url: str, record_id: str, properties: dict[str, str], *, person: str = "ann",
                        object_type: str = "contacts") -> dict[str, Any]:
    """A person changes properties in HubSpot's UI: lastmodifieddate moves, the history records
    sourceType CRM_UI with sourceId `person`."""
    return _checked(requests.patch(f"{_hubspot(base_url, object_type)}/{record_id}", json={"properties": properties},
                                   headers=_hubspot_headers(person), timeout=TIMEOUT)).json()


def hubspot_read(base_url: str, record_id: str, *, properties: list[str] = (), history: list[str] = (),
                 object_type: str = "contacts", archived: bool = False) -> dict[str, Any]:
    """GET the record (a merged-away ID answers with its survivor)."""
    params = {"properties": ",".join(properties), "propertiesWithHistory": ",".join(history),
              "archived": str(archived).lower()}
    return _checked(requests.get(f"{_hubspot(base_url, object_type)}/{record_id}", params=params,
                                 headers=_hubspot_headers(), timeout=TIMEOUT)).json()


def hubspot_archive(base_url: str, record_id: str, *, person: str | None = "ann", object_type: str = "contacts") -> None:
    """Delete (archive) the record, as `person` would in HubSpot (None: the integration)."""
    _checked(requests.delete(f"{_hubspot(base_url, object_type)}/{record_id}", headers=_hubspot_headers(person),
                             timeout=TIMEOUT))


def hubspot_merge(base_url: str, primary_id: str, merged_id: str, *, person: str | None = "ann",
                  object_type: str = "contacts") -> dict[str, Any]:
    """Merge `merged_id` into `primary_id`; the survivor as HubSpot answers it."""
    body = {"primaryObjectId": str(primary_id), "objectIdToMerge": str(merged_id)}
    return _checked(requests.post(f"{_hubspot(base_url, object_type)}/merge", json=body,
                                  headers=_hubspot_headers(person), timeout=TIMEOUT)).json()


def hubspot_bulk_create(base_url: str, *, count: int | None = None, template: dict[str, str] | None = None,
                        records: list[dict[str, str]] | None = None, start: int = 1, object_type: str = "contacts",
                        person: str | None = None) -> list[str]:
    """Create many records in one call: `records`, or `count` copies of `template` with "{i}"
    replaced by start, start+1, ... Their modification times are 1 ms apart, ending now.
    Returns their IDs in that order."""
    body: dict[str, Any] = {"records": records} if records is not None else \
        {"count": count, "template": template or {}, "start": start}
    answer = requests.post(f"{base_url}/sandbox/_control/hubspot/{object_type}/bulk", json=body,
                           headers=_person(person), timeout=TIMEOUT)
    return _checked(answer).json()["ids"]


def hubspot_webhook_send(base_url: str, *, url: str, client_secret: str, events: list[dict[str, Any]],
                         timestamp_ms: int | None = None) -> dict[str, Any]:
    """Have the sandbox HubSpot POST `events` to `url`, signed v3 with `client_secret`
    (`timestamp_ms`: a stale or future X-HubSpot-Request-Timestamp). Returns
    {"delivered", "status", "body", "events"} as the sandbox saw the answer."""
    body = {"url": url, "client_secret": client_secret, "events": events}
    if timestamp_ms is not None:
        body["timestamp_ms"] = timestamp_ms
    return _checked(requests.post(f"{base_url}/sandbox/_control/hubspot/webhooks/send", json=body,
                                  timeout=TIMEOUT)).json()


def hubspot_webhook_subscribe(base_url: str, *, target_url: str, client_secret: str,
                              object_type: str = "contacts") -> dict[str, Any]:
    """From now on, person edits, deletions and merges of `object_type` are sent to `target_url`."""
    body = {"target_url": target_url, "client_secret": client_secret, "object_type": object_type}
    return _checked(requests.post(f"{base_url}/sandbox/_control/hubspot/webhooks/subscriptions", json=body,
                                  timeout=TIMEOUT)).json()


# --- Salesforce -------------------------------------------------------------------------------

def salesforce_token(base_url: str) -> str:
    """An access token of the integration user (client credentials)."""
    form = {"grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
            "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET}
    return _checked(requests.post(f"{base_url}/services/oauth2/token", data=form, timeout=TIMEOUT)).json()["access_token"]


def _salesforce(base_url: str, path: str) -> str:
    return f"{base_url}/services/data/{SALESFORCE_VERSION}/{path}"


def _salesforce_headers(base_url: str, person: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {salesforce_token(base_url)}", **_person(person)}


def salesforce_create(base_url: str, sobject: str, fields: dict[str, Any], *, person: str | None = None) -> str:
    """Create a record; its ID."""
    answer = requests.post(_salesforce(base_url, f"sobjects/{sobject}"), json=fields,
                           headers=_salesforce_headers(base_url, person), timeout=TIMEOUT)
    return _checked(answer).json()["id"]


def salesforce_person_edit(base_url: str, sobject: str, record_id: str, fields: dict[str, Any], *,
                           person: str = "ann") -> None:
    """A person changes fields: SystemModstamp moves, LastModifiedById becomes that person's user."""
    _checked(requests.patch(_salesforce(base_url, f"sobjects/{sobject}/{record_id}"), json=fields,
                            headers=_salesforce_headers(base_url, person), timeout=TIMEOUT))


def salesforce_delete(base_url: str, sobject: str, record_id: str, *, person: str | None = "ann") -> None:
    """Delete to the recycle bin: `queryAll` shows it with IsDeleted, `query` no more."""
    _checked(requests.delete(_salesforce(base_url, f"sobjects/{sobject}/{record_id}"),
                             headers=_salesforce_headers(base_url, person), timeout=TIMEOUT))


def salesforce_merge(base_url: str, master_id: str, merged_ids: list[str], *, sobject: str = "Lead",
                     person: str | None = "ann") -> dict[str, Any]:
    """Merge up to two records into the master: they are deleted with MasterRecordId set."""
    body = {"sobject": sobject, "master_id": master_id, "merged_ids": list(merged_ids)}
    return _checked(requests.post(f"{base_url}/sandbox/_control/salesforce/merge", json=body, headers=_person(person),
                                  timeout=TIMEOUT)).json()


def salesforce_query(base_url: str, soql: str, *, all_rows: bool = False) -> dict[str, Any]:
    """One answer of query (or queryAll) as the integration user."""
    answer = requests.get(_salesforce(base_url, "queryAll" if all_rows else "query"), params={"q": soql},
                          headers=_salesforce_headers(base_url, None), timeout=TIMEOUT)
    return _checked(answer).json()


# --- both -------------------------------------------------------------------------------------

def clock_offset_set(base_url: str, crm: str, seconds: int) -> dict[str, Any]:
    """Put the CRM's clock `seconds` ahead of real time (negative: behind): its stamps and its
    Date header follow."""
    return _checked(requests.put(f"{base_url}/sandbox/_control/clock/{crm}", json={"offset_seconds": seconds},
                                 timeout=TIMEOUT)).json()


def faults_set(base_url: str, crm: str, **knobs: float) -> dict[str, Any]:
    """Inject faults into the CRM's data calls, reads included (error_rate, rate_limit_rate,
    lost_reply_rate, timeout_rate, timeout_seconds, lock_rate, latency_ms, seed)."""
    return _checked(requests.put(f"{base_url}/sandbox/_control/faults/{crm}", json=knobs, timeout=TIMEOUT)).json()


def faults_reset(base_url: str, crm: str) -> None:
    _checked(requests.delete(f"{base_url}/sandbox/_control/faults/{crm}", timeout=TIMEOUT))


def sandbox_reset(base_url: str) -> None:
    """Every CRM's records, logs, faults, subscriptions and clock offsets go."""
    _checked(requests.post(f"{base_url}/sandbox/_control/reset", timeout=TIMEOUT))
