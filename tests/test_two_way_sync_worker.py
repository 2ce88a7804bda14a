"""Two-way sync in the real worker: the poll runs on the worker's schedule against the sandbox
HubSpot served by gunicorn, and a worker SIGKILLed in the middle of a poll leaves a watermark
from which the next worker resumes, applying every change exactly once."""

from django.db.models import Count
import pytest

from delivery.models import Destination, DestinationField, LeadDelivery, SyncCursor
from leads.models import Lead, LeadDecision
from tests import sandbox_control as crm
from tests.factories import hubspot_destination
from tests.stack import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

RECORDS = 1_200  # six pages of 200


def held_leads(destination: Destination, ids: list[str]) -> None:
    """Leads we pushed earlier, one per sandbox contact: our phone (and the base) +1000<i>."""
    Lead.objects.bulk_create(Lead(email=f"p{i}@example.com", phone=f"+1000{i}") for i in range(RECORDS))
    leads = dict(Lead.objects.values_list("email", "pk"))
    LeadDelivery.objects.bulk_create(
        LeadDelivery(lead_id=leads[f"p{i}@example.com"], destination=destination, crm_record_id=record_id,
                     pushed={"primary": {"email": f"p{i}@example.com", "phone": f"+1000{i}"}})
        for i, record_id in enumerate(ids))


def test_a_poll_killed_mid_page_resumes_from_its_watermark_and_applies_every_change_once(stack):
    stack.env["CRMSYNC_SYNC_POLL_LEASE_SECONDS"] = "5"
    stack.start_web()
    destination = hubspot_destination(base_url=stack.sandbox_url, poll_interval_seconds=1)
    DestinationField.objects.filter(destination=destination, source="phone").update(
        direction=DestinationField.Direction.FROM_CRM)
    # A person changed every phone in the CRM (+1555<i>) since we pushed it (+1000<i>).
    ids = crm.hubspot_bulk_create(stack.base_url, count=RECORDS, start=0, person="ann",
                                  template={"email": "p{i}@example.com", "phone": "+1555{i}"})
    held_leads(destination, ids)
    # Slow reads, so the kill lands in the middle of the poll.
    crm.faults_set(stack.base_url, "hubspot", latency_ms=1500)

    stack.start_worker()
    cursor = wait_for(lambda: SyncCursor.objects.filter(destination=destination, changes_applied__gte=200)
                      .exclude(cursor="").first(), timeout=120, what="a poll halfway through")
    stack.kill_worker()
    applied_before = Lead.objects.filter(phone__startswith="+1555").count()
    assert 0 < applied_before < RECORDS, "the kill should land mid-poll"

    crm.faults_reset(stack.base_url, "hubspot")
    # An hour between polls from now on: only the unfinished poll may run, from its cursor.
    Destination.objects.filter(pk=destination.pk).update(poll_interval_seconds=3600)
    stack.start_worker()
    wait_for(lambda: Lead.objects.filter(phone__startswith="+1555").count() == RECORDS, timeout=180,
             what="every change applied")

    assert set(Lead.objects.values_list("phone", flat=True)) == {f"+1555{i}" for i in range(RECORDS)}
    # Exactly once: one decision per lead, whatever was read twice.
    counts = (LeadDecision.objects.filter(action=LeadDecision.Action.CRM_CHANGED).values("lead_id")
              .annotate(n=Count("id")).values_list("n", flat=True))
    assert sorted(set(counts)) == [1] and len(counts) == RECORDS
    # Resumed from the stored page, not started over: every record was read exactly once.
    cursor.refresh_from_db()
    assert cursor.watermark is not None and cursor.cursor == ""
    assert cursor.records_read == RECORDS


def test_a_signed_hubspot_webhook_makes_its_record_poll_within_seconds(stack):
    stack.start_web()
    destination = hubspot_destination(base_url=stack.sandbox_url, poll_interval_seconds=3600)
    destination.set_credentials({"webhook_client_secret": "app-secret"})
    destination.save()
    DestinationField.objects.filter(destination=destination, source="phone").update(
        direction=DestinationField.Direction.FROM_CRM)
    [record_id] = crm.hubspot_bulk_create(stack.base_url, count=1, person="ann",
                                          template={"email": "ada@example.com", "phone": "+4930111"})
    lead = Lead.objects.create(email="ada@example.com", phone="+4930111")
    LeadDelivery.objects.create(lead=lead, destination=destination, crm_record_id=record_id,
                                pushed={"primary": {"email": "ada@example.com", "phone": "+4930111"}})
    stack.start_worker()
    cursor = wait_for(lambda: SyncCursor.objects.filter(destination=destination, last_finished_at__isnull=False).first(),
                      timeout=60, what="the first scheduled poll")
    polls = cursor.polls
    crm.hubspot_webhook_subscribe(stack.base_url, client_secret="app-secret",
                                  target_url=f"{stack.base_url}/api/crm-webhooks/hubspot/{destination.pk}")

    crm.hubspot_person_edit(stack.base_url, record_id, {"phone": "+4930999"})

    # The interval is an hour: only the webhook's hint can bring the change in.
    wait_for(lambda: Lead.objects.get(pk=lead.pk).phone == "+4930999", timeout=30, what="the hinted poll")
    cursor.refresh_from_db()
    assert cursor.hinted_ids == []
    assert cursor.polls >= polls
