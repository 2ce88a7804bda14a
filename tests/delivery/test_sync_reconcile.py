"""The three-way comparison of two-way sync: base (last synced), ours (the lead now) and theirs
(the CRM now), per field and rule. The CRM side is given as the poller's records (CrmChange);
reading them from a CRM is tested against the sandbox elsewhere."""

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone
import pytest

from delivery.connectors.base import CrmChange
from delivery.models import Conflict, Destination, DestinationField, LeadDelivery, PushJob
from delivery.reconcile import changes_reconcile, crm_time, most_recent, same, sync_fields
from delivery.sync import reconciled_push
from leads.models import Lead, LeadDecision, Owner, Team

pytestmark = pytest.mark.django_db

Direction, Rule = DestinationField.Direction, DestinationField.Rule


@pytest.fixture
def destination() -> Destination:
    destination = Destination.objects.create(name="HubSpot", base_url="https://api.hubapi.com", batch_wait_seconds=0)
    rows = [("email", "email", Direction.TO_CRM, ""), ("first_name", "firstname", Direction.TO_CRM, ""),
            ("phone", "phone", Direction.BOTH, Rule.MANUAL), ("company", "company", Direction.BOTH, Rule.OURS),
            ("country", "country", Direction.BOTH, Rule.MOST_RECENT),
            ("lifecycle_stage", "lifecyclestage", Direction.FROM_CRM, ""),
            ("owner.hubspot_owner_id", "hubspot_owner_id", Direction.FROM_CRM, "")]
    for source, target, direction, rule in rows:
        DestinationField.objects.create(destination=destination, source=source, target=target, direction=direction, rule=rule,
                                        value_map={"mql": "marketingqualifiedlead", "lead": "lead"} if source == "lifecycle_stage" else {})
    return destination


def synced(destination: Destination, **values) -> tuple[Lead, LeadDelivery]:
    """A lead pushed to the destination (record 501), with what was pushed as the base."""
    lead = Lead.objects.create(email="ada@example.com", first_name="Ada", phone="+4930111", company="Acme", country="DE",
                               **values)
    base = {"email": lead.email, "firstname": "Ada", "phone": "+4930111", "company": "Acme", "country": "DE",
            "lifecyclestage": "lead"}
    delivery = LeadDelivery.objects.create(lead=lead, destination=destination, crm_record_id="501",
                                           pushed={"primary": base, "company": None}, pushed_at=timezone.now())
    return lead, delivery


def crm(values: dict, *, at: datetime | None = None, by: str = "CRM_UI:rep@acme.com", **kwargs) -> CrmChange:
    at = at or timezone.now()
    return CrmChange(crm_id="501", modified_at=at, values=values, changed_at={k: at for k in values},
                     changed_by={k: by for k in values}, **kwargs)


def reconcile(destination: Destination, *changes: CrmChange) -> int:
    """As the poller applies a page: reconcile, then queue the pushes that calls for."""
    reconciled = changes_reconcile(destination=destination, fields=sync_fields(destination), changes=list(changes))
    return reconciled_push(destination, reconciled).applied


def test_a_crm_change_on_a_field_we_did_not_change_reaches_the_lead_and_the_base(destination):
    lead, delivery = synced(destination)
    assert reconcile(destination, crm({"phone": "+4930999", "company": "Acme", "country": "DE"})) == 1
    lead.refresh_from_db()
    delivery.refresh_from_db()
    assert lead.phone == "+4930999"
    assert delivery.pushed["primary"]["phone"] == "+4930999"
    decision = LeadDecision.objects.get(lead=lead, action=LeadDecision.Action.CRM_CHANGED)
    assert decision.changes["changed"] == {"phone": ["+4930111", "+4930999"]}
    assert "rep@acme.com" in decision.detail
    # Nothing goes back to the CRM it came from.
    assert not PushJob.objects.filter(lead=lead, destination=destination).exists()


def test_our_own_write_coming_back_is_no_change(destination):
    lead, delivery = synced(destination)
    before = delivery.pushed
    assert reconcile(destination, crm({"phone": "+4930111", "company": "Acme", "country": "DE", "lifecyclestage": "lead"},
                                      by="INTEGRATION:crmsync")) == 0
    delivery.refresh_from_db()
    assert delivery.pushed == before
    assert not LeadDecision.objects.filter(lead=lead).exists()
    assert not Conflict.objects.exists()
    assert not PushJob.objects.exists()


def test_both_sides_changed_under_manual_review_opens_exactly_one_conflict(destination):
    lead, _ = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(phone="+4930222")
    change = crm({"phone": "+4930999"})
    reconcile(destination, change)
    reconcile(destination, change)  # the overlap window reads it again
    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.status, conflict.target) == (Conflict.Kind.FIELD, Conflict.Status.OPEN, "phone")
    assert (conflict.base, conflict.ours, conflict.theirs) == ("+4930111", "+4930222", "+4930999")
    assert conflict.theirs_by == "CRM_UI:rep@acme.com"
    lead.refresh_from_db()
    assert lead.phone == "+4930222"  # nothing decided yet


def test_a_conflict_whose_sides_agree_closes_itself(destination):
    lead, _ = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(phone="+4930222")
    reconcile(destination, crm({"phone": "+4930999"}))
    reconcile(destination, crm({"phone": "+4930222"}))  # the rep typed our value in the end
    conflict = Conflict.objects.get()
    assert (conflict.status, conflict.resolution) == (Conflict.Status.CLOSED, Conflict.Resolution.CONVERGED)


def test_the_same_change_on_both_sides_only_moves_the_base(destination):
    lead, delivery = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(phone="+4930222")
    reconcile(destination, crm({"phone": "+4930222"}))
    delivery.refresh_from_db()
    assert delivery.pushed["primary"]["phone"] == "+4930222"
    assert not Conflict.objects.exists()


def test_rule_ours_keeps_our_value_and_pushes_it(destination):
    lead, delivery = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(company="Acme GmbH")
    reconcile(destination, crm({"company": "ACME Inc"}))
    lead.refresh_from_db()
    delivery.refresh_from_db()
    assert lead.company == "Acme GmbH"
    assert delivery.pushed["primary"]["company"] == "ACME Inc"  # the base is the CRM's: ours differs, so it is sent
    assert PushJob.objects.filter(lead=lead, destination=destination, status=PushJob.Status.PENDING).exists()


@pytest.mark.parametrize(("rule", "theirs", "expected"), [
    (Rule.CRM, "ACME Inc", "ACME Inc"),
    (Rule.CRM_UNLESS_BLANK, "ACME Inc", "ACME Inc"),
    (Rule.CRM_UNLESS_BLANK, "", "Acme GmbH"),
])
def test_rules_that_take_the_crms_value(destination, rule, theirs, expected):
    DestinationField.objects.filter(destination=destination, source="company").update(rule=rule)
    lead, _ = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(company="Acme GmbH")
    reconcile(destination, crm({"company": theirs}))
    lead.refresh_from_db()
    assert lead.company == expected


def test_fields_from_the_crm_always_take_its_value_through_the_value_map(destination):
    team = Team.objects.create(name="Sales")
    owner = Owner.objects.create(team=team, name="Rep", hubspot_owner_id="77")
    lead, _ = synced(destination)
    reconcile(destination, crm({"lifecyclestage": "marketingqualifiedlead", "hubspot_owner_id": "77"}))
    lead.refresh_from_db()
    assert (lead.lifecycle_stage, lead.owner_id) == ("mql", owner.pk)


def test_an_owner_id_nobody_has_here_is_held_for_review_not_guessed_nor_pushed_back(destination):
    lead, delivery = synced(destination)
    reconcile(destination, crm({"hubspot_owner_id": "999"}))
    lead.refresh_from_db()
    delivery.refresh_from_db()
    assert lead.owner_id is None
    decision = LeadDecision.objects.get(lead=lead, action=LeadDecision.Action.CRM_CHANGED)
    assert "999" in decision.changes["kept"]["owner.hubspot_owner_id"]
    # The base stays, so our value is not pushed over the CRM's, and a reviewer is asked why.
    assert "hubspot_owner_id" not in delivery.pushed["primary"]
    conflict = Conflict.objects.get(target="hubspot_owner_id")
    assert conflict.theirs == "999" and "no owner here has the CRM user ID 999" in conflict.note


def test_a_conflict_whose_crm_side_was_undone_closes_and_ours_goes_out(destination):
    lead, _ = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(phone="+4930222")
    reconcile(destination, crm({"phone": "+4930999"}))
    reconcile(destination, crm({"phone": "+4930111"}))  # the rep put the old number back
    conflict = Conflict.objects.get()
    assert (conflict.status, conflict.resolution) == (Conflict.Status.CLOSED, Conflict.Resolution.KEEP_OURS)
    assert PushJob.objects.filter(lead=lead, destination=destination, status=PushJob.Status.PENDING).exists()


def test_our_own_write_reported_by_the_crm_is_not_a_conflict(destination):
    lead, delivery = synced(destination)
    Lead.objects.filter(pk=lead.pk).update(phone="+4930333")  # changed again since a push whose answer was lost
    reconcile(destination, crm({"phone": "+4930222"}, by="INTEGRATION", by_us=True))
    assert not Conflict.objects.exists()
    delivery.refresh_from_db()
    assert delivery.pushed["primary"]["phone"] == "+4930222"
    assert PushJob.objects.filter(lead=lead, destination=destination, status=PushJob.Status.PENDING).exists()


def test_most_recent_corrects_the_crms_clock_both_ways(destination):
    now = timezone.now()
    for offset in (300, -300):  # the CRM's clock 5 minutes ahead, then behind
        destination.clock_offset_seconds = offset
        # The CRM's change happened 2 minutes after ours (then before), stamped in its own clock.
        later = crm_time(destination, now + timedelta(seconds=120 + offset))
        earlier = crm_time(destination, now + timedelta(seconds=-120 + offset))
        assert most_recent(destination, ours_at=now, theirs_at=later) == "theirs"
        assert most_recent(destination, ours_at=now, theirs_at=earlier) == "ours"


def test_most_recent_through_the_poll_with_a_crm_clock_five_minutes_ahead(destination):
    Destination.objects.filter(pk=destination.pk).update(clock_offset_seconds=300)
    destination.refresh_from_db()
    lead, _ = synced(destination)
    ours_at = timezone.now() - timedelta(minutes=1)
    Lead.objects.filter(pk=lead.pk).update(country="AT", field_times={"country": ours_at.isoformat()})
    # A person changed it in the CRM 3 minutes before our change, but its clock says 2 minutes after.
    crm_clock = ours_at - timedelta(minutes=3) + timedelta(seconds=300)
    reconcile(destination, crm({"country": "CH"}, at=crm_clock))
    lead.refresh_from_db()
    assert lead.country == "AT"  # ours is the more recent in real time


def test_a_tie_within_the_margin_goes_to_the_crm(destination):
    destination.clock_offset_seconds = 0
    now = timezone.now()
    assert most_recent(destination, ours_at=now, theirs_at=now - timedelta(seconds=10)) == "theirs"


def test_a_deleted_record_holds_the_lead_for_review(destination):
    lead, delivery = synced(destination)
    reconcile(destination, crm({}, archived=True))
    delivery.refresh_from_db()
    assert delivery.crm_state == LeadDelivery.CrmState.DELETED
    conflict = Conflict.objects.get()
    assert (conflict.kind, conflict.crm_record_id) == (Conflict.Kind.DELETED, "501")


def test_a_record_merged_into_another_is_held_for_review(destination):
    lead, delivery = synced(destination)
    survivor = CrmChange(crm_id="777", modified_at=timezone.now(), values={}, merged_ids=("501",))
    reconcile(destination, survivor)
    delivery.refresh_from_db()
    assert delivery.crm_state == LeadDelivery.CrmState.MERGED
    assert Conflict.objects.get().merged_into == "777"


def test_records_we_do_not_hold_are_left_alone(destination):
    synced(destination)
    change = CrmChange(crm_id="999", modified_at=timezone.now(), values={"phone": "+1"})
    assert reconcile(destination, change) == 0
    assert not LeadDecision.objects.exists()


@pytest.mark.parametrize(("a", "b", "equal"), [
    ("", None, True), ("true", True, True), ("5", 5, True), ("2026-11-30T10:00:00Z", "2026-11-30T10:00:00.000+00:00", True),
    (" Ada ", "Ada", True), ("Ada", "ada", False), ("1", "", False), ("02134", "2134", False),
    ("+4930111", "4930111", False), ("5.0", 5, True),
])
def test_values_compare_as_a_crm_stores_them(a, b, equal):
    assert same(a, b) is equal


@pytest.mark.parametrize(("source", "direction", "rule", "kind", "message"), [
    ("domain", Direction.BOTH, "", "hubspot", "computed"),
    ("email", Direction.FROM_CRM, "", "hubspot", "key that finds the person"),
    ("owner.email", Direction.FROM_CRM, "", "hubspot", "CRM user ID"),
    ("phone", Direction.BOTH, "", "rest", "REST destinations"),
    ("phone", Direction.FROM_CRM, Rule.OURS, "hubspot", "always takes the CRM's value"),
    ("marketing_opt_in", Direction.BOTH, Rule.OURS, "hubspot", "latest answer"),
])
def test_a_direction_or_rule_that_cannot_work_is_refused_per_field(source, direction, rule, kind, message):
    destination = Destination.objects.create(name="D", kind=kind, base_url="https://example.com")
    line = DestinationField(destination=destination, source=source, target="x", direction=direction, rule=rule)
    with pytest.raises(ValidationError) as refused:
        line.clean()
    assert message in str(refused.value)


def test_a_company_line_cannot_be_read_back():
    destination = Destination.objects.create(name="D", base_url="https://example.com", object_model="contact_company")
    line = DestinationField(destination=destination, source="company_name", target="name", object="company",
                            direction=Direction.BOTH)
    with pytest.raises(ValidationError, match="only sent to the CRM"):
        line.clean()


def test_default_rules_per_field():
    assert DestinationField(source="lifecycle_stage").effective_rule() == Rule.CRM_UNLESS_BLANK
    assert DestinationField(source="owner.hubspot_owner_id").effective_rule() == Rule.CRM_UNLESS_BLANK
    assert DestinationField(source="marketing_opt_in").effective_rule() == Rule.MOST_RECENT
    assert DestinationField(source="phone").effective_rule() == Rule.MANUAL



def test_preflight_names_a_read_back_field_the_crm_does_not_have(live_server):
    from delivery.preflight import destination_preflight
    from tests.factories import hubspot_destination

    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot")
    DestinationField.objects.create(destination=destination, source="attributes.plan", target="crmsync_no_such_plan",
                                    direction=Direction.FROM_CRM)
    report = destination_preflight(destination=destination)
    assert any("crmsync_no_such_plan is read back from the CRM" in problem for problem in report.problems)


def test_a_phone_typed_in_another_format_is_the_same_number(destination):
    lead, delivery = synced(destination)
    # The rep retyped our number with spaces: no change, no conflict.
    Lead.objects.filter(pk=lead.pk).update(phone="+4930222")
    assert reconcile(destination, crm({"phone": "+49 30 111"})) == 0
    assert not Conflict.objects.exists()


def test_a_phone_from_the_crm_is_stored_in_e164(destination):
    lead, _ = synced(destination)
    reconcile(destination, crm({"phone": "030 1234567"}))  # the lead's country is DE
    lead.refresh_from_db()
    assert lead.phone == "+49301234567"
