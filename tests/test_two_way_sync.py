"""Two-way sync end to end against the sandbox CRMs over real HTTP (live_server): a person edits
a record in the sandbox HubSpot or Salesforce, the poller reads it back, the three-way comparison
decides, and the outbox settles the CRM. The worker-process variants (a poll killed mid-page)
are in test_two_way_sync_worker.py."""

import time

from django.conf import settings
from django.contrib.auth.models import Permission
import pytest

from delivery import services
from delivery.conflicts import conflict_resolve
from delivery.fieldmap import fields_default_ensure
from delivery.models import Conflict, Destination, DestinationField, LeadDelivery, PushJob
from delivery.sync import destination_poll
from leads.models import Lead, LeadDecision
from sandbox.models import SandboxContact, SandboxSalesforceRecord
from tests import sandbox_control as crm
from tests.factories import hubspot_destination

pytestmark = pytest.mark.django_db(transaction=True)

Direction, Rule, R = DestinationField.Direction, DestinationField.Rule, Conflict.Resolution
KEY = "Crmsync_External_Id__c"


@pytest.fixture
def hubspot(live_server) -> Destination:
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot", poll_interval_seconds=60)
    DestinationField.objects.filter(destination=destination, source__in=["phone", "company"]).update(
        direction=Direction.BOTH, rule=Rule.MANUAL)
    return destination


@pytest.fixture
def salesforce(live_server) -> Destination:
    destination = Destination(name="Salesforce", kind=Destination.Kind.SALESFORCE, base_url=live_server.url,
                              auth_method=Destination.Auth.CLIENT_CREDENTIALS, object_model=Destination.ObjectModel.LEAD,
                              upsert_property=KEY, company_upsert_property="Crmsync_Domain__c", batch_wait_seconds=0,
                              poll_interval_seconds=60)
    destination.set_credentials({"client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                 "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    destination.save()
    fields_default_ensure(destination=destination)
    DestinationField.objects.filter(destination=destination, source="phone").update(direction=Direction.BOTH, rule=Rule.MANUAL)
    return destination


def pushed(lead: Lead) -> None:
    """Queue the lead's pushes and run the dispatcher until none is due."""
    services.push_jobs_enqueue(lead=lead)
    while services.push_dispatch_due():
        pass


def delivered(destination: Destination, **values) -> tuple[Lead, str]:
    lead = Lead.objects.create(**{"email": "ada@example.com", "first_name": "Ada", "phone": "+4930111",
                                  "company": "Acme", **values})
    pushed(lead)
    delivery = LeadDelivery.objects.get(lead=lead, destination=destination)
    assert delivery.crm_record_id
    return lead, delivery.crm_record_id


def hubspot_phone(live_server, record_id: str) -> str:
    return crm.hubspot_read(live_server.url, record_id, properties=["phone"])["properties"]["phone"]


def our_change(lead: Lead, **values) -> None:
    """A submission changed the lead here (its values, with their event time now)."""
    from django.utils import timezone

    lead.refresh_from_db()
    for name, value in values.items():
        setattr(lead, name, value)
        lead.field_times[name] = timezone.now().isoformat()
    lead.save()


# --- from the CRM -------------------------------------------------------------------------


@pytest.mark.parametrize("direction", [Direction.FROM_CRM, Direction.BOTH])
def test_a_phone_changed_by_a_person_in_hubspot_reaches_the_lead_in_one_poll_and_is_not_overwritten(
        live_server, hubspot, direction):
    DestinationField.objects.filter(destination=hubspot, source="phone").update(direction=direction, rule="")
    lead, record_id = delivered(hubspot)
    crm.hubspot_person_edit(live_server.url, record_id, {"phone": "+4930999"}, person="rep@acme.com")

    report = destination_poll(destination_id=hubspot.pk)

    assert report.error == ""
    lead.refresh_from_db()
    assert lead.phone == "+4930999"
    decision = LeadDecision.objects.get(lead=lead, action=LeadDecision.Action.CRM_CHANGED)
    assert decision.changes["changed"] == {"phone": ["+4930111", "+4930999"]}
    assert f"HubSpot record {record_id} changed phone" in decision.detail
    # The lead's next push (another field changed here) leaves the person's phone alone.
    our_change(lead, first_name="Ada M.")
    pushed(lead)
    assert hubspot_phone(live_server, record_id) == "+4930999"
    contact = crm.hubspot_read(live_server.url, record_id, properties=["firstname"])
    assert contact["properties"]["firstname"] == "Ada M."


def test_a_push_followed_by_a_poll_makes_no_change_no_conflict_and_no_further_call(live_server, hubspot):
    lead, _ = delivered(hubspot)
    decisions = LeadDecision.objects.filter(lead=lead).count()

    report = destination_poll(destination_id=hubspot.pk)

    assert (report.records_read, report.changes_applied, report.conflicts_opened) == (1, 0, 0)
    assert LeadDecision.objects.filter(lead=lead).count() == decisions
    assert not Conflict.objects.exists()
    assert not PushJob.objects.filter(status=PushJob.Status.PENDING).exists()
    assert services.push_dispatch_due() == 0  # no further call


def test_an_unchanged_crm_costs_one_call_per_poll(live_server, hubspot):
    delivered(hubspot)
    destination_poll(destination_id=hubspot.pk)
    assert destination_poll(destination_id=hubspot.pk).calls == 1


# --- both sides changed -------------------------------------------------------------------


def conflict_made(live_server, hubspot) -> tuple[Lead, str, Conflict]:
    """The phone changed on both sides: ours by a submission, the CRM's by a person."""
    lead, record_id = delivered(hubspot)
    crm.hubspot_person_edit(live_server.url, record_id, {"phone": "+4930999"}, person="rep@acme.com")
    our_change(lead, phone="+4930222")
    destination_poll(destination_id=hubspot.pk)
    return lead, record_id, Conflict.objects.get(status=Conflict.Status.OPEN)


def test_both_sides_changed_under_manual_review_make_exactly_one_conflict_and_hold_the_field(live_server, hubspot):
    lead, record_id, conflict = conflict_made(live_server, hubspot)
    destination_poll(destination_id=hubspot.pk)  # read again: still one
    assert Conflict.objects.count() == 1
    assert (conflict.base, conflict.ours, conflict.theirs, conflict.theirs_by) == (
        "+4930111", "+4930222", "+4930999", "CRM_UI:rep@acme.com")
    pushed(lead)  # the field is held: the person's value stays until a reviewer decides
    assert hubspot_phone(live_server, record_id) == "+4930999"


def test_a_push_racing_a_persons_edit_reads_the_field_back_first(live_server, hubspot):
    """The person edits after the last poll and we change the phone before the next one: the
    push must not overwrite the edit (the rule decides, not the order)."""
    lead, record_id = delivered(hubspot)
    crm.hubspot_person_edit(live_server.url, record_id, {"phone": "+4930999"}, person="rep@acme.com")
    our_change(lead, phone="+4930222")
    pushed(lead)
    assert hubspot_phone(live_server, record_id) == "+4930999"
    assert Conflict.objects.get().theirs == "+4930999"


@pytest.mark.parametrize(("resolution", "value", "expected"), [
    (R.KEEP_OURS, None, "+4930222"), (R.TAKE_CRM, None, "+4930999"), (R.VALUE, "+4930555", "+4930555")])
def test_resolving_a_conflict_leaves_both_sides_equal(live_server, hubspot, django_user_model, resolution, value,
                                                       expected):
    lead, record_id, conflict = conflict_made(live_server, hubspot)
    reviewer = django_user_model.objects.create_user("rita", password="pw")

    conflict_resolve(conflict_id=conflict.pk, resolution=resolution, actor=reviewer, value=value)
    pushed(lead)

    lead.refresh_from_db()
    conflict.refresh_from_db()
    assert lead.phone == expected
    assert hubspot_phone(live_server, record_id) == expected
    assert (conflict.status, conflict.resolution, conflict.resolved_by) == (Conflict.Status.RESOLVED, resolution, reviewer)
    assert LeadDecision.objects.filter(lead=lead, action=LeadDecision.Action.CONFLICT, actor=reviewer).exists()
    # And the next poll sees nothing left to do.
    report = destination_poll(destination_id=hubspot.pk)
    assert (report.changes_applied, report.conflicts_opened) == (0, 0)


def test_a_reviewer_without_mapping_permissions_resolves_in_the_admin(live_server, hubspot, client, django_user_model):
    lead, record_id, conflict = conflict_made(live_server, hubspot)
    reviewer = django_user_model.objects.create_user("rita", password="pw", is_staff=True)
    reviewer.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="delivery", codename__in=["resolve_conflict", "view_conflict"]))
    client.force_login(reviewer)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/mapping/mappingset/").status_code == 403

    answer = client.post(f"/admin/delivery/conflict/{conflict.pk}/change/", {"resolve": "take_crm"})

    assert answer.status_code == 302
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolved_by) == (Conflict.Status.RESOLVED, reviewer)
    lead.refresh_from_db()
    assert lead.phone == "+4930999" == hubspot_phone(live_server, record_id)


@pytest.mark.parametrize("crm_clock_offset", [300, -300])
def test_most_recent_picks_the_later_change_with_the_crms_clock_five_minutes_off(live_server, hubspot, crm_clock_offset):
    DestinationField.objects.filter(destination=hubspot, source="phone").update(rule=Rule.MOST_RECENT)
    Destination.objects.filter(pk=hubspot.pk).update(clock_margin_seconds=2)
    crm.clock_offset_set(live_server.url, "hubspot", crm_clock_offset)
    lead, record_id = delivered(hubspot)

    # The CRM's change is the later one: it wins.
    our_change(lead, phone="+4930222")
    time.sleep(3)
    crm.hubspot_person_edit(live_server.url, record_id, {"phone": "+4930999"})
    destination_poll(destination_id=hubspot.pk)
    lead.refresh_from_db()
    assert lead.phone == "+4930999"

    # Ours is the later one: it wins and goes out.
    crm.hubspot_person_edit(live_server.url, record_id, {"phone": "+4930888"})
    time.sleep(3)
    our_change(lead, phone="+4930777")
    destination_poll(destination_id=hubspot.pk)
    pushed(lead)
    lead.refresh_from_db()
    assert lead.phone == "+4930777" == hubspot_phone(live_server, record_id)
    hubspot.refresh_from_db()
    assert abs(hubspot.clock_offset_seconds - crm_clock_offset) < 5


# --- deletes and merges -------------------------------------------------------------------


def test_a_contact_deleted_in_hubspot_is_held_for_review_and_not_recreated_until_a_reviewer_says_so(
        live_server, hubspot, django_user_model):
    lead, record_id = delivered(hubspot)
    crm.hubspot_archive(live_server.url, record_id)

    destination_poll(destination_id=hubspot.pk)

    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.crm_record_id) == (Conflict.Kind.DELETED, record_id)
    our_change(lead, first_name="Ada M.")
    pushed(lead)
    assert SandboxContact.objects.filter(archived=False).count() == 0  # nothing recreated
    job = PushJob.objects.filter(lead=lead).latest("id")
    assert (job.status, job.last_error_code) == (PushJob.Status.REVIEW, "CRM_RECORD_HELD")

    conflict_resolve(conflict_id=conflict.pk, resolution=R.RECREATE, actor=django_user_model.objects.create_user("rita"))
    while services.push_dispatch_due():
        pass
    recreated = SandboxContact.objects.get(archived=False)
    assert recreated.properties["firstname"] == "Ada M."
    assert LeadDelivery.objects.get(lead=lead).crm_record_id == str(recreated.pk)


def test_a_push_that_recreates_a_deleted_contact_before_a_poll_saw_it_is_held_for_review(
        live_server, hubspot, django_user_model):
    lead, record_id = delivered(hubspot)
    crm.hubspot_archive(live_server.url, record_id)
    our_change(lead, first_name="Ada M.")  # a field that only goes to the CRM: no read-back first
    pushed(lead)

    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.crm_record_id) == (Conflict.Kind.DELETED, record_id)
    assert "a push created record" in conflict.note
    assert LeadDelivery.objects.get(lead=lead).crm_state == LeadDelivery.CrmState.DELETED
    our_change(lead, first_name="Ada")
    pushed(lead)  # held: no third record
    assert SandboxContact.objects.filter(archived=False).count() == 1

    conflict_resolve(conflict_id=conflict.pk, resolution=R.RECREATE, actor=django_user_model.objects.create_user("rita"))
    while services.push_dispatch_due():
        pass
    [kept] = SandboxContact.objects.filter(archived=False)
    assert kept.properties["firstname"] == "Ada"  # the new record, updated, not a third one


def test_a_contact_merged_away_in_hubspot_is_held_for_review(live_server, hubspot):
    lead, record_id = delivered(hubspot)
    survivor = crm.hubspot_create(live_server.url, {"email": "ada.l@example.com", "firstname": "Ada"}, person="ann")
    crm.hubspot_merge(live_server.url, survivor["id"], record_id)

    destination_poll(destination_id=hubspot.pk)

    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.crm_record_id, conflict.merged_into) == (Conflict.Kind.MERGED, record_id, survivor["id"])
    our_change(lead, first_name="Ada M.")
    pushed(lead)
    assert SandboxContact.objects.count() == 2  # the merged-away record and the survivor: nothing recreated


def test_a_salesforce_lead_deleted_is_held_for_review(live_server, salesforce):
    lead, record_id = delivered(salesforce, last_name="Lovelace")
    crm.salesforce_delete(live_server.url, "Lead", record_id)

    destination_poll(destination_id=salesforce.pk)

    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.crm_record_id) == (Conflict.Kind.DELETED, record_id)
    our_change(lead, first_name="Ada M.")
    pushed(lead)
    assert SandboxSalesforceRecord.objects.filter(sobject="Lead", is_deleted=False).count() == 0


def test_a_phone_changed_by_a_person_in_salesforce_reaches_the_lead(live_server, salesforce):
    lead, record_id = delivered(salesforce, last_name="Lovelace")
    crm.salesforce_person_edit(live_server.url, "Lead", record_id, {"Phone": "+4930999"})
    destination_poll(destination_id=salesforce.pk)
    lead.refresh_from_db()
    assert lead.phone == "+4930999"
    decision = LeadDecision.objects.get(lead=lead, action=LeadDecision.Action.CRM_CHANGED)
    assert "by 005" in decision.detail  # the person's user ID, as Salesforce says who changed a record
    # A push followed by a poll: nothing.
    assert destination_poll(destination_id=salesforce.pk).changes_applied == 0


def test_a_salesforce_merge_is_held_as_a_merge_with_its_survivor(live_server, salesforce):
    lead, record_id = delivered(salesforce, last_name="Lovelace")
    master = crm.salesforce_create(live_server.url, "Lead", {"LastName": "Lovelace", "Company": "Acme",
                                                             "Email": "ada.l@example.com"}, person="ann")
    crm.salesforce_merge(live_server.url, master, [record_id])
    destination_poll(destination_id=salesforce.pk)
    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.merged_into) == (Conflict.Kind.MERGED, master)


def test_full_record_pushes_leave_a_persons_two_way_change_alone(live_server, hubspot):
    Destination.objects.filter(pk=hubspot.pk).update(changed_fields_only=False)
    lead, record_id = delivered(hubspot)
    crm.hubspot_person_edit(live_server.url, record_id, {"phone": "+4930999"})
    our_change(lead, first_name="Ada M.")  # only a one-way field changed here
    pushed(lead)
    assert hubspot_phone(live_server, record_id) == "+4930999"
    destination_poll(destination_id=hubspot.pk)
    lead.refresh_from_db()
    assert lead.phone == "+4930999"


def test_an_adopted_record_keeps_the_fields_the_crm_decides(live_server, hubspot):
    DestinationField.objects.filter(destination=hubspot, source="phone").update(direction=Direction.FROM_CRM)
    crm.hubspot_create(live_server.url, {"email": "ada@example.com", "firstname": "Ada", "phone": "+4930999"}, person="ann")
    lead, record_id = delivered(hubspot)  # found by email and adopted
    assert hubspot_phone(live_server, record_id) == "+4930999"
    destination_poll(destination_id=hubspot.pk)
    lead.refresh_from_db()
    assert lead.phone == "+4930999"


def test_a_value_pulled_as_text_is_not_sent_back_as_a_change(live_server, hubspot):
    from audit.models import SyncLog
    from delivery.preflight import destination_fields_create

    destination_fields_create(destination=hubspot)  # the crmsync_* consent properties
    DestinationField.objects.filter(destination=hubspot, source="marketing_opt_in").update(direction=Direction.BOTH)
    lead, record_id = delivered(hubspot, marketing_opt_in=True)
    crm.hubspot_person_edit(live_server.url, record_id, {"crmsync_marketing_opt_in": "false"})
    destination_poll(destination_id=hubspot.pk)
    lead.refresh_from_db()
    assert lead.marketing_opt_in is False
    our_change(lead, first_name="Ada M.")
    pushed(lead)
    sent = SyncLog.objects.filter(lead_id=lead.pk).latest("id").request
    assert "crmsync_marketing_opt_in" not in sent["properties"] and "firstname" in sent["properties"]


def test_a_page_cursor_the_crm_refuses_restarts_from_the_watermark(live_server, salesforce):
    from delivery.models import SyncCursor

    lead, record_id = delivered(salesforce, last_name="Lovelace")
    crm.salesforce_person_edit(live_server.url, "Lead", record_id, {"Phone": "+4930999"})
    SyncCursor.objects.create(destination=salesforce, cursor="/services/data/v62.0/query/01gEXPIRED-2000")
    report = destination_poll(destination_id=salesforce.pk)
    assert report.error == ""
    lead.refresh_from_db()
    assert lead.phone == "+4930999"


def test_always_prefer_needs_permission_on_the_field_map(live_server, hubspot, client, django_user_model):
    from django.contrib.admin.models import LogEntry

    lead, record_id, conflict = conflict_made(live_server, hubspot)
    reviewer = django_user_model.objects.create_user("rita", password="pw", is_staff=True)
    reviewer.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="delivery", codename__in=["resolve_conflict", "view_conflict"]))
    client.force_login(reviewer)
    url = f"/admin/delivery/conflict/{conflict.pk}/prefer/keep_ours/"
    assert client.post(url).status_code == 403
    assert "prefer-ours" not in client.get(f"/admin/delivery/conflict/{conflict.pk}/change/").content.decode()

    reviewer.user_permissions.add(Permission.objects.get(codename="change_destinationfield"))
    client.force_login(django_user_model.objects.get(pk=reviewer.pk))
    assert client.post(url).status_code == 302
    assert DestinationField.objects.get(destination=hubspot, source="phone").rule == Rule.OURS
    assert LogEntry.objects.filter(object_id=str(hubspot.pk), change_message__contains="rule set to").exists()
    conflict.refresh_from_db()
    assert (conflict.status, conflict.resolution) == (Conflict.Status.RESOLVED, R.KEEP_OURS)
    assert client.get("/admin/delivery/conflict/abc/change/").status_code == 404

