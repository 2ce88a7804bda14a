"""The flat view of each provider's payload: what a RevOps person can name in a mapping rule.
Bodies come from tests/fixtures/webhooks/ where a provider published one, else they are
built from the provider's documented format."""

import copy
import json
from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from ingestion.parsing import parse_body
from ingestion.presets import PRESETS
from mapping.extractors import SHAPES, dotted_get, extract, shape_for_kind
from tests.fixtures import WEBHOOKS

FIXTURES = WEBHOOKS


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def stored(kind: str, fields: dict) -> dict:
    """The payload as the intake stores it: form-encoded, through the kind's own parser."""
    body = urlencode(fields).encode()
    return parse_body(body, "application/x-www-form-urlencoded", PRESETS[kind]).payload


# --- Typeform -------------------------------------------------------------------------------


def test_typeform_answers_are_keyed_by_the_field_ref_from_the_form_definition():
    view = extract(fixture("typeform-form_response.json"), shape="typeform")

    assert view["readable_ref_email"] == "laura@example.com"
    assert view["readable_ref_short_text"] == "Laura"
    assert view["readable_ref_date"] == "2005-10-15"
    assert view["readable_ref_number1"] == 5
    assert view["readable_ref_legal"] is True
    assert view["readable_ref_yes_no"] is False


def test_typeform_answers_are_also_keyed_by_field_id():
    view = extract(fixture("typeform-form_response.json"), shape="typeform")

    assert view["SMEUb7VJz92Q"] == "laura@example.com"
    assert view["M5tXK5kG7IeA"] == view["readable_ref_calendly"]


def test_typeform_choices_become_their_labels():
    view = extract(fixture("typeform-form_response.json"), shape="typeform")

    assert view["readable_ref_multiple_choice"] == "London"
    assert view["readable_ref_picture_choice"] == ["London", "Sydney"]
    assert view["readable_ref_calendly"] == "https://calendly.com/scheduled_events/EVENT_TYPE/invitees/INVITEE"


def test_typeform_hidden_fields_variables_and_envelope_are_included():
    view = extract(fixture("typeform-form_response.json"), shape="typeform")

    assert view["hidden.user_id"] == "abc123456"
    assert (view["variables.score"], view["variables.name"], view["calculated.score"]) == (4, "typeform", 9)
    assert view["token"] == "a3a12ec67a1365927098a606107fac15"
    assert (view["submitted_at"], view["form_id"], view["event_id"]) == ("2018-01-18T18:17:02Z", "lT4Z3j", "LtWXD3crgy")


def test_typeform_other_choice_and_ref_on_the_answer_itself_are_read():
    payload = {"form_response": {"answers": [
        {"type": "choice", "choice": {"other": "Lisbon"}, "field": {"id": "a1", "ref": "city"}},
        {"type": "choices", "choices": {"labels": ["Red"], "other": "Teal"}, "field": {"id": "a2", "ref": "colours"}},
        {"type": "phone_number", "phone_number": "+447700900123", "field": {"id": "a3", "ref": "phone"}},
    ]}}

    view = extract(payload, shape="typeform")

    assert (view["city"], view["colours"], view["phone"]) == ("Lisbon", ["Red", "Teal"], "+447700900123")


def test_typeform_email_phone_and_website_answers_are_also_keyed_by_their_field_type():
    view = extract(fixture("typeform-form_response.json"), shape="typeform")

    assert view["email"] == view["readable_ref_email"] == "laura@example.com"


def test_typeform_keys_by_type_come_after_refs_and_from_the_first_answer_of_that_type():
    payload = {"form_response": {
        "definition": {"fields": [{"id": "p1", "type": "phone_number"}]},
        "answers": [
            {"type": "email", "email": "work@example.com", "field": {"id": "e1", "type": "email", "ref": "work_email"}},
            {"type": "email", "email": "home@example.com", "field": {"id": "e2", "type": "email", "ref": "home_email"}},
            {"type": "text", "text": "not an address", "field": {"id": "t1", "type": "short_text", "ref": "email"}},
            {"type": "phone_number", "phone_number": "+447700900123", "field": {"id": "p1"}},
            {"type": "url", "url": "https://example.com", "field": {"id": "w1", "type": "website"}}]}}

    view = extract(payload, shape="typeform")

    assert view["email"] == "not an address"  # a ref named email is what the form builder meant
    assert (view["phone_number"], view["website"]) == ("+447700900123", "https://example.com")


# --- Stripe ---------------------------------------------------------------------------------


def test_stripe_checkout_session_gives_the_customer_email_and_the_event():
    view = extract(fixture("stripe-checkout.session.completed.json"), shape="stripe")

    assert view["customer_details.email"] == "stripe@example.com"
    assert view["event.type"] == "checkout.session.completed"
    assert view["event.id"] == "evt_000000000000000000000000"
    assert (view["amount_total"], view["currency"], view["customer"]) == (3000, "usd", "cus_00000000000000")
    assert view["payment_method_types"] == ["card"]
    assert "customer_details.phone" in view and view["customer_details.phone"] is None
    assert not any(key.startswith("metadata.") for key in view)


def test_stripe_older_checkout_shape_without_api_version_reads_the_same():
    view = extract(fixture("stripe-checkout.session.completed.payment_mode.json"), shape="stripe")

    assert view["customer_details.email"] == "example@example.com"
    assert view["event.created"] == 1326853478


def test_stripe_customer_created_gives_the_customer_object():
    view = extract(fixture("stripe-customer.created.json"), shape="stripe")

    assert view["id"] == "cus_00000000000000"
    assert view["event.type"] == "customer.created"
    assert view["email"] is None and view["description"] == "(created by Stripe CLI)"
    assert view["invoice_settings.footer"] is None


def test_stripe_metadata_address_and_checkout_custom_fields_are_dotted_keys():
    event = fixture("stripe-checkout.session.completed.json")
    session = event["data"]["object"]
    session["metadata"] = {"utm_source": "newsletter", "utm_campaign": "spring"}
    session["customer_details"].update(name="Ada Lovelace", address={"country": "GB", "city": "London"})
    session["custom_fields"] = [
        {"key": "company", "label": {"custom": "Company", "type": "custom"}, "type": "text", "text": {"value": "Acme"}},
        {"key": "seats", "type": "numeric", "numeric": {"value": "12"}},
        {"key": "plan", "type": "dropdown",
         "dropdown": {"options": [{"label": "Pro", "value": "pro"}], "value": "pro"}},
    ]

    view = extract(event, shape="stripe")

    assert (view["metadata.utm_source"], view["metadata.utm_campaign"]) == ("newsletter", "spring")
    assert (view["customer_details.name"], view["customer_details.address.country"]) == ("Ada Lovelace", "GB")
    assert view["custom_fields.company"] == "Acme"
    assert (view["custom_fields.seats"], view["custom_fields.plan"]) == ("12", "pro")


def test_stripe_current_api_checkout_object_reads_nested_details():
    event = {"id": "evt_1", "type": "checkout.session.completed",
             "data": {"object": fixture("stripe-openapi-fixture.checkout.session.object.json")}}

    view = extract(event, shape="stripe")

    assert view["customer_details.email"] == "example@example.com"
    assert view["customer_details.address.country"] is None
    assert view["collected_information.shipping_details.name"] == "name"
    assert view["shipping_address_collection.allowed_countries"] == ["SC"]


# --- Meta Lead Ads --------------------------------------------------------------------------


def graph_lead(**overrides) -> dict:
    """A lead as GET /{leadgen_id} returns it (ingestion.meta stores these as enrichment)."""
    lead = {"id": "233370042045345", "created_time": "2021-08-27T18:12:06+0000", "ad_id": "238496",
            "form_id": "172036835026334", "field_data": [
                {"name": "email", "values": ["ada@example.com"]},
                {"name": "full_name", "values": ["Ada Lovelace"]},
                {"name": "which_products?", "values": ["Sync", "Audit"]},
            ]}
    return {**lead, **overrides}


def test_meta_lead_field_data_gives_one_value_or_a_list_with_the_lead_ids():
    view = extract(fixture("meta-leadgen-webhook.fbsamples.json"), shape="meta_field_data",
                   enrichment={"leads": [graph_lead()]})

    assert (view["email"], view["full_name"]) == ("ada@example.com", "Ada Lovelace")
    assert view["which_products?"] == ["Sync", "Audit"]
    assert (view["leadgen_id"], view["form_id"], view["ad_id"]) == ("233370042045345", "172036835026334", "238496")
    assert view["created_time"] == "2021-08-27T18:12:06+0000"
    assert view["page_id"] == "138124712925158"


def test_meta_without_fetched_leads_gives_the_notification_ids_only():
    view = extract(fixture("meta-leadgen-webhook.fbsamples.json"), shape="meta_field_data")

    assert view == {"leadgen_id": "233370042045345", "form_id": "172036835026334",
                    "created_time": 1630087926, "page_id": "138124712925158"}


# --- Tally ----------------------------------------------------------------------------------


def tally_event() -> dict:
    """Tally's documented FORM_RESPONSE event: data.fields[{key, label, type, value, options}]."""
    options = [{"id": "opt-a", "text": "Starter"}, {"id": "opt-b", "text": "Growth"}]
    return {"eventId": "a4cb511e-d513-4fa5-baee-b815d718dfd1", "eventType": "FORM_RESPONSE",
            "createdAt": "2023-06-28T15:00:21.889Z", "data": {
                "responseId": "2wgx4n", "submissionId": "2wgx4n", "respondentId": "dwQKYm", "formId": "VwbNEw",
                "formName": "Webhook payloads", "createdAt": "2023-06-28T15:00:21.000Z", "fields": [
                    {"key": "question_mVGEg3", "label": "Email", "type": "INPUT_EMAIL", "value": "ada@example.com"},
                    {"key": "question_nPpOd2", "label": "Plan", "type": "MULTIPLE_CHOICE", "value": ["opt-b"],
                     "options": options},
                    {"key": "question_3EKz4n", "label": "Interests", "type": "CHECKBOXES",
                     "value": ["opt-a", "opt-b"], "options": options},
                    {"key": "question_3EKz4n_opt-a", "label": "Interests (Starter)", "type": "CHECKBOXES",
                     "value": True},
                    {"key": "question_w4Q4Xv", "label": "Region", "type": "DROPDOWN", "value": ["unknown-id"],
                     "options": options},
                    {"key": "question_utm", "label": "utm_source", "type": "HIDDEN_FIELDS", "value": "linkedin"},
                ]}}


def test_tally_fields_are_keyed_by_key_and_by_label():
    view = extract(tally_event(), shape="tally")

    assert view["question_mVGEg3"] == view["Email"] == "ada@example.com"
    assert view["utm_source"] == "linkedin"
    assert view["Interests (Starter)"] is True


def test_tally_email_and_phone_fields_are_also_keyed_by_their_input_type():
    event = tally_event()
    event["data"]["fields"].append({"key": "question_ph", "label": "Mobile?", "type": "INPUT_PHONE_NUMBER",
                                    "value": "+447700900123"})

    view = extract(event, shape="tally")

    assert (view["email"], view["phone_number"]) == ("ada@example.com", "+447700900123")


def test_tally_choice_option_ids_become_their_text():
    view = extract(tally_event(), shape="tally")

    assert view["Plan"] == ["Growth"]
    assert view["question_3EKz4n"] == ["Starter", "Growth"]
    assert view["Region"] == ["unknown-id"]  # an id with no option is kept as sent


def test_tally_envelope_ids_are_included():
    view = extract(tally_event(), shape="tally")

    assert (view["formId"], view["formName"], view["responseId"]) == ("VwbNEw", "Webhook payloads", "2wgx4n")
    assert view["eventId"] == "a4cb511e-d513-4fa5-baee-b815d718dfd1"


# --- Webflow, Calendly, Gravity Forms -------------------------------------------------------


def test_webflow_form_data_by_field_name_with_the_submission_and_form_name():
    payload = {"triggerType": "form_submission", "payload": {
        "name": "Contact Us", "siteId": "65427cf400e02b306eaa049c", "id": "6321ca84df3949bfc6752327",
        "formId": "65429eadebe8a9f3a30f62d0", "submittedAt": "2022-09-14T12:35:16.117Z",
        "data": {"First Name": "Zaphod", "Last Name": "Beeblebrox", "email": "zaphod@heartofgold.ai",
                 "Phone Number": 15550000000, "name": "Z. B."},
    }}

    view = extract(payload, shape="webflow")

    assert (view["First Name"], view["email"], view["Phone Number"]) == ("Zaphod", "zaphod@heartofgold.ai", 15550000000)
    assert (view["id"], view["submittedAt"]) == ("6321ca84df3949bfc6752327", "2022-09-14T12:35:16.117Z")
    assert (view["form_name"], view["name"]) == ("Contact Us", "Z. B.")


def test_calendly_invitee_with_tracking_and_answers_by_question():
    payload = {"event": "invitee.created", "created_at": "2024-03-01T10:00:00.000000Z", "payload": {
        "uri": "https://api.calendly.com/scheduled_events/EV1/invitees/INV1", "email": "ada@example.com",
        "name": "Ada Lovelace", "first_name": "Ada", "last_name": "Lovelace", "timezone": "Europe/London",
        "text_reminder_number": "+447700900123", "status": "active",
        "tracking": {"utm_source": "google", "utm_campaign": "spring", "utm_medium": None, "salesforce_uuid": None},
        "questions_and_answers": [
            {"question": "Company name", "answer": "Analytical Engines Ltd", "position": 0},
            {"question": "Team size?", "answer": "11-50", "position": 1},
        ],
        "scheduled_event": {"name": "Demo", "start_time": "2024-03-05T15:00:00.000000Z"},
    }}

    view = extract(payload, shape="calendly")

    assert (view["email"], view["first_name"], view["last_name"]) == ("ada@example.com", "Ada", "Lovelace")
    assert (view["timezone"], view["text_reminder_number"]) == ("Europe/London", "+447700900123")
    assert (view["tracking.utm_source"], view["tracking.utm_campaign"]) == ("google", "spring")
    assert view["Company name"] == "Analytical Engines Ltd" and view["Team size?"] == "11-50"
    assert view["scheduled_event.name"] == "Demo"
    assert "questions_and_answers" not in view


def test_gravity_forms_entry_keeps_field_ids_with_dots():
    entry = {"id": "42", "form_id": "3", "date_created": "2024-03-01 10:00:00",
             "source_url": "https://example.com/contact", "status": "active",
             "1.3": "Ada", "1.6": "Lovelace", "2": "ada@example.com", "4.1": "Newsletter", "4.2": ""}

    view = extract(entry, shape="gravity_forms")

    assert (view["1.3"], view["1.6"], view["2"]) == ("Ada", "Lovelace", "ada@example.com")
    assert (view["id"], view["form_id"], view["source_url"]) == ("42", "3", "https://example.com/contact")
    assert view["date_created"] == "2024-03-01 10:00:00" and view["4.2"] == ""


# --- Jotform, Unbounce (through the intake's own parsers) ----------------------------------


def test_jotform_answers_by_raw_key_and_by_unique_name():
    raw = {"slug": "submit/2314/", "q3_email": "ada@example.com", "q4_name": {"first": "Ada", "last": "Lovelace"},
           "q5_phone": {"full": "(020) 7946 0958"}, "q6_interests": ["Sync", "Audit"]}
    payload = stored("jotform", {"submissionID": "5864112873331", "formID": "2314", "formTitle": "Contact",
                                 "rawRequest": json.dumps(raw)})

    view = extract(payload, shape="jotform")

    assert view["q3_email"] == view["email"] == "ada@example.com"
    assert (view["name.first"], view["name.last"], view["q4_name.first"]) == ("Ada", "Lovelace", "Ada")
    assert view["phone.full"] == "(020) 7946 0958"
    assert view["interests"] == ["Sync", "Audit"]
    assert (view["submissionID"], view["formID"], view["formTitle"]) == ("5864112873331", "2314", "Contact")
    assert view["slug"] == "submit/2314/"


def test_unbounce_published_capture_is_unwrapped_from_its_arrays():
    captured = fixture("unbounce-form_submit.urlencoded.json")
    body = captured["raw_body"].encode()
    payload = parse_body(body, "application/x-www-form-urlencoded", PRESETS["unbounce"]).payload

    view = extract(payload, shape="unbounce")

    assert view["userfield1"] == "asdfasdfad"
    assert view["date_submitted"] == "2017-11-15"
    assert view["page_id"] == "7648177d-7323-4330-b4f9-9951a52138b6"
    assert (view["page_name"], view["variant"]) == ("Wayfaring", "a")
    assert view["page_url"] == "http://unbouncepages.com/wayfaring-147/"
    assert "data.xml" not in view


def test_unbounce_email_is_unwrapped_and_repeated_checkboxes_stay_a_list():
    data = {"email": ["ada@example.com"], "interests": ["Sync", "Audit"], "comments": []}
    payload = stored("unbounce", {"page_id": "p1", "variant": "b", "data.json": json.dumps(data)})

    view = extract(payload, shape="unbounce")

    assert view["email"] == "ada@example.com"
    assert view["interests"] == ["Sync", "Audit"] and view["comments"] == []
    assert (view["page_id"], view["variant"]) == ("p1", "b")


# --- Generic shapes -------------------------------------------------------------------------


def test_flat_keeps_top_level_fields_and_dots_nested_objects():
    payload = {"email": "ada@example.com", "tags": ["a", "b"], "utm": {"source": "google", "extra": {"x": 1}}}

    view = extract(payload, shape="flat")

    assert view == {"email": "ada@example.com", "tags": ["a", "b"], "utm.source": "google", "utm.extra.x": 1}


def test_flat_prefers_a_key_sent_with_dots_over_the_same_nested_path():
    view = extract({"utm": {"source": "nested"}, "utm.source": "literal"}, shape="flat")

    assert view["utm.source"] == "literal"


def test_fields_array_keys_by_id_or_key_and_by_label():
    payload = {"form": "contact", "fields": [
        {"id": "f1", "label": "Email address", "value": "ada@example.com"},
        {"key": "company", "label": "Company", "value": "Acme"},
        {"id": 7, "title": "Seats", "value": 12},
    ]}

    view = extract(payload, shape="fields_array")

    assert view["f1"] == view["Email address"] == "ada@example.com"
    assert view["company"] == view["Company"] == "Acme"
    assert view["7"] == view["Seats"] == 12
    assert view["form"] == "contact" and "fields" not in view


def test_fields_array_reads_data_fields_too():
    view = extract({"data": {"fields": [{"key": "email", "label": "Email", "value": "a@example.com"}]}},
                   shape="fields_array")

    assert view["email"] == view["Email"] == "a@example.com" and "data.fields" not in view


def test_dotted_flattens_everything_with_list_indexes():
    view = extract(fixture("meta-leadgen-webhook.fbsamples.json"), shape="dotted")

    assert view["entry.0.id"] == "138124712925158"
    assert view["entry.0.changes.0.value.leadgen_id"] == "233370042045345"
    assert view["entry.0.changes.0.field"] == "leadgen"
    assert view["object"] == "page"


def test_dotted_keeps_lists_of_scalars_whole_as_well_as_by_index():
    view = extract({"tags": ["a", "b"], "empty": [], "none": {}}, shape="dotted")

    assert view == {"tags": ["a", "b"], "tags.0": "a", "tags.1": "b", "empty": []}


# --- dotted_get -----------------------------------------------------------------------------


def test_dotted_get_walks_dicts_and_list_indexes():
    payload = fixture("meta-leadgen-webhook.fbsamples.json")

    assert dotted_get(payload, "entry.0.changes.0.value.form_id") == "172036835026334"
    assert dotted_get(payload, "object") == "page"


def test_dotted_get_prefers_keys_that_contain_dots():
    entry = {"1.3": "Ada", "1": {"3": "nested"}, "data.json": {"email": ["ada@example.com"]}}

    assert dotted_get(entry, "1.3") == "Ada"
    assert dotted_get(entry, "data.json.email.0") == "ada@example.com"


def test_dotted_get_falls_back_to_splitting_when_the_longest_key_leads_nowhere():
    payload = {"a.b": {"x": 1}, "a": {"b": {"c": 2}}}

    assert dotted_get(payload, "a.b.c") == 2
    assert dotted_get(payload, "a.b.x") == 1


@pytest.mark.parametrize("path", ["missing", "entry.5.id", "entry.x", "entry.-1.id", "object.deeper",
                                  "entry.0.id.0", ""])
def test_dotted_get_gives_none_for_missing_paths(path):
    payload = fixture("meta-leadgen-webhook.fbsamples.json")

    assert dotted_get(payload, path) is None


def test_dotted_get_on_non_containers_is_none():
    assert dotted_get("text", "a") is None and dotted_get(None, "0") is None and dotted_get([1], "a") is None


# --- Shapes and kinds -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(PRESETS))
def test_every_source_kind_has_a_default_shape(kind):
    assert shape_for_kind(kind) in SHAPES


@pytest.mark.parametrize(("kind", "shape"), [("web_form", "flat"), ("json_webhook", "flat"), ("stripe", "stripe"),
                                             ("meta_lead_ads", "meta_field_data"), ("unbounce", "unbounce")])
def test_defaults_follow_the_provider(kind, shape):
    assert shape_for_kind(kind) == shape


def test_an_unknown_kind_or_shape_is_a_configuration_error():
    with pytest.raises(ValueError, match="no_such_kind"):
        shape_for_kind("no_such_kind")
    with pytest.raises(ValueError, match="no_such_shape"):
        extract({}, shape="no_such_shape")


@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_shape_reads_an_empty_payload_as_an_empty_view(shape):
    assert extract({}, shape=shape) == {}


# --- Odd data -------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "payload", "enrichment", "expected"), [
    ("typeform", {"form_response": {"answers": "not a list", "token": "t1"}}, None, {"token": "t1"}),
    ("typeform", {"form_response": {"answers": [None, "x", {"field": "x"}, {"type": ["email"], "field": {"id": "a"}}],
                                    "definition": {"fields": [{"id": ["x"], "ref": {}}]}}}, None, {"a": None}),
    ("typeform", {"form_response": "oops"}, None, {}),
    ("tally", {"data": {"fields": None}}, None, {}),
    ("tally", {"data": {"fields": [{"key": "k", "value": [{"id": 1}], "options": [{"id": ["x"]}, "y"]}]}}, None,
     {"k": [{"id": 1}]}),
    ("tally", {"data": "fields"}, None, {}),
    ("stripe", {"data": {"object": "cs_123"}, "type": "x"}, None, {"event.type": "x"}),
    ("stripe", {"data": {"object": {"custom_fields": [{"key": "k", "type": ["t"]}, "s"]}}}, None,
     {"custom_fields": [{"key": "k", "type": ["t"]}, "s"]}),
    ("meta_field_data", {"entry": "x"}, {"leads": "x"}, {}),
    ("meta_field_data", {"entry": [{"changes": [None, {"value": []}]}]},
     {"leads": [{"field_data": [{"name": None}, {"name": "email", "values": "a@example.com"}]}]},
     {"email": "a@example.com"}),
    ("jotform", {"rawRequest": "{not json", "formID": "1"}, None, {"formID": "1"}),
    ("jotform", {"rawRequest": ["q1_email"]}, None, {}),
    ("jotform", {"rawRequest": '{"q1_email": "a@example.com"}'}, None,
     {"q1_email": "a@example.com", "email": "a@example.com"}),
    ("unbounce", {"data.json": [1, 2], "page_id": "p"}, None, {"page_id": "p"}),
    ("unbounce", {"data.json": {"email": "not-an-array"}}, None, {"email": "not-an-array"}),
    ("webflow", {"payload": {"data": "x", "name": "Contact"}}, None, {"form_name": "Contact"}),
    ("calendly", {"payload": {"email": "a@example.com", "questions_and_answers": {"q": "a"}}}, None,
     {"email": "a@example.com"}),
    ("calendly", {"payload": {"questions_and_answers": [{"question": ["q"], "answer": "a"}, 3]}}, None, {}),
    ("fields_array", {"fields": [{"value": "orphan"}, "x", {"id": True, "label": None, "value": 1}]}, None, {}),
    ("fields_array", {"fields": {"email": {"id": "email", "title": "Email", "value": "a@example.com"}}}, None,
     {"email": "a@example.com", "Email": "a@example.com"}),
])
def test_odd_data_gives_a_partial_view_instead_of_raising(shape, payload, enrichment, expected):
    assert extract(payload, shape=shape, enrichment=enrichment) == expected


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("payload", [None, "text", [1, 2], 3])
def test_a_payload_that_is_not_an_object_gives_an_empty_view(shape, payload):
    assert extract(payload, shape=shape, enrichment="not a dict") == {}


def test_extract_does_not_modify_the_payload():
    payload = fixture("typeform-form_response.json")
    before = copy.deepcopy(payload)

    extract(payload, shape="typeform")

    assert payload == before


# Keys the extractors look for, so generated payloads reach past the first level.
KEYS = st.sampled_from([
    "form_response", "answers", "field", "id", "ref", "type", "text", "choice", "choices", "labels", "other",
    "label", "hidden", "variables", "key", "definition", "fields", "data", "value", "options", "object", "payload",
    "questions_and_answers", "question", "answer", "tracking", "rawRequest", "data.json", "entry", "changes",
    "leads", "field_data", "name", "values", "custom_fields", "q1_email", "1.3", "0", "",
]) | st.text(max_size=8)
JSON_LIKE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12) | KEYS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=25,
)


@pytest.mark.parametrize("shape", list(SHAPES))
@settings(max_examples=150, deadline=None)
@given(payload=st.dictionaries(KEYS, JSON_LIKE, max_size=6), enrichment=JSON_LIKE)
def test_any_json_like_payload_gives_a_flat_view_without_raising(shape, payload, enrichment):
    view = extract(payload, shape=shape, enrichment=enrichment)

    assert all(isinstance(key, str) for key in view)
    assert not any(isinstance(value, dict) for value in view.values())


PLAIN_KEYS = st.text(alphabet="abcxyz_-", min_size=1, max_size=5)
PLAIN_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(PLAIN_KEYS, children, max_size=3),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(payload=st.dictionaries(PLAIN_KEYS, PLAIN_JSON, max_size=4))
def test_every_dotted_key_reads_back_with_dotted_get(payload):
    for path, value in extract(payload, shape="dotted").items():
        assert dotted_get(payload, path) == value
