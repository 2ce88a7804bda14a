"""Push-job leases: short, renewed while the work runs, handed back when the worker stops, and a
killed worker's attempt counted only if its request may have reached the CRM. Against the
sandbox HubSpot over real HTTP; the worker's own processes are tested in tests/crmsync/test_stops.py."""

from datetime import timedelta
import threading
import time
import uuid

from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone
import pytest
import requests

from audit.models import SyncLog
from core import stopping
from delivery import services
from delivery.models import PushJob
from sandbox.models import SandboxSettings
from tests.factories import hubspot_destination
from tests.factories import lead as make_lead
from tests.stack import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

AUTH = {"Authorization": f"Bearer {django_settings.SANDBOX_HUBSPOT_TOKEN}"}


def crm_emails(sandbox_url: str) -> list[str]:
    page = requests.get(f"{sandbox_url}/crm/v3/objects/contacts", params={"limit": 100, "properties": "email"},
                        headers=AUTH, timeout=10).json()
    return sorted(contact["properties"]["email"] for contact in page["results"])


def abandon(job: PushJob, *, request_sent: bool) -> None:
    """A worker claimed the job and was killed: before its request went out, or after."""
    assert services._claim(uuid.uuid4(), 10) == 1
    PushJob.objects.filter(pk=job.pk).update(request_sent=request_sent,
                                             leased_until=timezone.now() - timedelta(seconds=1))


def dispatch_in_background() -> threading.Thread:
    def run() -> None:
        try:
            services.push_dispatch_due()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.fixture
def slow_crm():
    """The sandbox applies each write at once and answers it after a delay."""
    def slow(seconds: float) -> None:
        SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"reply_delay_ms": int(seconds * 1000)})
    return slow


@pytest.fixture
def worker_stop(monkeypatch):
    """This process as a task process of a `manage.py worker` that may be asked to stop."""
    monkeypatch.setattr(stopping, "_deadline", None)
    stopping.stop_share()
    return stopping.stop_request


def test_a_job_abandoned_before_its_request_went_out_is_taken_over_without_counting_that_attempt(sandbox_url):
    hubspot_destination(base_url=sandbox_url)
    [job] = services.push_jobs_enqueue(lead=make_lead(email="ada@example.com"))
    abandon(job, request_sent=False)

    assert services.push_dispatch_due() == 1

    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)
    assert list(SyncLog.objects.values_list("operation", "attempt")) == [("create", 1)]


def test_a_job_abandoned_after_its_request_went_out_counts_that_attempt(sandbox_url):
    hubspot_destination(base_url=sandbox_url)
    [job] = services.push_jobs_enqueue(lead=make_lead(email="ada@example.com"))
    abandon(job, request_sent=True)

    assert services.push_dispatch_due() == 1

    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 2)


def test_a_crm_call_slower_than_the_lease_keeps_the_job_from_other_workers(sandbox_url, slow_crm, settings):
    # given a one-second lease and a CRM that answers after three
    settings.CRMSYNC = {**settings.CRMSYNC, "PUSH_LEASE_SECONDS": 1}
    slow_crm(3)
    hubspot_destination(base_url=sandbox_url)
    [job] = services.push_jobs_enqueue(lead=make_lead(email="ada@example.com"))

    # when one worker is waiting for the CRM, another looks for due work all along
    pushing = dispatch_in_background()
    wait_for(lambda: PushJob.objects.filter(pk=job.pk, request_sent=True).exists(), timeout=30, what="the request")
    taken_by_another = 0
    while pushing.is_alive():
        taken_by_another += services.push_dispatch_due()
        time.sleep(0.1)
    pushing.join()

    # then the heartbeat kept the lease: one push, one attempt, one contact
    job.refresh_from_db()
    assert taken_by_another == 0
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)
    assert SyncLog.objects.count() == 1
    assert crm_emails(sandbox_url) == ["ada@example.com"]


def test_a_stopping_worker_claims_nothing(sandbox_url, worker_stop):
    hubspot_destination(base_url=sandbox_url)
    [job] = services.push_jobs_enqueue(lead=make_lead())

    worker_stop(within_seconds=5)

    assert services.push_dispatch_due() == 0
    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.PENDING, 0)


def test_a_push_still_waiting_for_the_crm_at_the_stop_deadline_stays_leased_and_its_late_answer_settles_it(
        sandbox_url, slow_crm, worker_stop):
    # given a worker waiting for a slow CRM's answer
    slow_crm(3)
    hubspot_destination(base_url=sandbox_url)
    [job] = services.push_jobs_enqueue(lead=make_lead(email="ada@example.com"))
    pushing = dispatch_in_background()
    wait_for(lambda: PushJob.objects.filter(pk=job.pk, request_sent=True).exists(), timeout=30, what="the request")

    # when the worker is asked to stop, with less time than the CRM takes
    worker_stop(within_seconds=0.5)

    # then the job is not handed back (the request may still land): it stays leased beyond the
    # read timeout, with its attempt counted, and no other worker can take it meanwhile
    read_timeout = django_settings.CRMSYNC["HTTP_READ_TIMEOUT"]
    job = wait_for(lambda: PushJob.objects.filter(pk=job.pk, leased_until__gt=timezone.now()
                                                  + timedelta(seconds=read_timeout)).first(), timeout=10,
                   what="the lease to outlast the request")
    assert (job.status, job.attempts) == (PushJob.Status.IN_PROGRESS, 1)
    assert pushing.is_alive()
    stopping.stop_share()  # another worker, not stopping
    assert services.push_dispatch_due() == 0
    pushing.join()

    # and the late answer settles it: one call, one attempt, one contact
    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)
    assert SyncLog.objects.count() == 1
    assert crm_emails(sandbox_url) == ["ada@example.com"]
