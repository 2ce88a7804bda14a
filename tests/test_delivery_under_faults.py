"""1,000 leads through a real qcluster to the sandbox HubSpot while it fails on purpose:
30% transient errors, 10% 429s and 5% "applied but the reply was lost". Every lead must end up
in the CRM exactly once, the configured rate must hold in every window, and every job must be
accounted for."""

from collections import Counter

from django.conf import settings
from django.utils import timezone
import pytest
import requests

from delivery.models import PushJob
from leads.models import Lead
from sandbox.faults import faults_reset, faults_set, max_requests_in_any_window, request_log_count
from tests.factories import hubspot_destination
from tests.stack import wait_for

pytestmark = pytest.mark.e2e

LEADS = 1000
RATE = 4  # requests per second, across both worker processes of the cluster
SETTLED = (PushJob.Status.SUCCEEDED, PushJob.Status.DEAD, PushJob.Status.REVIEW)


@pytest.fixture(autouse=True)
def show_process_logs_on_failure(request, stack):
    yield
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(stack.logs())


def crm_external_ids(stack) -> list[str]:
    """The upsert key of every contact the sandbox lists through its HubSpot API."""
    headers = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}
    ids, after = [], None
    while True:
        params = {"limit": 100, "properties": "crmsync_external_id", **({"after": after} if after else {})}
        page = requests.get(f"{stack.sandbox_url}/crm/v3/objects/contacts", params=params, headers=headers, timeout=30).json()
        ids += [c["properties"].get("crmsync_external_id") for c in page["results"]]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return ids


def test_a_thousand_leads_reach_a_failing_crm_exactly_once_at_the_configured_pace(stack):
    # A new lead's first attempt makes two calls (the lookup by email, then the write), each
    # failing about a third of the time here: 16 attempts instead of 8 keep dead letters out of a run
    # whose point is exactly-once delivery and pace, not the retry budget.
    stack.env.update(CRMSYNC_PUSH_BACKOFF_BASE_SECONDS="0.5", CRMSYNC_PUSH_BACKOFF_CAP_SECONDS="2",
                     CRMSYNC_PUSH_LEASE_SECONDS="60", CRMSYNC_PUSH_MAX_ATTEMPTS="16", Q_WORKERS="2")
    stack.start_web()
    destination = hubspot_destination(base_url=stack.sandbox_url, rate_limit_requests=RATE, rate_limit_window_seconds=1,
                                      batch_size=50)
    faults_set(crm="hubspot", error_rate=0.30, rate_limit_rate=0.10, lost_reply_rate=0.05, seed=36)
    leads = Lead.objects.bulk_create(Lead(email=f"person{i}@example.org", first_name=f"P{i}", last_name="Person")
                                     for i in range(LEADS))
    now = timezone.now()
    PushJob.objects.bulk_create(PushJob(lead=lead, destination=destination, next_attempt_at=now) for lead in leads)

    stack.start_worker()
    wait_for(lambda: PushJob.objects.filter(status__in=SETTLED).count() == LEADS, timeout=420,
             what="every push job to settle")

    # every job is accounted for
    statuses = Counter(PushJob.objects.values_list("status", flat=True))
    assert statuses[PushJob.Status.SUCCEEDED] + statuses[PushJob.Status.DEAD] + statuses[PushJob.Status.REVIEW] == LEADS
    assert statuses[PushJob.Status.SUCCEEDED] == LEADS, statuses
    # the CRM was never called faster than configured, in any one-second window
    assert max_requests_in_any_window(crm="hubspot", window_ms=1000) <= RATE
    calls = request_log_count(crm="hubspot")
    # every lead is in the CRM exactly once, counted by its external ID (asked without faults)
    faults_reset(crm="hubspot")
    in_crm = Counter(crm_external_ids(stack))
    assert sorted(in_crm) == sorted(Lead.objects.values_list("external_id", flat=True))
    assert set(in_crm.values()) == {1}
    # the CRM really failed, in every way asked for...
    for fault in ("error", "rate_limit", "lost_reply"):
        assert request_log_count(crm="hubspot", fault=fault) > 0, fault
    # batching held: far fewer calls than leads, retries included (a batch of new leads makes
    # two calls: the lookup by email and the write)
    assert calls < LEADS / 5
