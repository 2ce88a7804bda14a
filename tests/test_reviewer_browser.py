"""The admin in a real browser: a reviewer (a staff user with only the reviewer's permissions:
see submissions, reprocess them) corrects a rejected submission into a lead and dismisses
another; the widest pages fit a 1280 px screen; the source page's HTML form works as pasted."""

from django.contrib.auth.models import Permission
import pytest

from crmsync.pipeline import submission_process
from ingestion.models import Submission
from leads.models import Lead
from mapping.models import MappingSet
from tests.browser import expect
from tests.factories import EMAIL_RULE, hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db(transaction=True)

FIRST_NAME_RULE = {"source_keys": "first_name", "target": "first_name"}


def log_in(page, live_server, username: str, password: str) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def rejected(source, payload: dict) -> Submission:
    sub = submission(source=source, payload=payload)
    submission_process(submission_id=sub.pk)
    sub.refresh_from_db()
    assert sub.status == Submission.Status.REJECTED
    return sub


def test_a_reviewer_corrects_one_rejected_submission_into_a_lead_and_dismisses_another(
        live_server, browser_page, django_user_model):
    # given: a reviewer, who may see and reprocess submissions and nothing else
    reviewer = django_user_model.objects.create_user("rita", "rita@example.com", "pw-rita-123", is_staff=True)
    reviewer.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="ingestion", codename__in=["view_submission", "reprocess_submission"]))
    source = source_with_mapping(rules=(EMAIL_RULE, FIRST_NAME_RULE))
    typo = rejected(source, {"email": "bob@@x", "first_name": "Bob", "message": "Hi,\ncall me"})
    junk = rejected(source, {"email": "asdf@@asdf", "first_name": "asdf"})
    page = browser_page
    log_in(page, live_server, "rita", "pw-rita-123")

    # when: she opens the first rejected submission and corrects its email
    page.goto(f"{live_server.url}/admin/ingestion/submission/?status__exact=rejected")
    page.get_by_role("link", name=str(typo.pk), exact=True).click()
    page.get_by_role("link", name="Correct and reprocess").click()
    email = page.get_by_label("email", exact=True)
    assert email.input_value() == "bob@@x"
    expect(page.locator("tr.rejected-field")).to_contain_text("valid email")
    email.fill("bob@example.com")
    page.get_by_label("Note:").fill("typo on the form")
    page.get_by_role("button", name="Save the correction and reprocess").click()

    # then: she is told it became a lead, and it did
    expect(page.locator(".messagelist .success")).to_contain_text(
        "Corrected email ('bob@@x' → 'bob@example.com') and reprocessed: processed into lead bob@example.com")
    expect(page.locator(".field-corrections_table")).to_contain_text("rita")
    typo.refresh_from_db()
    assert typo.status == Submission.Status.PROCESSED and typo.lead == Lead.objects.get(email="bob@example.com")
    assert typo.payload["email"] == "bob@@x"  # the payload stays as received
    # Only what she changed: the browser sends the untouched message's line break as CRLF.
    assert typo.corrections.get().changes == {"email": ["bob@@x", "bob@example.com"]}

    # when: she dismisses the other one, first forgetting the reason
    page.goto(f"{live_server.url}/admin/ingestion/submission/?status__exact=rejected")
    page.get_by_role("link", name=str(junk.pk), exact=True).click()
    page.get_by_role("link", name="Dismiss").click()
    page.get_by_role("button", name="Dismiss").click()  # the browser refuses an empty required reason
    assert Submission.objects.get(pk=junk.pk).status == Submission.Status.REJECTED
    page.get_by_label("Reason:").fill("keyboard mash, not a person")
    page.get_by_role("button", name="Dismiss").click()

    # then: it is dismissed with her reason and the rejected list is empty
    expect(page.locator(".messagelist .success")).to_contain_text(f"Dismissed submission {junk.pk}")
    junk.refresh_from_db()
    assert (junk.status, junk.dismissed_reason) == (Submission.Status.DISMISSED, "keyboard mash, not a person")
    page.goto(f"{live_server.url}/admin/ingestion/submission/?status__exact=rejected")
    assert page.locator("#result_list tbody tr").count() == 0
    # and she never needed a mapping permission
    assert page.goto(f"{live_server.url}/admin/mapping/mappingset/").status == 403


def test_the_destination_and_mapping_pages_fit_a_1280_px_screen(live_server, browser_page, django_user_model):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-ops-123")
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")  # with its default field map
    source = source_with_mapping(rules=(EMAIL_RULE, FIRST_NAME_RULE))
    page = browser_page
    log_in(page, live_server, "ops", "pw-ops-123")

    for url in (f"/admin/delivery/destination/{destination.pk}/change/",
                f"/admin/mapping/mappingset/{MappingSet.objects.get(source=source).pk}/change/",
                f"/admin/ingestion/source/{source.pk}/change/"):
        page.goto(live_server.url + url)
        assert page.evaluate("document.documentElement.clientWidth") <= 1280
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280, url


def test_the_html_form_snippet_of_a_web_form_source_sends_a_lead_from_a_page(live_server, browser_page, operator):
    source = source_with_mapping(slug="contact", rules=(EMAIL_RULE, FIRST_NAME_RULE))
    host = live_server.url.split("://")[1]
    snippet = operator.get(f"/admin/ingestion/source/{source.pk}/change/", HTTP_HOST=host).context["intake"]["html"]
    page = browser_page

    # A page of the operator's site, with the snippet pasted in as it is.
    page.set_content(f"<html><body>{snippet}</body></html>")
    key = page.locator(f"input[name='{source.idempotency_field}']").input_value()
    page.fill("input[name=email]", "grace@example.com")
    page.fill("input[name=first_name]", "Grace")
    with page.expect_response(lambda answer: answer.url.endswith(source.intake_path)) as answer:
        page.click("button[type=submit]")

    assert len(key) >= 16  # made by the snippet's script when the page loaded
    assert answer.value.status in (202, 303)
    stored = Submission.objects.get(source=source)
    assert stored.payload["email"] == "grace@example.com"
    assert stored.status == Submission.Status.RECEIVED  # a person leaves the honeypot empty: not spam
