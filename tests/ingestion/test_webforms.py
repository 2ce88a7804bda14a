"""Website forms posting straight to the intake: a visitor's plain form submit lands on a page
(303 to the thank-you or error URL), never on raw JSON; scripts and webhooks keep JSON."""

from django.contrib.staticfiles import finders
import pytest

from ingestion.models import Submission
from tests.factories import source_with_secret

pytestmark = pytest.mark.django_db

# What Chromium sends when a form navigates the page.
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
THANKS = "https://www.example.com/thanks"
OOPS = "https://www.example.com/contact?lang=en"


@pytest.fixture
def form():
    source, _ = source_with_secret(kind="web_form", success_url=THANKS, error_url=OOPS)
    return source


def test_a_browsers_form_post_is_stored_and_sent_to_the_thank_you_page(client, form):
    answer = client.post(form.intake_path, {"email": "ada@example.com"}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert (answer.status_code, answer["Location"]) == (303, THANKS)
    assert Submission.objects.get().payload == {"email": "ada@example.com"}


def test_a_form_encoded_browser_post_is_sent_there_too(client, form):
    answer = client.post(form.intake_path, "email=ada%40example.com", content_type="application/x-www-form-urlencoded",
                         HTTP_ACCEPT=BROWSER_ACCEPT)

    assert (answer.status_code, answer["Location"]) == (303, THANKS)


def test_a_resubmission_lands_on_the_thank_you_page_again_and_stores_nothing_new(client, form):
    fields = {"email": "ada@example.com", "_idempotency_key": "page-load-1"}
    answers = [client.post(form.intake_path, fields, HTTP_ACCEPT=BROWSER_ACCEPT) for _ in range(2)]

    assert [(a.status_code, a["Location"]) for a in answers] == [(303, THANKS)] * 2
    assert Submission.objects.count() == 1


def test_a_filled_honeypot_lands_on_the_thank_you_page_like_anyone(client, form):
    answer = client.post(form.intake_path, {"email": "bot@example.com", "_gotcha": "x"}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert (answer.status_code, answer["Location"]) == (303, THANKS)
    assert Submission.objects.get().status == Submission.Status.SPAM


def test_a_refusal_sends_the_visitor_to_the_error_page_with_its_code(client, form):
    form.max_body_bytes = 50
    form.save()

    answer = client.post(form.intake_path, {"message": "x" * 100}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert answer.status_code == 303
    assert answer["Location"] == "https://www.example.com/contact?lang=en&error=payload_too_large"
    assert not Submission.objects.exists()


def test_a_throttled_visitor_is_sent_to_the_error_page(client, form):
    form.ip_limit_per_minute = 1
    form.save()
    client.post(form.intake_path, {"email": "a@b.co"}, HTTP_ACCEPT=BROWSER_ACCEPT)

    answer = client.post(form.intake_path, {"email": "b@b.co"}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert answer["Location"].endswith("error=throttled")


def test_without_a_thank_you_url_the_browser_gets_json(client):
    source, _ = source_with_secret(kind="web_form")

    answer = client.post(source.intake_path, {"email": "a@b.co"}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert answer.status_code == 202 and answer.json()["status"] == "accepted" and "redirect" not in answer.json()


def test_without_an_error_url_a_refusal_stays_json(client):
    source, _ = source_with_secret(kind="web_form", success_url=THANKS, max_body_bytes=50)

    answer = client.post(source.intake_path, {"message": "x" * 100}, HTTP_ACCEPT=BROWSER_ACCEPT)

    assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"


@pytest.mark.parametrize("accept", ["*/*", "application/json", ""])
def test_fetch_and_scripts_get_json_naming_the_thank_you_page(client, form, accept):
    answer = client.post(form.intake_path, {"email": "a@b.co"}, HTTP_ACCEPT=accept)

    assert answer.status_code == 202
    assert answer.json() == {"id": Submission.objects.get().pk, "status": "accepted", "redirect": THANKS}


def test_json_asking_for_html_is_not_a_form_post(client, form):
    answer = client.post(form.intake_path, b'{"email": "a@b.co"}', content_type="application/json",
                         HTTP_ACCEPT=BROWSER_ACCEPT)

    assert answer.status_code == 202


def test_other_kinds_of_source_never_redirect(client):
    source, token = source_with_secret(kind="unbounce", success_url=THANKS)

    answer = client.post(f"{source.intake_path}?token={token}", "page_id=1", content_type="application/x-www-form-urlencoded",
                         HTTP_ACCEPT=BROWSER_ACCEPT)

    assert answer.status_code == 202 and "redirect" not in answer.json()


def test_a_refusal_before_the_body_is_read_still_carries_the_cors_header(client):
    source, _ = source_with_secret(kind="web_form", allowed_origins="https://www.example.com", max_body_bytes=50)

    answer = client.post(source.intake_path, {"message": "x" * 100}, HTTP_ORIGIN="https://www.example.com")

    # Without it the form script could not read the refusal and would retry it as a lost connection.
    assert answer.status_code == 413 and answer["Access-Control-Allow-Origin"] == "https://www.example.com"


def test_the_form_script_is_a_static_file_collectstatic_publishes():
    # Served by whitenoise from gunicorn (tests/test_web_forms_browser.py loads it from there).
    path = finders.find("crmsync/form.v1.js")

    assert path and "crypto.randomUUID" in open(path).read()
