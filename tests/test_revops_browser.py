"""RevOps in a real browser, over the real product (gunicorn and a worker): a new web form whose
field names no starter mapping knows is mapped from its first, rejected submission, tested,
published, and the next lead reaches the sandbox CRM."""

from django.conf import settings
from django.db import connection
import pytest
import requests

from ingestion.models import Source, Submission
from tests.browser import expect
from tests.factories import hubspot_destination
from tests.stack import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

AUTH = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}


@pytest.fixture(autouse=True)
def show_process_logs_on_failure(request, stack):
    yield
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(stack.logs())


@pytest.fixture
def page(browser_page):
    """The browser page. ORM calls made while Playwright runs use a database connection of their
    own (Django's connections follow the running event loop's context); it is closed here, or
    PostgreSQL would keep a session open on the test database after the test."""
    yield browser_page
    connection.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def sandbox_contact(stack, email: str) -> dict | None:
    body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "EQ", "value": email}]}],
            "properties": ["email", "firstname", "lastname", "company"]}
    answer = requests.post(f"{stack.sandbox_url}/crm/v3/objects/contacts/search", json=body, headers=AUTH, timeout=10)
    results = answer.json()["results"]
    return results[0]["properties"] if results else None


def choose(page, field: str, target: str) -> None:
    page.locator("#sample-fields tr", has=page.locator("code", has_text=field)).locator("select").select_option(target)


def test_revops_maps_a_new_web_form_from_its_first_submission_and_the_next_lead_reaches_the_crm(
        stack, page, django_user_model):
    # given RevOps, a CRM and the product running
    django_user_model.objects.create_superuser("rosa", "rosa@example.com", "pw-rosa-123")
    hubspot_destination(base_url=stack.sandbox_url)
    stack.start_web()
    stack.start_worker()
    base = stack.base_url
    log_in(page, base, "rosa", "pw-rosa-123")

    # when she creates a web-form source in the admin
    page.goto(f"{base}/admin/ingestion/source/add/")
    page.locator("#id_name").press_sequentially("Partner signup")
    assert page.input_value("#id_slug") == "partner-signup"  # filled in from the name as she types
    page.select_option("#id_kind", "web_form")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("Created and published a starter mapping")
    source = Source.objects.get(slug="partner-signup")

    # and the form, built with its own field names, sends a first lead: rejected, no email found
    fields = {"your_mail": "Ada@Example.com", "vorname": "Ada", "nachname": "Lovelace", "firma": "Analytical Engines"}
    answer = requests.post(f"{base}{source.intake_path}", json=fields, timeout=10)
    assert answer.status_code == 202, answer.text
    first = answer.json()["id"]
    wait_for(lambda: Submission.objects.filter(pk=first, status=Submission.Status.REJECTED).exists(),
             timeout=60, what="the first submission to be rejected")

    # then the source page warns about the fields, and she maps them from that submission
    page.goto(f"{base}/admin/ingestion/source/{source.pk}/change/")
    warning = page.locator(".messagelist .warning").first
    expect(warning).to_contain_text("sends fields its mapping does not use")
    warning.get_by_role("link", name="from a sample").click()
    page.select_option("#id_submission", str(first))
    page.get_by_role("button", name="Show its fields").click()
    expect(page.locator("#sample-fields")).to_contain_text("…@Example.com")  # redacted
    assert "Ada@Example.com" not in page.content()
    choose(page, "your_mail", "email")
    choose(page, "vorname", "first_name")
    choose(page, "nachname", "last_name")
    choose(page, "firma", "company")
    page.get_by_role("button", name="Add to the draft").click()

    # and tests the draft on it: the preview shows the lead it would make, nothing saved
    expect(page.locator(".messagelist .success")).to_contain_text("Added to the draft")
    page.get_by_role("button", name="Test").click()
    page.wait_for_selector("h2:has-text('Resulting lead')")
    assert "None: this payload would become a lead." in page.content()
    lead_table = page.locator("table", has=page.locator("th", has_text="last_name")).inner_text()
    assert "ada@example.com" in lead_table and "Lovelace" in lead_table

    # and publishes it
    page.get_by_role("link", name="Publish the draft").click()
    expect(page.locator("pre.diff")).to_contain_text('"your_mail"')  # the diff shows the new alias
    page.fill("#note", "names of the partner signup form")
    page.get_by_role("button", name="Publish").click()
    expect(page.locator(".messagelist .success")).to_contain_text("New submissions use it from now on")
    page.goto(f"{base}/admin/ingestion/source/{source.pk}/change/")
    assert "sends fields its mapping does not use" not in page.content()  # mapped and published: no drift

    # then the next lead from the form reaches the CRM with its names
    answer = requests.post(f"{base}{source.intake_path}", timeout=10, json={
        "your_mail": "Grace@Example.com", "vorname": "Grace", "nachname": "Hopper", "firma": "US Navy"})
    assert answer.status_code == 202, answer.text
    contact = wait_for(lambda: sandbox_contact(stack, "grace@example.com"), timeout=60, what="the contact in the CRM")
    assert (contact["firstname"], contact["lastname"], contact["company"]) == ("Grace", "Hopper", "US Navy")
