"""The whole product over real HTTP with a real qcluster: form POST -> sandbox HubSpot."""

from django.conf import settings
import pytest
import requests

from audit.models import SyncLog
from crmsync.demo import demo_load
from delivery.models import PushJob
from ingestion.models import Submission
from leads.models import Lead
from sandbox.models import SandboxSettings
from tests.stack import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def show_process_logs_on_failure(request, stack):
    yield
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(stack.logs())

AUTH = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}


def sandbox_contacts(stack) -> list[dict]:
    """Every contact the sandbox CRM lists through its HubSpot API, following paging."""
    contacts, after = [], None
    while True:
        params = {"limit": 100, "properties": "email,firstname,lastname,company,crmsync_external_id"}
        if after:
            params["after"] = after
        page = requests.get(f"{stack.sandbox_url}/crm/v3/objects/contacts", params=params, headers=AUTH, timeout=10).json()
        contacts += page["results"]
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return contacts


def post_lead(stack, **fields) -> requests.Response:
    return requests.post(f"{stack.base_url}/api/v1/sources/demo-form/submissions", json=fields, timeout=10)


def all_jobs_settled() -> bool:
    return PushJob.objects.exists() and not PushJob.objects.exclude(status=PushJob.Status.SUCCEEDED).exists()


def test_a_posted_lead_is_listed_by_the_sandbox_crm_with_a_normalized_email(stack):
    # given the demo, a web server and a worker
    demo_load(sandbox_base_url=stack.sandbox_url)
    stack.start_web()
    stack.start_worker()

    # when a website form posts a lead
    answer = post_lead(stack, email="  Ada.Lovelace@Example.COM ", first_name="Ada", last_name="Lovelace",
                       company="Analytical Engines", country="GB")

    # then it is acknowledged at once and soon listed by the CRM's own API
    assert answer.status_code == 202
    assert answer.json() == {"id": answer.json()["id"], "status": "accepted"}
    contacts = wait_for(lambda: sandbox_contacts(stack), timeout=60, what="the contact in the sandbox CRM")
    assert [c["properties"]["email"] for c in contacts] == ["ada.lovelace@example.com"]
    assert contacts[0]["properties"]["company"] == "Analytical Engines"
    # and every stage left its trace
    wait_for(all_jobs_settled, timeout=30, what="the push job to succeed")
    submission = Submission.objects.get(pk=answer.json()["id"])
    lead = Lead.objects.get()
    assert submission.status == Submission.Status.PROCESSED and submission.lead == lead
    job = PushJob.objects.get()
    assert (job.lead, job.status, job.crm_record_id) == (lead, PushJob.Status.SUCCEEDED, contacts[0]["id"])
    log = SyncLog.objects.get()
    assert (log.operation, log.crm_record_id, log.lead_external_id) == ("create", contacts[0]["id"], lead.external_id)
    assert contacts[0]["properties"]["crmsync_external_id"] == lead.external_id


def test_a_submission_accepted_while_the_worker_is_stopped_is_delivered_once_it_starts(stack):
    demo_load(sandbox_base_url=stack.sandbox_url)
    stack.start_web()

    # given the worker is down when a form posts (form-encoded, as a plain HTML form does)
    answer = requests.post(f"{stack.base_url}/api/v1/sources/demo-form/submissions",
                           data={"email": "grace@navy.mil", "first_name": "Grace", "last_name": "Hopper"}, timeout=10)
    assert answer.status_code == 202
    assert Submission.objects.get().status == Submission.Status.RECEIVED
    assert sandbox_contacts(stack) == []

    # when the worker starts
    stack.start_worker()

    # then the lead is delivered exactly once
    wait_for(all_jobs_settled, timeout=60, what="the push job to succeed")
    contacts = sandbox_contacts(stack)
    assert [c["properties"]["email"] for c in contacts] == ["grace@navy.mil"]
    assert list(SyncLog.objects.values_list("operation", flat=True)) == ["create"]
    assert Lead.objects.count() == 1 and PushJob.objects.count() == 1


def test_a_worker_killed_mid_push_loses_nothing_and_duplicates_nothing(stack):
    # given a CRM that applies writes but is slow to answer
    demo_load(sandbox_base_url=stack.sandbox_url)
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"reply_delay_ms": 8000})
    stack.start_web()
    stack.start_worker()
    emails = [f"person{i}@example.org" for i in range(3)]
    for email in emails:
        assert post_lead(stack, email=email, last_name="Person").status_code == 202

    # when the worker is killed after the CRM applied the batch but before it replied
    wait_for(lambda: len(sandbox_contacts(stack)) == 3, timeout=60, what="the CRM to apply the writes")
    stack.kill_worker()
    killed_mid_call = set(PushJob.objects.filter(status=PushJob.Status.IN_PROGRESS).values_list("id", flat=True))
    assert killed_mid_call, "the worker should have been killed while waiting for the CRM's reply"
    SandboxSettings.objects.filter(crm="hubspot").update(reply_delay_ms=0)

    # and a new worker starts once the dead worker's lease has run out
    wait_for(lambda: not PushJob.objects.filter(status=PushJob.Status.IN_PROGRESS, leased_until__gt=_now()).exists(),
             timeout=30, what="the lease to expire")
    stack.start_worker()

    # then every job completes, and the CRM holds each person exactly once
    wait_for(all_jobs_settled, timeout=60, what="the push jobs to succeed")
    wait_for(lambda: Submission.objects.filter(status=Submission.Status.PROCESSED).count() == 3, timeout=30,
             what="all submissions processed")
    contacts = sandbox_contacts(stack)
    assert sorted(c["properties"]["email"] for c in contacts) == emails
    assert sorted(c["properties"]["crmsync_external_id"] for c in contacts) == sorted(
        Lead.objects.values_list("external_id", flat=True))
    assert Lead.objects.count() == 3 and PushJob.objects.count() == 3
    # the retried upsert found the records whose reply was lost, instead of creating new ones
    # (a job can also have been re-claimed once before the kill: its lease is shorter than the
    # CRM's slow reply here, and that is one more attempt, never one more contact)
    for job in PushJob.objects.filter(id__in=killed_mid_call):
        assert job.attempts >= 2
        assert list(SyncLog.objects.filter(push_job=job).values_list("operation", flat=True)) == ["update"]


def _now():
    from django.utils import timezone

    return timezone.now()
