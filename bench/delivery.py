"""`make bench-delivery`: leads per second end to end, and CRM calls per 1,000 new leads.

One run, on a fresh SQLite database with the ORM broker (the embedded default): gunicorn
serves the intake and the sandbox CRM, and a real `manage.py worker` (qcluster) maps and
pushes. Each phase posts 1,000 new leads to the demo web form over HTTP and waits until
every one of them is pushed; the sandbox's request log counts the CRM calls.

  hubspot      HubSpot destination, batch upserts of up to 100 (the product's default)
  baseline     the same HubSpot destination with batch_size=1: one call per lead, as a
               Zapier-style integration makes
  salesforce   Salesforce destination (Lead), sObject Collections upserts of up to 200,
               plus its OAuth token call
  unchanged    the 1,000 leads of the hubspot phase queued again without any change: the
               dispatcher must send nothing

The sandbox's own rate limits are lifted for the run, so the figures measure crmsync, not
HubSpot's 190 requests per 10 s (under which one call per lead would cap at 19 leads/s).

Run from the repository root: .venv/bin/python -m bench.delivery
Environment: BENCH_LEADS (1000), BENCH_CLIENT_THREADS (8).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
import sys
import time

import requests

from bench.harness import embedded_stack
from bench.intake import log

LEADS = int(os.environ.get("BENCH_LEADS", "1000"))
CLIENT_THREADS = int(os.environ.get("BENCH_CLIENT_THREADS", "8"))
SETTLE_TIMEOUT = 600


def main() -> int:
    with embedded_stack("delivery", _prepare, worker=True, Q_WORKERS="2") as stack:
        figures = _run(stack.base, stack.prepared, stack.tmp)
    for name, value in figures.items():
        print(f"{name}: {value}", flush=True)
    return 0 if figures["calls_for_unchanged_resend"] == 0 else 1


def _prepare(base: str) -> dict:
    """The demo form and HubSpot destination, a Salesforce destination, lifted limits."""
    from django.conf import settings

    from crmsync.demo import demo_load
    from delivery.fieldmap import fields_default_ensure
    from delivery.models import Destination
    from sandbox.models import SandboxSettings
    from sandbox.salesforce.schema import org_settings

    info = demo_load(sandbox_base_url=f"{base}/sandbox/hubspot")
    info.source.ip_limit_per_minute = info.source.source_limit_per_minute = 1_000_000
    info.source.save()
    lifted = {"rate_limit_max": 1_000_000, "daily_limit": 100_000_000}
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults=lifted)
    org_settings()
    SandboxSettings.objects.filter(crm="salesforce").update(**lifted)
    hubspot = info.destination
    salesforce = Destination.objects.create(
        name="Sandbox Salesforce", kind=Destination.Kind.SALESFORCE, auth_method=Destination.Auth.CLIENT_CREDENTIALS,
        base_url=base, object_model=Destination.ObjectModel.LEAD, upsert_property="Crmsync_External_Id__c",
        company_upsert_property="Crmsync_Domain__c", is_active=False)
    salesforce.set_credentials({"client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    salesforce.save()
    fields_default_ensure(destination=salesforce)
    for destination in (hubspot, salesforce):
        destination.rate_limit_requests, destination.rate_limit_window_seconds = 100_000, 10
        # The product's default batch wait (the demo shortens it for one-lead-at-a-time clicks).
        destination.batch_wait_seconds = Destination._meta.get_field("batch_wait_seconds").default
        destination.save()
    return {"hubspot": hubspot, "salesforce": salesforce}


def _run(base: str, destinations: dict, tmp: Path) -> dict[str, object]:
    from delivery.models import Destination

    hubspot, salesforce = destinations["hubspot"], destinations["salesforce"]
    Destination.objects.filter(pk=salesforce.pk).update(is_active=False)
    batched = _phase("hubspot", base, "hubspot")
    Destination.objects.filter(pk=hubspot.pk).update(batch_size=1)
    baseline = _phase("baseline", base, "hubspot")
    Destination.objects.filter(pk=hubspot.pk).update(batch_size=None, is_active=False)
    Destination.objects.filter(pk=salesforce.pk).update(is_active=True)
    sf = _phase("salesforce", base, "salesforce")
    Destination.objects.filter(pk=salesforce.pk).update(is_active=False)
    Destination.objects.filter(pk=hubspot.pk).update(is_active=True)
    unchanged_calls = _unchanged(hubspot, "hubspot")
    per_1000 = 1000 / LEADS
    return {
        "leads": LEADS,
        "hubspot_calls_per_1000": round(batched["calls"] * per_1000, 1),
        "salesforce_calls_per_1000": round(sf["calls"] * per_1000, 1),
        "baseline_calls_per_1000": round(baseline["calls"] * per_1000, 1),
        "calls_for_unchanged_resend": unchanged_calls,
        "leads_per_second": round(batched["rate"], 1),
        "salesforce_leads_per_second": round(sf["rate"], 1),
        "baseline_leads_per_second": round(baseline["rate"], 1),
        "leads_per_second_vs_baseline": round(batched["rate"] / baseline["rate"], 2) if baseline["rate"] else 0,
        "calls_vs_baseline": round(batched["calls"] / baseline["calls"], 3) if baseline["calls"] else 0,
    }


def _phase(name: str, base: str, crm: str) -> dict[str, float]:
    from sandbox.faults import request_log_count
    from sandbox.models import SandboxRequestLog

    calls_before = request_log_count(crm=crm)
    last_log = SandboxRequestLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
    emails = [f"{name}.{i}@bench{i % 50}.example.com" for i in range(LEADS)]
    started = time.monotonic()
    _post_all(base, emails)
    posted = time.monotonic()
    _wait_pushed(emails)
    elapsed = time.monotonic() - started
    calls = request_log_count(crm=crm) - calls_before
    rows = SandboxRequestLog.objects.filter(id__gt=last_log, crm=crm, records__gt=0).order_by("id")
    t0 = rows.first().started_at if rows else None
    sizes = [f"{(r.started_at - t0).total_seconds():.1f}s:{r.records}" for r in rows]
    log(f"== {name}: posted {LEADS} in {posted - started:.1f} s, all pushed after {elapsed:.1f} s, {calls} {crm} calls"
        f" (call start: records, first 12: {sizes[:12]})")
    return {"calls": calls, "rate": LEADS / elapsed}


def _post_all(base: str, emails: list[str]) -> None:
    url = f"{base}/api/v1/sources/demo-form/submissions"

    def post(chunk: list[str]) -> None:
        with requests.Session() as session:
            for email in chunk:
                answer = session.post(url, json={"email": email, "first_name": "Bench", "last_name": email.split("@")[0],
                                                 "company": "Bench Co", "country": "GB"}, timeout=60)
                if answer.status_code != 202:
                    raise SystemExit(f"intake answered {answer.status_code}: {answer.text[:300]}")

    chunks = [emails[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        list(pool.map(post, chunks))


def _wait_pushed(emails: list[str]) -> None:
    from delivery.models import PushJob

    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        done = PushJob.objects.filter(lead__email__in=emails, status=PushJob.Status.SUCCEEDED).values("lead").distinct().count()
        stuck = PushJob.objects.filter(lead__email__in=emails, status__in=[PushJob.Status.REVIEW, PushJob.Status.DEAD])
        if stuck.exists():
            raise SystemExit(f"pushes failed: {list(stuck.values_list('last_error', flat=True)[:3])}")
        if done == len(emails):
            return
        time.sleep(0.2)
    raise SystemExit(f"not every lead was pushed within {SETTLE_TIMEOUT} s")


def _unchanged(destination, crm: str) -> int:
    """Queue every lead of the hubspot phase again, unchanged; count the calls it makes."""
    from delivery.models import PushJob
    from delivery.services import push_jobs_enqueue
    from leads.models import Lead
    from sandbox.faults import request_log_count

    before = request_log_count(crm=crm)
    leads = list(Lead.objects.filter(email__startswith="hubspot."))
    jobs = [job.pk for lead in leads for job in push_jobs_enqueue(lead=lead)]
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while PushJob.objects.filter(pk__in=jobs, status=PushJob.Status.SUCCEEDED).count() < len(jobs):
        if time.monotonic() > deadline:
            raise SystemExit("the unchanged leads were not settled in time")
        time.sleep(0.2)
    noops = PushJob.objects.filter(pk__in=jobs, operation="noop").count()
    calls = request_log_count(crm=crm) - before
    log(f"== unchanged: {len(jobs)} jobs, {noops} settled as no-ops, {calls} calls")
    return calls


if __name__ == "__main__":
    sys.exit(main())
