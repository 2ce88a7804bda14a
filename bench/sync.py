"""`make bench-sync`: CRM calls the reconciliation poller's reads make, against a one-call-per-record
baseline in the same run.

One run, on a fresh SQLite database: gunicorn serves the sandbox CRMs, and the bench drives the
connectors' read API (`changes()`, `deletions()`, `read()`) over real HTTP, as the poller does.
Calls are counted twice and must agree: the `calls` of each ChangePage the connector returns,
and the `calls` counter of the destination's session (every HTTP request it made).

  hubspot      1,000 contacts changed (made through the API), then one poll of contacts:
               search on lastmodifieddate, 200 per page
  salesforce   2,000 Leads changed, then one poll: SOQL through queryAll on SystemModstamp,
               2,000 rows per batch
  unchanged    a poll of every destination and object again from its watermark, nothing
               changed since (plus, on its own line, HubSpot's archived-list check)
  baseline     each changed record read by its ID, one call per record, as an integration
               without a change query does (HubSpot batch read of one ID, Salesforce a query
               of one Id)

Both polls start with a token already fetched (a first poll from "now" warms it up), so the
figures count data calls. The sandbox's rate limits are lifted for the run, except HubSpot's
five searches a second, which the connector paces itself.

Run from the repository root: .venv/bin/python -m bench.sync
Environment: BENCH_HUBSPOT_CHANGED (1000), BENCH_SALESFORCE_CHANGED (2000).
"""

from __future__ import annotations

from datetime import timedelta
import os
import sys
import time

import requests

from bench.harness import embedded_stack
from bench.intake import log

HUBSPOT_CHANGED = int(os.environ.get("BENCH_HUBSPOT_CHANGED", "1000"))
SALESFORCE_CHANGED = int(os.environ.get("BENCH_SALESFORCE_CHANGED", "2000"))
API_VERSION = "62.0"
# Goals (issue 14): HubSpot at 200 per page, Salesforce one query per 2,000, one call when unchanged.
GOALS = {"hubspot_poll_calls_per_1000_changed": 6, "salesforce_poll_calls_per_2000_changed": 1,
         "poll_calls_when_unchanged": 1}


def main() -> int:
    with embedded_stack("sync", _prepare) as stack:
        figures = _run(stack.base, stack.prepared)
    for name, value in figures.items():
        print(f"{name}: {value}", flush=True)
    missed = [name for name, goal in GOALS.items() if figures[name] > goal]
    if missed:
        log(f"goal missed: {', '.join(missed)}")
    return 1 if missed else 0


def _prepare(base: str) -> dict:
    """A HubSpot and a Salesforce destination on the sandbox, with lifted limits."""
    from django.conf import settings

    from delivery.models import Destination
    from sandbox.limits import settings_get
    from sandbox.models import SandboxSettings
    from sandbox.salesforce.schema import org_settings

    lifted = {"rate_limit_max": 1_000_000, "daily_limit": 100_000_000}
    settings_get(crm="hubspot")
    org_settings()
    SandboxSettings.objects.filter(crm__in=["hubspot", "salesforce"]).update(**lifted)
    hubspot = Destination(name="Sandbox HubSpot", kind=Destination.Kind.HUBSPOT, base_url=f"{base}/sandbox/hubspot",
                          object_model=Destination.ObjectModel.CONTACT_COMPANY)
    hubspot.set_token(settings.SANDBOX_HUBSPOT_TOKEN)
    salesforce = Destination(
        name="Sandbox Salesforce", kind=Destination.Kind.SALESFORCE, auth_method=Destination.Auth.CLIENT_CREDENTIALS,
        base_url=base, object_model=Destination.ObjectModel.LEAD, upsert_property="Crmsync_External_Id__c",
        company_upsert_property="Crmsync_Domain__c", api_version=API_VERSION)
    salesforce.set_credentials({"client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    for destination in (hubspot, salesforce):
        destination.rate_limit_requests, destination.rate_limit_window_seconds = 100_000, 10
        destination.save()
    return {"hubspot": hubspot, "salesforce": salesforce}


def _run(base: str, destinations: dict) -> dict[str, object]:
    from django.utils import timezone

    from delivery.connectors import connector_for

    hubspot = connector_for(destinations["hubspot"])
    salesforce = connector_for(destinations["salesforce"])
    hubspot_fields, salesforce_fields = ["email", "firstname", "lastname", "phone", "company"], \
        ["Email", "FirstName", "LastName", "Phone", "Company"]
    # A first poll from now: fetches Salesforce's token, so the figures below count data calls.
    for connector, fields in ((hubspot, hubspot_fields), (salesforce, salesforce_fields)):
        _poll(connector, "primary", timezone.now(), fields)

    started = timezone.now() - timedelta(seconds=1)
    hubspot_ids = _hubspot_create(base, HUBSPOT_CHANGED)
    hs = _poll(hubspot, "primary", started, hubspot_fields)
    _check_all_read("hubspot", hubspot_ids, hs)
    started = timezone.now() - timedelta(seconds=1)
    salesforce_ids = _salesforce_create(base, SALESFORCE_CHANGED)
    sf = _poll(salesforce, "primary", started, salesforce_fields)
    _check_all_read("salesforce", salesforce_ids, sf)

    unchanged = [_poll(hubspot, "primary", hs["watermark"], hubspot_fields),
                 _poll(hubspot, "company", timezone.now(), ["name", "domain"]),
                 _poll(salesforce, "primary", sf["watermark"], salesforce_fields)]
    archived_calls = _deletions(hubspot, timezone.now())
    baseline_hs = _baseline(hubspot, hubspot_ids, hubspot_fields)
    baseline_sf = _baseline(salesforce, salesforce_ids, salesforce_fields)

    per_hs, per_sf = 1000 / HUBSPOT_CHANGED, 2000 / SALESFORCE_CHANGED
    unchanged_calls = max(poll["calls"] for poll in unchanged)
    log(f"== unchanged: {[poll['calls'] for poll in unchanged]} calls (hubspot contacts, hubspot companies, "
        f"salesforce leads), {[poll['read'] for poll in unchanged]} records read again at the watermark")
    return {
        "hubspot_changed": HUBSPOT_CHANGED,
        "salesforce_changed": SALESFORCE_CHANGED,
        "hubspot_poll_calls_per_1000_changed": round(hs["calls"] * per_hs, 1),
        "salesforce_poll_calls_per_2000_changed": round(sf["calls"] * per_sf, 1),
        "poll_calls_when_unchanged": unchanged_calls,
        "hubspot_archived_check_calls_when_unchanged": archived_calls,
        "baseline_hubspot_calls_per_1000_changed": round(baseline_hs * per_hs, 1),
        "baseline_salesforce_calls_per_2000_changed": round(baseline_sf * per_sf, 1),
        "hubspot_calls_vs_baseline": round(hs["calls"] / baseline_hs, 4) if baseline_hs else 0,
        "salesforce_calls_vs_baseline": round(sf["calls"] / baseline_sf, 4) if baseline_sf else 0,
        "hubspot_poll_seconds": round(hs["seconds"], 2),
        "salesforce_poll_seconds": round(sf["seconds"], 2),
    }


def _poll(connector, object: str, since, fields: list[str]) -> dict:
    """One poll to the end of its cursor, as the poller runs it; calls counted by the pages
    and by the session, which must agree."""
    session_before = connector.session.calls
    calls, ids, cursor, watermark = 0, set(), "", since
    started = time.monotonic()
    while True:
        page = connector.changes(object=object, since=since, cursor=cursor, fields=fields)
        calls += page.calls
        ids |= {change.crm_id for change in page.changes}
        watermark = max(watermark, page.watermark) if page.watermark else watermark
        cursor = page.cursor
        if not cursor:
            break
    seconds = time.monotonic() - started
    session_calls = connector.session.calls - session_before
    if session_calls != calls:
        raise SystemExit(f"the pages count {calls} calls, the session {session_calls}")
    log(f"== poll {connector.destination.kind} {object}: {len(ids)} records, {calls} calls, {seconds:.1f} s")
    return {"calls": calls, "ids": ids, "read": len(ids), "watermark": watermark, "seconds": seconds}


def _deletions(connector, since) -> int:
    calls, cursor = 0, ""
    while True:
        page = connector.deletions(object="primary", since=since, cursor=cursor)
        calls += page.calls
        cursor = page.cursor
        if not cursor:
            return calls


def _baseline(connector, ids: list[str], fields: list[str]) -> int:
    before = connector.session.calls
    started = time.monotonic()
    for crm_id in ids:
        [change] = connector.read(object="primary", ids=[crm_id], fields=fields)
        if change.archived:
            raise SystemExit(f"baseline: {crm_id} not found")
    calls = connector.session.calls - before
    log(f"== baseline {connector.destination.kind}: {len(ids)} records read one by one, {calls} calls, "
        f"{time.monotonic() - started:.1f} s")
    return calls


def _check_all_read(name: str, made: list[str], poll: dict) -> None:
    missing = set(made) - poll["ids"]
    if missing:
        raise SystemExit(f"{name}: the poll missed {len(missing)} changed records, e.g. {sorted(missing)[:5]}")


def _hubspot_create(base: str, count: int) -> list[str]:
    from django.conf import settings

    url = f"{base}/sandbox/hubspot/crm/v3/objects/contacts/batch/create"
    headers = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}
    ids = []
    with requests.Session() as http:
        for start in range(0, count, 100):
            inputs = [{"properties": {"email": f"sync.{i}@bench.example.com", "firstname": "Bench", "lastname": f"N{i}"}}
                      for i in range(start, min(start + 100, count))]
            answer = http.post(url, json={"inputs": inputs}, headers=headers, timeout=60)
            if answer.status_code != 201:
                raise SystemExit(f"HubSpot batch create answered {answer.status_code}: {answer.text[:300]}")
            ids += [str(r["id"]) for r in answer.json()["results"]]
    return ids


def _salesforce_create(base: str, count: int) -> list[str]:
    from django.conf import settings

    with requests.Session() as http:
        token = http.post(f"{base}/services/oauth2/token", timeout=60, data={
            "grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
            "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET}).json()["access_token"]
        url = f"{base}/services/data/v{API_VERSION}/composite/sobjects/Lead/Crmsync_External_Id__c"
        ids = []
        for start in range(0, count, 200):
            records = [{"attributes": {"type": "Lead"}, "Crmsync_External_Id__c": f"bench-{i}", "LastName": f"N{i}",
                        "Company": "Bench Co", "Email": f"sync.{i}@bench.example.com"}
                       for i in range(start, min(start + 200, count))]
            answer = http.patch(url, json={"allOrNone": True, "records": records}, timeout=60,
                                headers={"Authorization": f"Bearer {token}"})
            results = answer.json() if answer.status_code == 200 else []
            if not results or not all(r.get("success") for r in results):
                raise SystemExit(f"Salesforce upsert answered {answer.status_code}: {answer.text[:300]}")
            ids += [r["id"] for r in results]
    return ids


if __name__ == "__main__":
    sys.exit(main())
