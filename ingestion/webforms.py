"""Website forms that post straight to the intake from a visitor's browser.

A plain <form> submit navigates the browser, so its answer is what the visitor sees: it must be
a page, never raw JSON. When the source has a thank-you URL (Source.success_url) the answer is
303 See Other to it once the submission is stored (or was stored before: a resubmission); a
refusal goes to Source.error_url with ?error=<code>. Without those URLs, and for every other
client (fetch, the form script, webhooks), the answer stays JSON. The embeddable script,
static/crmsync/form.v1.js, posts with fetch and asks for JSON."""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.http import HttpRequest

from ingestion.models import Source
from ingestion.presets import FORM, MULTIPART, WEB_FORM_KIND


def is_browser_form_post(request: HttpRequest, source: Source) -> bool:
    """Form fields from a browser that asks for a page. fetch() sends Accept: */* by default
    (and the form script application/json): JSON is preferred for those, so they get JSON."""
    if source.kind != WEB_FORM_KIND or request.content_type not in FORM + MULTIPART:
        return False
    return request.get_preferred_type(["application/json", "text/html"]) == "text/html"


def redirect_target(source: Source, status: int, error: str = "") -> str:
    """The thank-you page after a stored submission, the error page with ?error=<code> after a
    refusal; "" when the source has no such page."""
    if 200 <= status < 300:
        return source.success_url
    return _with_query(source.error_url, error=error or "error") if source.error_url else ""


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(name, value) for name, value in parse_qsl(parts.query, keep_blank_values=True) if name not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))
