"""A website's own form posting straight to crmsync, in a real browser. The website is a small
HTTP server of its own (another origin than crmsync), so the cross-origin rules apply as they do
for a real website: CORS for the script's fetch, a cross-site navigation for the plain form."""

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import re
import threading

import pytest

from ingestion.models import Submission
from tests.factories import source_with_secret

pytestmark = pytest.mark.django_db(transaction=True)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
THANKS = "<!doctype html><title>Thanks</title><h1>Thank you</h1>"


class Website:
    """Serves `pages` (path -> HTML) on its own port: the site the form lives on."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                html = pages.get(self.path.split("?")[0])
                raw = (html or "not found").encode()
                self.send_response(200 if html else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def website():
    site = Website()
    yield site
    site.close()


def contact_form(website: Website, crmsync_url: str, *, script: bool):
    """A contact page posting to a new web-form source, and its thank-you page."""
    source, _ = source_with_secret(kind="web_form", slug="contact", allowed_origins=website.origin,
                                   success_url=f"{website.origin}/thanks")
    script_tag = f'<script src="{crmsync_url}/static/crmsync/form.v1.js" defer></script>' if script else ""
    website.pages["/contact"] = f"""<!doctype html><title>Contact</title>
        <form action="{crmsync_url}{source.intake_path}" method="post" {"data-crmsync" if script else ""}>
          <label>Email <input name="email" value="ada@example.com"></label>
          <label>Name <input name="first_name" value="Ada"></label>
          <button type="submit">Send</button>
        </form>{script_tag}"""
    website.pages["/thanks"] = THANKS
    return source


def test_a_plain_form_sent_twice_lands_on_the_thank_you_page_and_makes_one_submission(live_server, browser_page,
                                                                                      website):
    # given: a page with a plain form, no script, no key
    page = browser_page
    source = contact_form(website, live_server.url, script=False)
    site = website.origin
    posts = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    # when: the visitor sends it, goes back, and sends it again
    page.goto(f"{site}/contact")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(f"{site}/thanks")
    page.go_back()
    page.wait_for_url(f"{site}/contact")
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(f"{site}/thanks")

    # then: both posts reached crmsync, the visitor saw the thank-you page, one submission
    assert page.get_by_role("heading").inner_text() == "Thank you"
    assert len(posts) == 2
    submission = Submission.objects.get()
    assert submission.payload == {"email": "ada@example.com", "first_name": "Ada"}
    assert source.counters.get(outcome="duplicate").count == 1


def test_the_form_script_survives_a_dropped_connection_with_one_submission(stack, browser_page, website):
    # given: crmsync under gunicorn, serving the form script, and a page that loads it
    stack.start_web()
    page = browser_page
    source = contact_form(website, stack.base_url, script=True)
    site = website.origin
    attempts = []

    def drop_the_first_reply(route):
        attempts.append(route.request.post_data)
        if len(attempts) == 1:
            route.fetch()  # crmsync receives and stores it...
            route.abort("connectionreset")  # ...and the reply never reaches the browser
        else:
            route.continue_()

    page.route(f"{stack.base_url}{source.intake_path}", drop_the_first_reply)

    # when: the visitor sends the form once
    page.goto(f"{site}/contact")
    key = page.locator("input[name=_idempotency_key]").input_value()
    page.get_by_role("button", name="Send").click()
    page.wait_for_url(f"{site}/thanks")

    # then: the script retried with the same key, crmsync kept one submission, the visitor thanked
    assert UUID.fullmatch(key)
    assert len(attempts) == 2 and attempts[0] == attempts[1] and f"_idempotency_key={key}" in attempts[0]
    submission = Submission.objects.get()
    assert submission.idempotency_key == key
    assert submission.payload == {"email": "ada@example.com", "first_name": "Ada"}
    assert source.counters.get(outcome="duplicate").count == 1


def test_the_form_script_sends_a_double_click_once(stack, browser_page, website):
    stack.start_web()
    page = browser_page
    contact_form(website, stack.base_url, script=True)
    site = website.origin
    posts = []
    page.on("request", lambda request: posts.append(request) if request.method == "POST" else None)

    page.goto(f"{site}/contact")
    page.wait_for_selector("form[data-crmsync-ready]")
    page.get_by_role("button", name="Send").dblclick()
    page.wait_for_url(f"{site}/thanks")

    assert len(posts) == 1 and Submission.objects.count() == 1


def test_the_form_script_shows_a_refusal_beside_its_fields_and_lets_the_visitor_resend(live_server, browser_page,
                                                                                        website):
    # given: crmsync refusing the post with a message about the email field (the shape of
    # intake errors that name fields: {"error", "detail", "fields": {name: message}})
    page = browser_page
    source = contact_form(website, live_server.url, script=True)
    site = website.origin
    refusal = '{"error": "invalid_payload", "detail": "Please check the form.", "fields": {"email": "Enter an email."}}'
    page.route(f"{live_server.url}{source.intake_path}", lambda route: route.fulfill(
        status=400, content_type="application/json", body=refusal, headers={"Access-Control-Allow-Origin": site}))

    # when: the visitor sends it
    page.goto(f"{site}/contact")
    page.get_by_role("button", name="Send").click()

    # then: words, not JSON, and the form can be sent again
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("alert").inner_text() == "Please check the form."
    email = page.get_by_label("Email")
    assert email.get_attribute("aria-invalid") == "true"
    assert page.locator(".crmsync-field-error").inner_text() == "Enter an email."
    assert page.get_by_role("button", name="Send").is_enabled()
    assert "invalid_payload" not in page.content()
