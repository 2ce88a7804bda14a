"""The conflict-review queue in a real browser: a reviewer (resolve and view conflicts, view
leads, nothing on mappings) filters the queue, opens a conflict side by side, resolves it, and
bulk-resolves three more; the CRM ends up holding what was decided."""

from django.contrib.auth.models import Permission
from django.utils import timezone
import pytest

from delivery import services
from delivery.models import Conflict, DestinationField, LeadDelivery
from delivery.sync import destination_poll
from leads.models import Lead
from tests import sandbox_control as crm
from tests.browser import expect
from tests.factories import hubspot_destination
from tests.test_reviewer_browser import log_in

pytestmark = pytest.mark.django_db(transaction=True)


def dispatch() -> None:
    while services.push_dispatch_due():
        pass


def conflicts(live_server, destination, count: int) -> list[Lead]:
    """`count` leads whose phone changed here and, differently, in the CRM; and one whose company did."""
    leads = [Lead.objects.create(email=f"p{i}@example.com", first_name=f"P{i}", phone=f"+4930100{i}", company="Acme")
             for i in range(count + 1)]
    for lead in leads:
        services.push_jobs_enqueue(lead=lead)
    dispatch()
    for i, lead in enumerate(leads):
        record_id = LeadDelivery.objects.get(lead=lead).crm_record_id
        field, theirs, ours = ("company", "Acme CRM", "Acme Here") if i == count else ("phone", f"+4930900{i}", f"+4930200{i}")
        crm.hubspot_person_edit(live_server.url, record_id, {field: theirs}, person="rep")
        setattr(lead, field, ours)
        lead.field_times[field] = timezone.now().isoformat()
        lead.save()
    destination_poll(destination_id=destination.pk)
    assert Conflict.objects.filter(status=Conflict.Status.OPEN).count() == count + 1
    return leads


def test_a_reviewer_filters_opens_resolves_and_bulk_resolves_conflicts(live_server, browser_page, django_user_model,
                                                                       tmp_path):
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot", poll_interval_seconds=60)
    DestinationField.objects.filter(destination=destination, source__in=["phone", "company"]).update(
        direction=DestinationField.Direction.BOTH, rule=DestinationField.Rule.MANUAL)
    leads = conflicts(live_server, destination, 4)
    reviewer = django_user_model.objects.create_user("rita", "rita@example.com", "pw-rita-123", is_staff=True)
    reviewer.user_permissions.add(*Permission.objects.filter(
        content_type__app_label__in=["delivery", "leads"], codename__in=["resolve_conflict", "view_conflict", "view_lead"]))
    page = browser_page
    log_in(page, live_server, "rita", "pw-rita-123")

    # The admin index tells her how many conflicts wait.
    expect(page.locator("#conflict-box .conflict-count")).to_have_text("5")
    page.locator("#conflict-box a").click()

    # She filters the queue to the phone field.
    page.locator("#changelist-filter").get_by_role("link", name="phone", exact=True).click()
    page.wait_for_url("**target=phone**")
    rows = page.locator("#result_list tbody tr")
    rows.first.wait_for()
    assert rows.count() == 4

    # She opens the first conflict: the last synced value, ours and the CRM's side by side.
    first = Conflict.objects.filter(target="phone").order_by("created_at").first()
    page.locator("#result_list").get_by_role("link", name=str(first.pk), exact=True).click()
    sides = page.locator("table.conflict-sides")
    expect(sides.locator("td.base")).to_have_text(first.base)
    expect(sides.locator("td.ours")).to_have_text(first.ours)
    expect(sides.locator("td.theirs")).to_have_text(first.theirs)
    expect(sides).to_contain_text("CRM_UI:rep")
    page.screenshot(path=str(tmp_path / "conflict.png"))
    page.get_by_role("button", name="Take the CRM's").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Resolved: Took the CRM's")

    # Back in the filtered queue, three left: she selects them all and keeps ours.
    page.goto(f"{live_server.url}/admin/delivery/conflict/?target=phone")
    page.locator("#result_list tbody tr").first.wait_for()
    assert page.locator("#result_list tbody tr").count() == 3
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "bulk_keep_ours")
    page.locator("#changelist-form button[name=index]").click()
    expect(page.locator(".messagelist .success")).to_contain_text("3 conflict(s) resolved")

    # Every decision is recorded with her name, and the CRM holds what was decided.
    dispatch()
    resolved = Conflict.objects.filter(target="phone", status=Conflict.Status.RESOLVED)
    assert resolved.count() == 4 and set(resolved.values_list("resolved_by__username", flat=True)) == {"rita"}
    for lead in leads[:4]:
        lead.refresh_from_db()
        record = LeadDelivery.objects.get(lead=lead).crm_record_id
        assert crm.hubspot_read(live_server.url, record, properties=["phone"])["properties"]["phone"] == lead.phone
    assert Conflict.objects.filter(status=Conflict.Status.OPEN).count() == 1  # the company one waits
