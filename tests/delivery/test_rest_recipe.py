"""The REST recipe: what the admin refuses (with the place in the recipe), how templates are
filled (a missing value is left out or null, never a silent blank), and how answers are read."""

import pytest

from delivery.models import Destination
from delivery.rest_recipe import JsonPath, RecipeError, fill, fill_url, recipe_parse, unknown_placeholders
from tests.factories import destination_form

ADD = "/admin/delivery/destination/add/"
RECIPE = ('{"create": {"url": "/leads"}, "update": {"url": "/leads/{{ crm_record_id }}"}, '
          '"lookup": {"url": "/leads?email={{ email }}", "id_path": "results[*].id"}}')


def rest_form(**values) -> dict:
    return destination_form(**{"kind": "rest", "auth_method": "bearer", "base_url": "https://crm.example.com/api",
                                "object_model": "record", "token": "tok", "rest_recipe": RECIPE, **values})


# --- the admin ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_revops_user_saves_a_rest_recipe_and_basic_credentials_stay_write_only(operator):
    answer = operator.post(ADD, rest_form(auth_method="basic", token="", username="api", password="s3cret",
                                          lookup_existing="on"))

    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    destination = Destination.objects.get()
    assert destination.credentials() == {"username": "api", "password": "s3cret"}
    assert destination.recipe().lookup.id_path.text == "results[*].id"
    assert destination.batch_size == 1  # one call per record: the recipe has no batch request
    page = operator.get(f"/admin/delivery/destination/{destination.pk}/change/").content.decode()
    assert "s3cret" not in page and 'name="password"' in page


@pytest.mark.django_db
@pytest.mark.parametrize("values, field, message", [
    ({"rest_recipe": '{"creat": {"url": "/leads"}}'}, "rest_recipe", "creat: unknown key"),
    ({"rest_recipe": '{"create": {"method": "DELETE"}}'}, "rest_recipe", "create.method: must be one of GET, POST, PUT, PATCH"),
    ({"rest_recipe": '{"lookup": {"url": "/leads?email={{ email }}", "id_path": "results[*"}}'}, "rest_recipe",
     "lookup.id_path: not a JSON path"),
    ({"rest_recipe": '{"answer": {"success_when": {"path": "error"}}}'}, "rest_recipe", "answer.success_when: must be"),
    ({"rest_recipe": '{"batch": {"url": "/b", "max": 500, "body": {}}}'}, "rest_recipe", "batch.max: must be a whole number"),
    ({"rest_recipe": '{"create": {"url": "/leads"}}', "lookup_existing": "on"}, "lookup_existing", "needs a lookup request"),
    ({"batch_size": "10"}, "batch_size", "every record is its own call"),
    ({"auth_method": "basic", "token": "", "username": "api"}, "password", "Password is required"),
    ({"auth_method": "oauth2_refresh_token", "token": "", "client_id": "c", "client_secret": "s"}, "refresh_token",
     "Refresh token is required"),
    ({"auth_method": "header", "token": ""}, "token", "Secret (the header's value) is required"),
])
def test_the_admin_refuses_a_rest_destination_that_cannot_work_with_a_message_on_the_field(operator, values, field, message):
    answer = operator.post(ADD, rest_form(**values))

    assert answer.status_code == 200
    errors = answer.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Destination.objects.exists()


# --- parsing ------------------------------------------------------------------------------------


def test_an_empty_recipe_is_the_simple_post_of_the_body_template_to_the_base_url():
    recipe = recipe_parse({}, http_method="PUT", body_template='{"ref": "{{ external_id }}"}')

    assert (recipe.create.method, recipe.create.url, recipe.create.body) == ("PUT", "", {"ref": "{{ external_id }}"})
    assert (recipe.update, recipe.lookup, recipe.batch, recipe.missing) == (None, None, None, "omit")


def test_every_problem_is_named_at_once():
    with pytest.raises(RecipeError) as refused:
        recipe_parse({"missing": "blank", "update": {"url": 3}, "answer": {"exists_status": ["409"]}})

    assert refused.value.errors == {
        "update.url": "must be a string: a path after the base URL, or an absolute URL.",
        "answer.exists_status": "must be a list of HTTP status codes, e.g. [400, 409].",
        "missing": 'must be "omit" (leave the key out) or "null" (send null).',
    }


def test_the_update_takes_the_create_body_unless_it_has_its_own():
    recipe = recipe_parse({"create": {"url": "/leads", "body": {"e": "{{ email }}"}}, "update": {"url": "/leads/{{ crm_record_id }}"}})

    assert (recipe.update.method, recipe.update.body) == ("PATCH", {"e": "{{ email }}"})


def test_unknown_placeholders_are_listed_by_template():
    recipe = recipe_parse({"create": {"url": "/leads", "body": {"e": "{{ emial }}", "n": "{{ first_name }}"}},
                           "lookup": {"url": "/leads?q={{ mail }}", "id_path": "id"}})

    assert unknown_placeholders(recipe, {"email", "first_name"}) == {"create.body": ["emial"], "lookup.url": ["mail"]}


# --- templates ----------------------------------------------------------------------------------


def test_a_field_without_a_value_is_left_out_or_null_as_configured_and_never_half_filled():
    template = {"email": "{{ email }}", "phone": "{{ phone }}", "note": "Call {{ phone }}", "tags": ["{{ phone }}", "x"]}

    assert fill(template, {"email": "a@x.org"}) == {"email": "a@x.org", "tags": ["x"]}
    assert fill(template, {"email": "a@x.org"}, nulls=frozenset({"phone"})) == {
        "email": "a@x.org", "phone": None, "note": None, "tags": [None, "x"]}


def test_values_keep_their_json_types_and_text_is_substituted_inside_strings():
    template = {"n": "{{ score }}", "ok": "{{ vip }}", "text": "score {{ score }} for {{ email }}"}

    assert fill(template, {"score": 9.5, "vip": True, "email": "a@x.org"}) == {
        "n": 9.5, "ok": True, "text": "score 9.5 for a@x.org"}


def test_urls_are_percent_encoded_and_relative_to_the_base_url():
    base = "https://crm.example.com/api/"

    assert fill_url("/leads?email={{ email }}", {"email": "a+b@x.org"}, base, where="lookup.url") == \
        "https://crm.example.com/api/leads?email=a%2Bb%40x.org"
    assert fill_url("https://other.example.com/x/{{ crm_record_id }}", {"crm_record_id": "7/8"}, base, where="u") == \
        "https://other.example.com/x/7%2F8"
    assert fill_url("", {}, base, where="create.url") == base


def test_a_url_missing_its_value_is_an_error_not_a_wrong_url():
    with pytest.raises(ValueError, match=r"update.url: no value for \{\{ crm_record_id \}\}"):
        fill_url("/leads/{{ crm_record_id }}", {}, "https://crm.example.com", where="update.url")


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status, body, succeeded", [
    (200, {"id": "L1"}, True),
    (201, {"id": "L1", "error": False}, True),
    (200, {"error": True, "message": "email already used"}, False),
    (202, {"id": "L1"}, False),  # not in success_status
    (400, {"id": "L1"}, False),
])
def test_the_success_predicate_needs_the_status_and_the_condition(status, body, succeeded):
    answer = recipe_parse({"answer": {"success_status": [200, 201], "success_when": {"path": "error", "not_equals": True}}}).answer

    assert answer.succeeded(status, body) is succeeded


def test_already_exists_needs_the_status_and_the_pattern():
    answer = recipe_parse({"answer": {"exists_status": [400, 409], "exists_match": "already (used|exists)"}}).answer

    assert answer.already_exists(400, "duplicate_email", "email already used: a@x.org")
    assert not answer.already_exists(400, "invalid", "email is missing")
    assert not answer.already_exists(422, "duplicate_email", "email already used")
    # no pattern: the status says it
    assert recipe_parse({}).answer.already_exists(409, "", "")


def test_paths_reach_into_nested_objects_and_lists():
    body = {"data": {"items": [{"id": "L1"}, {"id": "L2"}], "lead": {"id": 7}}}

    assert JsonPath("data.items[*].id").find(body) == ["L1", "L2"]
    assert JsonPath("$.data.lead.id").first(body) == 7
    assert JsonPath("data.items[1].id").first(body) == "L2"
    assert JsonPath("data.nothing").first(body) is None


@pytest.mark.django_db
def test_a_hubspot_destination_saves_with_the_recipe_box_left_empty(operator):
    answer = operator.post(ADD, destination_form(token="pat-secret", rest_recipe=""))

    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    assert Destination.objects.get().rest_recipe in ({}, None)
