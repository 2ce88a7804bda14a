"""The dispatcher's promises beyond one push: field maps, only what changed (nothing at all
when nothing did), the shared rate budget, superseded jobs, preflight and the operator's
actions. Against the sandbox CRM over real HTTP."""

from concurrent.futures import ThreadPoolExecutor
import time
import uuid

from django.db import connection
from django.utils import timezone
import pytest

from audit.models import SyncLog
from delivery import ratelimit, services
from delivery.models import DestinationField, LeadDelivery, PushJob, RateBudget
from delivery.preflight import destination_fields_create, destination_preflight
from sandbox.models import SandboxContact, SandboxRateWindow
from tests.factories import deliver, hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db(transaction=True)


def crm_calls() -> int:
    """Requests the sandbox CRM has counted today."""
    row = SandboxRateWindow.objects.filter(crm="hubspot", window="daily").first()
    return row.count if row else 0


def test_an_unchanged_lead_sent_again_makes_no_call_and_logs_a_noop(sandbox_url):
    hubspot_destination(base_url=sandbox_url)
    lead = make_lead(email="ada@example.com", company="Analytical Engines")
    assert deliver(lead).operation == "create"
    calls = crm_calls()

    again = deliver(lead)

    assert (again.status, again.operation) == (PushJob.Status.SUCCEEDED, "noop")
    assert crm_calls() == calls
    assert SyncLog.objects.order_by("id").last().operation == SyncLog.Operation.NOOP


def test_only_the_fields_that_changed_are_sent(sandbox_url):
    hubspot_destination(base_url=sandbox_url)
    lead = make_lead(email="ada@example.com", first_name="Ada", company="Analytical Engines")
    deliver(lead)

    lead.company = "Babbage & Co"
    lead.save()
    job = deliver(lead)

    sent = SyncLog.objects.get(push_job=job).request["properties"]
    assert sent == {"company": "Babbage & Co", "crmsync_external_id": lead.external_id}
    contact = SandboxContact.objects.get()
    assert contact.properties["firstname"] == "Ada" and contact.properties["company"] == "Babbage & Co"


def test_sending_everything_is_a_setting(sandbox_url):
    hubspot_destination(base_url=sandbox_url, changed_fields_only=False)
    lead = make_lead(email="ada@example.com", first_name="Ada")
    deliver(lead)
    calls = crm_calls()

    job = deliver(lead)

    assert job.operation == "update" and crm_calls() == calls + 1
    assert SyncLog.objects.get(push_job=job).request["properties"]["firstname"] == "***"  # redacted, but sent


def test_the_field_map_renames_maps_values_and_fills_defaults(sandbox_url):
    destination = hubspot_destination(base_url=sandbox_url)
    DestinationField.objects.filter(destination=destination, target="lifecyclestage").update(
        source="attributes.stage", value_map={"hot": "marketingqualifiedlead"}, default="lead")
    hot = make_lead(email="hot@example.com", attributes={"stage": "hot"})
    cold = make_lead(email="cold@example.com")

    deliver(hot), deliver(cold)

    stages = {c.email: c.properties.get("lifecyclestage") for c in SandboxContact.objects.all()}
    assert stages == {"hot@example.com": "marketingqualifiedlead", "cold@example.com": "lead"}


def test_personal_data_is_masked_in_the_sync_log_unless_turned_off(sandbox_url, settings):
    hubspot_destination(base_url=sandbox_url)
    deliver(make_lead(email="ada@example.com", first_name="Ada", country="GB"))
    masked = SyncLog.objects.get()
    assert masked.request["properties"]["email"] == "***" and masked.request["properties"]["firstname"] == "***"
    assert masked.request["properties"]["country"] == "GB"  # not personal
    assert "ada@example.com" not in str(masked.response)

    settings.CRMSYNC = {**settings.CRMSYNC, "SYNC_LOG_REDACT": False}
    lead = make_lead(email="grace@example.com")
    deliver(lead)
    assert SyncLog.objects.get(lead=lead).request["properties"]["email"] == "grace@example.com"


def test_a_job_handed_back_while_a_newer_one_is_pending_is_superseded(sandbox_url):
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")  # refused: transient
    lead = make_lead()
    [first] = services.push_jobs_enqueue(lead=lead)
    token = uuid.uuid4()
    services._claim(token, 10)
    [second] = services.push_jobs_enqueue(lead=lead)  # the lead changed while the first was in flight

    services._push_group(list(PushJob.objects.filter(claim_token=token).select_related("lead", "destination")), token)

    first.refresh_from_db(), second.refresh_from_db()
    assert (first.status, second.status) == (PushJob.Status.SUPERSEDED, PushJob.Status.PENDING)
    assert second.next_attempt_at <= timezone.now()


def test_a_review_job_replayed_after_the_field_map_is_fixed_is_delivered(sandbox_url):
    destination = hubspot_destination(base_url=sandbox_url)
    DestinationField.objects.filter(destination=destination, target="company").update(target="company_name")
    job = deliver(make_lead(company="Analytical Engines"))
    assert job.status == PushJob.Status.REVIEW and "company_name" in job.last_error

    DestinationField.objects.filter(destination=destination, target="company_name").update(target="company")
    assert services.push_jobs_retry(jobs=PushJob.objects.filter(pk=job.pk)) == 1
    services.push_dispatch_due()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)
    assert SandboxContact.objects.get().properties["company"] == "Analytical Engines"


def test_new_leads_wait_briefly_to_share_a_batch_and_a_full_batch_goes_at_once(sandbox_url):
    hubspot_destination(base_url=sandbox_url, batch_wait_seconds=60, batch_size=3)
    first = [services.push_jobs_enqueue(lead=make_lead(email=f"p{i}@example.com"))[0] for i in range(2)]

    assert not services.push_jobs_due_exist() and services.push_dispatch_due() == 0  # waiting for company

    services.push_jobs_enqueue(lead=make_lead(email="p2@example.com"))  # the batch is full
    assert services.push_jobs_due_exist()
    assert services.push_dispatch_due() == 3
    assert crm_calls() == 2  # one lookup by email and one upsert, for the three together
    assert {j.status for j in PushJob.objects.filter(pk__in=[j.pk for j in first])} == {PushJob.Status.SUCCEEDED}


def test_a_lead_alone_is_sent_once_its_wait_is_over(sandbox_url):
    hubspot_destination(base_url=sandbox_url, batch_wait_seconds=60)
    [job] = services.push_jobs_enqueue(lead=make_lead())
    assert services.push_dispatch_due() == 0

    PushJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())  # a minute later
    services.push_jobs_enqueue(lead=make_lead(email="late@example.com"))  # arrived just now
    assert services.push_dispatch_due() == 2  # the newcomer rides along in the same calls
    assert crm_calls() == 2  # one lookup by email and one upsert


# --- the shared rate budget ---------------------------------------------------------------------


class FakeClock:
    """The rate budget's clock, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_no_window_of_the_configured_length_ever_holds_more_than_the_limit():
    destination = hubspot_destination(base_url="http://127.0.0.1:9", rate_limit_requests=3, rate_limit_window_seconds=1)
    clock = FakeClock()
    grants = []
    for _ in range(4):
        clock.advance(0.01)
        grants.append(ratelimit.acquire(destination, clock=clock))
        ratelimit.release(destination, grants[-1].ticket, clock=clock)  # answered at once
    assert [g.granted for g in grants] == [True, True, True, False]
    assert 0.9 < grants[-1].wait_seconds <= 1.1 + ratelimit.SAFETY_MS / 1000

    clock.advance(grants[-1].wait_seconds - 0.005)
    assert not ratelimit.acquire(destination, clock=clock).granted  # not a moment early
    clock.advance(0.01)
    assert ratelimit.acquire(destination, clock=clock).granted


def test_a_slot_is_held_until_its_answer_comes_back_plus_a_window():
    """A call that reaches the CRM late must still count in the CRM's window: its slot frees
    one window after the answer, not after the grant."""
    destination = hubspot_destination(base_url="http://127.0.0.1:9", rate_limit_requests=1, rate_limit_window_seconds=1)
    clock = FakeClock()
    slow = ratelimit.acquire(destination, clock=clock)
    clock.advance(1.2)  # still waiting for the CRM's answer, a whole window after the grant
    waiting = ratelimit.acquire(destination, clock=clock)
    assert not waiting.granted and waiting.wait_seconds <= 0.25  # looks again soon

    ratelimit.release(destination, slow.ticket, clock=clock)
    after = ratelimit.acquire(destination, clock=clock)
    assert not after.granted and after.wait_seconds == pytest.approx(1 + ratelimit.SAFETY_MS / 1000)


def test_a_block_from_the_crm_stops_every_worker_until_it_ends():
    destination = hubspot_destination(base_url="http://127.0.0.1:9")
    ratelimit.block(destination, seconds=30, reason="CRM answered 429")
    grant = ratelimit.acquire(destination)
    assert not grant.granted and 29 < grant.wait_seconds <= 30 and "429" in grant.reason
    ratelimit.block(destination, seconds=1, reason="shorter")  # never shortens a block
    assert ratelimit.acquire(destination).wait_seconds > 28


def test_the_daily_budget_is_counted_across_workers():
    destination = hubspot_destination(base_url="http://127.0.0.1:9", daily_budget=2, rate_limit_requests=100)
    assert [ratelimit.acquire(destination).granted for _ in range(3)] == [True, True, False]
    assert "daily" in ratelimit.acquire(destination).reason


def test_concurrent_workers_never_take_more_slots_than_the_window_holds():
    destination = hubspot_destination(base_url="http://127.0.0.1:9", rate_limit_requests=10, rate_limit_window_seconds=60)

    def take(_):
        try:
            return ratelimit.acquire(destination).granted
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        granted = list(pool.map(take, range(40)))

    assert granted.count(True) == 10
    assert len(RateBudget.objects.get(destination=destination).recent_ms) == 10


def test_a_full_budget_hands_the_jobs_back_without_counting_an_attempt(sandbox_url, settings):
    settings.CRMSYNC = {**settings.CRMSYNC, "RATE_MAX_WAIT_SECONDS": 0.1}
    destination = hubspot_destination(base_url=sandbox_url)
    ratelimit.block(destination, seconds=60, reason="test")

    job = deliver(make_lead())

    assert (job.status, job.attempts) == (PushJob.Status.PENDING, 0)
    assert job.next_attempt_at > timezone.now() + timezone.timedelta(seconds=50)
    assert crm_calls() == 0 and not SyncLog.objects.exists()


def test_hubspot_headers_running_low_block_the_budget_before_hubspot_refuses(sandbox_url):
    from sandbox.models import SandboxSettings

    SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"rate_limit_max": 1})
    destination = hubspot_destination(base_url=sandbox_url)

    deliver(make_lead(email="one@example.com"))

    grant = ratelimit.acquire(destination)
    assert not grant.granted and "HubSpot window" in grant.reason


# --- preflight ------------------------------------------------------------------------------------


def test_preflight_reports_missing_fields_and_picklist_values_then_creates_the_fields(sandbox_url):
    destination = hubspot_destination(base_url=sandbox_url, upsert_property="crmsync_lead_key")
    DestinationField.objects.create(destination=destination, source="attributes.plan", target="crmsync_plan")
    DestinationField.objects.filter(destination=destination, target="lifecyclestage").update(
        source="attributes.stage", value_map={"hot": "very-hot"})
    make_lead(attributes={"stage": "hot"})

    report = destination_preflight(destination=destination)

    assert not report.ok
    assert {f.name for f in report.missing} == {"crmsync_lead_key", "crmsync_plan"}
    assert [f.unique for f in report.missing if f.name == "crmsync_lead_key"] == [True]
    assert any("lifecyclestage" in line and "'very-hot'" in line for line in report.invalid_values)

    assert sorted(destination_fields_create(destination=destination)) == ["crmsync_lead_key", "crmsync_plan"]
    again = destination_preflight(destination=destination)
    assert not again.missing and again.invalid_values  # the picklist value is a mapping fix, not a field


def test_the_admin_tests_the_connection_and_pauses_and_resumes(sandbox_url, operator):
    destination = hubspot_destination(base_url=sandbox_url)
    url = "/admin/delivery/destination/"

    answer = operator.post(url, {"action": "test_connection", "_selected_action": [destination.pk]}, follow=True)
    assert "token accepted" in answer.content.decode()

    operator.post(url, {"action": "pause", "_selected_action": [destination.pk]})
    destination.refresh_from_db()
    assert destination.is_paused
    job = deliver(make_lead())
    assert job.status == PushJob.Status.PENDING and not LeadDelivery.objects.exists()

    operator.post(url, {"action": "resume", "_selected_action": [destination.pk]})
    services.push_dispatch_due()
    job.refresh_from_db()
    assert job.status == PushJob.Status.SUCCEEDED


def test_a_bad_token_is_reported_by_test_connection(sandbox_url, operator):
    destination = hubspot_destination(base_url=sandbox_url, token="wrong")
    answer = operator.post("/admin/delivery/destination/", {"action": "test_connection", "_selected_action": [destination.pk]},
                           follow=True)
    assert "refused the credentials" in answer.content.decode()


def test_dead_letters_are_replayed_from_the_admin(sandbox_url, operator):
    hubspot_destination(base_url=sandbox_url)
    job = PushJob.objects.create(lead=make_lead(), destination_id=hubspot_destination(
        base_url=sandbox_url, name="other").pk, status=PushJob.Status.DEAD, attempts=8, last_error="NETWORK: gone")

    operator.post("/admin/delivery/pushjob/", {"action": "retry_now", "_selected_action": [job.pk]})
    services.push_dispatch_due()

    job.refresh_from_db()
    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)
