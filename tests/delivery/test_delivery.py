"""The dispatcher and the HubSpot connector against the sandbox CRM over real HTTP."""

from datetime import timedelta
import uuid

from django.utils import timezone
import pytest

from audit.models import SyncLog
from delivery import services
from delivery.models import PushJob
from tests.factories import deliver, hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_creates_the_contact_then_updates_the_same_one(sandbox_url):
    hubspot_destination(base_url=sandbox_url)
    lead = make_lead(email="ada@example.com", company="Analytical Engines")

    first = deliver(lead)
    lead.company = "Babbage & Co"
    lead.save()
    second = deliver(lead)

    assert (first.status, second.status) == (PushJob.Status.SUCCEEDED, PushJob.Status.SUCCEEDED)
    assert first.crm_record_id and first.crm_record_id == second.crm_record_id
    logs = list(SyncLog.objects.order_by("id").values_list("operation", "crm_record_id", "http_status"))
    assert logs == [("create", first.crm_record_id, 200), ("update", first.crm_record_id, 200)]
    sent = SyncLog.objects.order_by("id").last().request
    assert sent["idProperty"] == "crmsync_external_id" and sent["id"] == lead.external_id
    assert sent["properties"]["company"] == "Babbage & Co"


def test_a_refused_token_pauses_the_destination_and_resuming_with_a_good_one_delivers(sandbox_url, settings):
    destination = hubspot_destination(base_url=sandbox_url, token="wrong")

    job = deliver(make_lead())

    destination.refresh_from_db()
    assert destination.is_paused and "INVALID_AUTHENTICATION" in destination.paused_reason
    # Not the record's fault: it waits for the destination, and no attempt is counted.
    assert (job.status, job.attempts) == (PushJob.Status.PENDING, 0)
    assert "INVALID_AUTHENTICATION" in job.last_error
    assert SyncLog.objects.get().http_status == 401
    assert services.push_dispatch_due() == 0  # paused: nothing is claimed

    destination.set_token(settings.SANDBOX_HUBSPOT_TOKEN)
    destination.save()
    services.destination_resume(destination=destination)
    services.push_dispatch_due()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)


def test_an_unreachable_crm_is_retried_later():
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")  # discard port: refused

    job = deliver(make_lead())

    assert (job.status, job.attempts) == (PushJob.Status.PENDING, 1)
    assert job.next_attempt_at > timezone.now()
    assert job.last_error.startswith("NETWORK")


def test_a_job_is_dead_lettered_after_the_attempt_limit(settings):
    settings.CRMSYNC = {**settings.CRMSYNC, "PUSH_MAX_ATTEMPTS": 2}
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    job = deliver(make_lead())

    PushJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    services.push_dispatch_due()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.DEAD, 2)
    assert SyncLog.objects.filter(push_job=job).count() == 2


def test_a_record_the_crm_refuses_waits_for_review_with_the_crms_message(sandbox_url):
    hubspot_destination(base_url=sandbox_url, upsert_property="not_a_property")

    job = deliver(make_lead())

    assert job.status == PushJob.Status.REVIEW
    assert "VALIDATION_ERROR" in job.last_error
    assert SyncLog.objects.get().error_code == "VALIDATION_ERROR"


def test_two_dispatchers_never_claim_the_same_job():
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    services.push_jobs_enqueue(lead=make_lead())

    assert services._claim(uuid.uuid4(), 10) == 1
    assert services._claim(uuid.uuid4(), 10) == 0


def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(sandbox_url):
    hubspot_destination(base_url=sandbox_url)
    [job] = services.push_jobs_enqueue(lead=make_lead())
    services._claim(uuid.uuid4(), 10)  # a worker claims it, then dies

    assert services.push_dispatch_due() == 0  # the lease still holds
    PushJob.objects.filter(pk=job.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    assert services.push_dispatch_due() == 1

    job.refresh_from_db()
    # it died before its request went out: that attempt is not counted (tests/delivery/test_leases.py)
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)


def test_a_paused_destination_gets_nothing(sandbox_url):
    hubspot_destination(base_url=sandbox_url, is_active=False)

    assert services.push_jobs_enqueue(lead=make_lead()) == []
    assert services.push_dispatch_due() == 0
