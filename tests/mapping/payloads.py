"""One payload per source kind, as its provider sends a new lead, and how to deliver it (signed,
keyed or tokened as the kind's preset requires). Where tests/fixtures/webhooks/ holds a real
payload it is the base, with the documented person fields the capture left empty filled in;
otherwise the body follows the provider's documented format (docs/wire-contracts.md).
Used by tests/mapping/test_starters.py (in process) and tests/test_presets_end_to_end.py
(through a real web server and worker)."""

from dataclasses import dataclass, field
import json
from urllib.parse import urlencode

from ingestion import signatures
from ingestion.credentials import source_secret_add
from ingestion.models import Source, SourceSecret
from ingestion.presets import PRESETS, Auth
from tests.fixtures import WEBHOOKS

SIGNING_SECRET = "whsec_presets"
PAGE_TOKEN = "EAAB-presets-page-token"


@dataclass(frozen=True)
class Sample:
    kind: str
    content_type: str
    body: bytes
    email: str  # what the lead should hold
    first_name: str
    last_name: str
    graph_lead: list[dict] = field(default_factory=list)  # Meta: the lead's field_data on the Graph API
    leadgen_id: str = ""


def _fixture(name: str) -> dict:
    return json.loads((WEBHOOKS / name).read_text())


def _json(kind: str, payload: dict, person: tuple[str, str, str], **extra) -> Sample:
    return Sample(kind, "application/json", json.dumps(payload).encode(), *person, **extra)


def _form(kind: str, fields: dict, person: tuple[str, str, str]) -> Sample:
    return Sample(kind, "application/x-www-form-urlencoded", urlencode(fields).encode(), *person)


def _stripe() -> Sample:
    # The captured checkout has the customer's email only; Checkout also sends the name typed on
    # the payment page as customer_details.name.
    event = _fixture("stripe-checkout.session.completed.json")
    event["data"]["object"]["customer_details"]["name"] = "Ada Lovelace"
    return _json("stripe", event, ("stripe@example.com", "Ada", "Lovelace"))


def _meta() -> Sample:
    notification = _fixture("meta-leadgen-webhook.fbsamples.json")
    leadgen_id = notification["entry"][0]["changes"][0]["value"]["leadgen_id"]
    # Meta's prefilled questions, by their documented names.
    lead = [{"name": "email", "values": ["Grace.Hopper@Example.com"]}, {"name": "full_name", "values": ["Grace Hopper"]},
            {"name": "phone_number", "values": ["+12025550143"]}]
    return _json("meta_lead_ads", notification, ("grace.hopper@example.com", "Grace", "Hopper"),
                 graph_lead=lead, leadgen_id=leadgen_id)


def _typeform() -> Sample:
    # The documented example, answered on a form whose refs are the form builder's own words.
    event = _fixture("typeform-form_response.json")
    response = event["form_response"]
    response["definition"]["fields"] = [
        {"id": "kR2jEmail01", "title": "Your work email?", "type": "email", "ref": "work_email"},
        {"id": "kR2jName002", "title": "Your name?", "type": "short_text", "ref": "full_name"}]
    response["answers"] = [
        {"type": "email", "email": "katherine@example.com", "field": {"id": "kR2jEmail01", "type": "email", "ref": "work_email"}},
        {"type": "text", "text": "Katherine Johnson", "field": {"id": "kR2jName002", "type": "short_text", "ref": "full_name"}}]
    return _json("typeform", event, ("katherine@example.com", "Katherine", "Johnson"))


def _tally() -> Sample:
    event = {"eventId": "a4cb511e-d513-4fa5-baee-b815d718dfd1", "eventType": "FORM_RESPONSE",
             "createdAt": "2023-06-28T15:00:21.889Z", "data": {
                 "responseId": "2wgx4n", "submissionId": "2wgx4n", "respondentId": "dwQKYm", "formId": "VwbNEw",
                 "formName": "Contact", "createdAt": "2023-06-28T15:00:21.000Z", "fields": [
                     {"key": "question_mVGEg3", "label": "Where can we reach you?", "type": "INPUT_EMAIL",
                      "value": "dorothy@example.com"},
                     {"key": "question_nPpOd2", "label": "First name", "type": "INPUT_TEXT", "value": "Dorothy"},
                     {"key": "question_3EKz4n", "label": "Last name", "type": "INPUT_TEXT", "value": "Vaughan"}]}}
    return _json("tally", event, ("dorothy@example.com", "Dorothy", "Vaughan"))


def _webflow() -> Sample:
    event = {"triggerType": "form_submission", "payload": {
        "name": "Contact Us", "siteId": "65427cf400e02b306eaa049c", "id": "6321ca84df3949bfc6752327",
        "formId": "65429eadebe8a9f3a30f62d0", "submittedAt": "2022-09-14T12:35:16.117Z",
        "data": {"First Name": "Zaphod", "Last Name": "Beeblebrox", "Email": "zaphod@heartofgold.example"}}}
    return _json("webflow", event, ("zaphod@heartofgold.example", "Zaphod", "Beeblebrox"))


def _calendly() -> Sample:
    # Event types that ask for one name field send first_name and last_name as null.
    event = {"event": "invitee.created", "created_at": "2024-03-01T10:00:00.000000Z", "payload": {
        "uri": "https://api.calendly.com/scheduled_events/EV1/invitees/INV1", "email": "Mary.Jackson@Example.com",
        "name": "Mary Jackson", "first_name": None, "last_name": None, "timezone": "America/New_York",
        "status": "active", "tracking": {"utm_source": "google", "utm_campaign": None},
        "questions_and_answers": [{"question": "Company name", "answer": "NACA", "position": 0}]}}
    return _json("calendly", event, ("mary.jackson@example.com", "Mary", "Jackson"))


def _gravity_forms() -> Sample:
    # The Webhooks add-on's "Select Fields" body: the keys are the names typed in its settings.
    return _json("gravity_forms", {"first_name": "Annie", "last_name": "Easley", "email": "annie@example.com"},
                 ("annie@example.com", "Annie", "Easley"))


def _jotform() -> Sample:
    raw = {"slug": "submit/2314/", "q3_email": "Margaret@Example.com", "q4_name": {"first": "Margaret", "last": "Hamilton"}}
    return _form("jotform", {"submissionID": "5864112873331", "formID": "2314", "formTitle": "Contact",
                             "rawRequest": json.dumps(raw)}, ("margaret@example.com", "Margaret", "Hamilton"))


def _unbounce() -> Sample:
    # As the captured body in the fixtures, for a page whose form asks for a name and an email.
    data = {"name": ["Hedy Lamarr"], "email": ["hedy@example.com"], "ip_address": ["203.0.113.20"],
            "page_uuid": ["7648177d-7323-4330-b4f9-9951a52138b6"], "variant": ["a"]}
    return _form("unbounce", {"page_url": "http://unbouncepages.com/wayfaring-147/", "page_name": "Wayfaring",
                              "page_id": "7648177d-7323-4330-b4f9-9951a52138b6", "variant": "a",
                              "data.json": json.dumps(data)}, ("hedy@example.com", "Hedy", "Lamarr"))


def _web_form() -> Sample:
    # A hand-made HTML form with a developer's own spelling of the names.
    return _form("web_form", {"Email": "Radia@Example.com", "firstName": "Radia", "last-name": "Perlman"},
                 ("radia@example.com", "Radia", "Perlman"))


def _json_webhook() -> Sample:
    return _json("json_webhook", {"email": "barbara@example.com", "name": "Barbara Liskov", "company": "MIT"},
                 ("barbara@example.com", "Barbara", "Liskov"))


SAMPLES: dict[str, Sample] = {s.kind: s for s in (
    _web_form(), _json_webhook(), _stripe(), _meta(), _typeform(), _tally(), _webflow(), _calendly(),
    _gravity_forms(), _jotform(), _unbounce())}
assert set(SAMPLES) == set(PRESETS), "every preset kind needs a sample"


def source_for(kind: str, *, graph_base_url: str = "") -> tuple[Source, str]:
    """A source of `kind` with the credential its preset authenticates with (and Meta's page
    token); returns the source and the credential its sender presents."""
    extra = {"graph_base_url": graph_base_url} if graph_base_url else {}
    source = Source.objects.create(name=PRESETS[kind].label, slug=kind.replace("_", "-"), kind=kind, **extra)
    purpose = {Auth.API_KEY: SourceSecret.Purpose.API_KEY, Auth.URL_TOKEN: SourceSecret.Purpose.URL_TOKEN,
               Auth.SIGNATURE: SourceSecret.Purpose.SIGNING}.get(source.auth_method)
    credential = ""
    if purpose:
        value = SIGNING_SECRET if purpose == SourceSecret.Purpose.SIGNING else ""
        _, credential = source_secret_add(source=source, purpose=purpose, value=value)
    if kind == "meta_lead_ads":
        source_secret_add(source=source, purpose=SourceSecret.Purpose.META_PAGE_TOKEN, value=PAGE_TOKEN)
    return source, credential


def request_for(source: Source, sample: Sample, credential: str) -> tuple[str, dict[str, str]]:
    """The intake path (with ?token= for URL-token senders) and the headers the sender sends."""
    headers = {"Content-Type": sample.content_type}
    path = source.intake_path
    if source.auth_method == Auth.SIGNATURE:
        headers.update(signatures.sign(source.preset.signature_scheme, secret=credential, body=sample.body))
    elif source.auth_method == Auth.API_KEY:
        headers["X-API-Key"] = credential
    elif source.auth_method == Auth.URL_TOKEN:
        path = f"{path}?token={credential}"
    return path, headers


def django_headers(headers: dict[str, str]) -> dict[str, str]:
    """Headers as keyword arguments of Django's test client."""
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()
            if name != "Content-Type"}
