"""End-to-end latency counts only the pushes a submission caused, and a worker stopping while its
request waits on the CRM never lets another worker send that job again while the first request
may still land. Against the sandbox HubSpot over real HTTP."""

from datetime import timedelta
import time

from django.conf import settings as django_settings
from django.db.models import Sum
from django.utils import timezone
import pytest
import requests

from audit import buckets
from audit.models import HourlyCount, SyncLog
from core import stopping
from delivery import services
from delivery.models import PushJob
from ingestion.models import Source, Submission
from monitoring.dashboard import dashboard_data
from sandbox.models import SandboxSettings
from tests.delivery.test_leases import dispatch_in_background
from tests.factories import hubspot_destination, source_with_mapping, submission
from tests.factories import lead as make_lead
from tests.stack import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def counted(metric: str, subject_id: int) -> dict[str, int]:
    return dict(HourlyCount.objects.filter(metric=metric, subject_id=subject_id).values_list("outcome")
                .annotate(n=Sum("count")))


def submitted(lead, *, ago: timedelta) -> Submission:
    """A submission of the lead, through the web form, received `ago` before now."""
    source = source_with_mapping(slug="website") if not Source.objects.exists() else Source.objects.get()
    sub = submission(source=source, payload={"email": lead.email})
    Submission.objects.filter(pk=sub.pk).update(lead=lead, received_at=timezone.now() - ago)
    return sub


def test_end_to_end_latency_counts_only_pushes_a_submission_caused_from_that_submissions_receipt(sandbox_url):
    destination = hubspot_destination(base_url=sandbox_url)
    # given Ada, who submitted 20 days ago, and whose contact a rep just edited in the other CRM:
    # two-way sync queues a push of her to this one (no submission caused it)
    ada = make_lead(email="ada@example.com")
    submitted(ada, ago=timedelta(days=20))
    services.push_jobs_enqueue(lead=ada)
    # and Grace, whose form arrived 90 seconds ago (also 20 days ago) and queued her push
    grace = make_lead(email="grace@example.com")
    submitted(grace, ago=timedelta(days=20))
    recent = submitted(grace, ago=timedelta(seconds=90))
    services.push_jobs_enqueue(lead=grace, correlation_id=recent.correlation_id)

    # when both pushes go through
    assert services.push_dispatch_due() == 2

    # then both pushes count, but only Grace's has an end-to-end time: about 90 seconds, not 20 days
    assert counted(buckets.PUSH, destination.pk) == {"create": 2}
    assert counted(buckets.LATENCY, destination.pk) == {"le_120": 1}
    p95 = [value for value in dashboard_data(range_key="24h")["latency"]["p95"] if value is not None]
    assert p95 and max(p95) <= 120


# --- A worker stopped while its request waits on the CRM -------------------------------------


def crm_answers_after(seconds: float) -> None:
    """The sandbox applies each write at once and answers it after a delay."""
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"reply_delay_ms": int(seconds * 1000)})


def crm_emails(sandbox_url: str) -> list[str]:
    page = requests.get(f"{sandbox_url}/crm/v3/objects/contacts", params={"limit": 100, "properties": "email"},
                        headers={"Authorization": f"Bearer {django_settings.SANDBOX_HUBSPOT_TOKEN}"}, timeout=10).json()
    return sorted(contact["properties"]["email"] for contact in page["results"])


def test_a_stopping_worker_hands_back_what_it_did_not_send_but_no_other_worker_resends_its_request_in_flight(
        sandbox_url, monkeypatch):
    # given worker A, a task process of a `manage.py worker`, pushing Ada and then Grace (one per
    # call) to a CRM that answers after 3 s, and waiting for Ada's answer
    monkeypatch.setattr(stopping, "_deadline", None)
    stopping.stop_share()
    crm_answers_after(3)
    hubspot_destination(base_url=sandbox_url, batch_size=1)
    [ada] = services.push_jobs_enqueue(lead=make_lead(email="ada@example.com"))
    [grace] = services.push_jobs_enqueue(lead=make_lead(email="grace@example.com"))
    a = dispatch_in_background()  # worker A
    wait_for(lambda: PushJob.objects.filter(pk=ada.pk, request_sent=True).exists(), timeout=30, what="Ada's request")

    # when A is asked to stop, with less time than the CRM takes to answer
    stopping.stop_request(within_seconds=0.5)

    # then Grace, never sent, is handed back at once, due now, with no attempt counted
    grace = wait_for(lambda: PushJob.objects.filter(pk=grace.pk, status=PushJob.Status.PENDING).first(), timeout=10,
                     what="Grace's job to be handed back")
    assert (grace.attempts, grace.claim_token, grace.next_attempt_at <= timezone.now()) == (0, None, True)
    # and Ada's request, which may still land, keeps her job from every other worker until it no
    # longer can (the read timeout), its attempt counted
    read_timeout = django_settings.CRMSYNC["HTTP_READ_TIMEOUT"]
    ada = wait_for(lambda: PushJob.objects.filter(pk=ada.pk, leased_until__gt=timezone.now()
                                                  + timedelta(seconds=read_timeout)).first(), timeout=5,
                   what="Ada's lease to outlast her request")
    assert (ada.status, ada.attempts, ada.claim_token is not None) == (PushJob.Status.IN_PROGRESS, 1, True)

    # when worker B, which is not stopping, looks for due work while A still waits for the CRM
    stopping._deadline.value = 0.0
    crm_answers_after(0)
    claimed_by_b = []
    while a.is_alive():
        claimed_by_b.append(services.push_dispatch_due())
        time.sleep(0.1)
    a.join()

    # then B pushed Grace only, and A's late answer settled Ada: one call each, each counted once
    assert sum(claimed_by_b) == 1
    jobs = {job.lead.email: (job.status, job.attempts) for job in PushJob.objects.select_related("lead")}
    assert jobs == {"ada@example.com": (PushJob.Status.SUCCEEDED, 1), "grace@example.com": (PushJob.Status.SUCCEEDED, 1)}
    assert SyncLog.objects.filter(push_job_id=ada.pk).count() == 1
    assert crm_emails(sandbox_url) == ["ada@example.com", "grace@example.com"]
