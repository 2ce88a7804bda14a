"""Mapping from a sample: every field of a received submission, redacted, with the rule that
reads it or a suggestion; the targets chosen become draft rules."""

from django.core.exceptions import ValidationError
import pytest

from ingestion.models import Source
from mapping.samples import attribute_target, rules_from_sample, sample_fields
from mapping.starters import mapping_starter_create
from tests.factories import EMAIL_RULE, source_with_mapping, submission

pytestmark = pytest.mark.django_db

# A Gravity Forms "All Fields" entry: keyed by field ID. Name field 1 (.3 first, .6 last), email
# field 2, address field 5 (.1 street, .3 city, .6 country).
ENTRY = {"id": "42", "form_id": "3", "1.3": "Ada", "1.6": "Lovelace", "2": "ada@example.com",
         "5.1": "12 St James's Square", "5.3": "London", "5.6": "United Kingdom", "7": "Yes please"}


@pytest.fixture
def gravity():
    source = Source.objects.create(name="Gravity", slug="gravity", kind="gravity_forms")
    return mapping_starter_create(source=source)


def test_every_field_is_listed_redacted_with_a_suggestion_where_it_looks_like_a_known_field(gravity):
    sample = submission(source=gravity.source, payload=ENTRY)

    fields = {f.name: f for f in sample_fields(mapping_set=gravity, submission=sample)}

    assert list(fields) == list(ENTRY)
    assert (fields["1.3"].sample, fields["2"].sample) == ("Ad… (3 characters)", "…@example.com")
    assert {name: f.suggestion for name, f in fields.items() if f.suggestion} == {
        "1.3": "first_name", "1.6": "last_name", "2": "email"}  # the address's .3 and .6 are not names
    assert (fields["id"].mapped_to, fields["id"].suggestion) == ("", "")


def test_a_field_a_rule_already_reads_shows_its_target_and_no_suggestion():
    source = source_with_mapping(rules=(EMAIL_RULE, {"source_keys": "surname", "target": "last_name"}))
    sample = submission(source=source, payload={"Email": "a@b.co", "Surname": "L", "Work Email": "c@d.co"})

    fields = {f.name: (f.mapped_to, f.suggestion) for f in sample_fields(mapping_set=source.mapping_sets.get(),
                                                                          submission=sample)}

    assert fields == {"Email": ("email", ""), "Surname": ("last_name", ""), "Work Email": ("", "email")}


def test_chosen_targets_become_aliases_of_existing_rules_or_new_rules_with_the_usual_steps(gravity):
    changes = rules_from_sample(mapping_set=gravity, choices=[
        ("2", "email"), ("1.3", "first_name"), ("1.6", "last_name"), ("7", "attributes.newsletter_answer"),
        ("form_id", "attributes.form"), ("5.6", "country")])

    rules = {rule.target: rule for rule in gravity.rules.all()}
    assert rules["email"].keys[-1] == "2" and rules["email"].keys[0] == "email"
    assert rules["first_name"].keys[-1] == "1.3" and rules["last_name"].keys[-1] == "1.6"
    assert rules["country"].keys[-1] == "5.6"
    assert (rules["attributes.form"].keys, rules["attributes.form"].transforms) == (["form_id"], [])
    assert rules["attributes.newsletter_answer"].on_invalid == "drop"
    assert changes[0] == "email: added '2'"
    assert "attributes.form: a new rule reading 'form_id'" in changes
    assert gravity.published.config == gravity.versions.get().config  # nothing published


def test_a_name_a_rule_cannot_hold_is_refused_and_nothing_is_saved(gravity):
    before = list(gravity.rules.values_list("target", "source_keys"))

    with pytest.raises(ValidationError) as error:
        rules_from_sample(mapping_set=gravity, choices=[("2", "email"), ("Size, colour", "attributes.size")])

    assert "comma" in error.value.message_dict["Size, colour"][0]
    assert list(gravity.rules.values_list("target", "source_keys")) == before


@pytest.mark.parametrize("name, target", [("How did you hear?", "attributes.how_did_you_hear"),
                                          ("1.3", "attributes.field_1_3"), ("Größe", "attributes.grosse"),
                                          ("???", "attributes.field"), ("x" * 300, "attributes." + "x" * 60)])
def test_a_custom_attribute_is_named_after_the_field(name, target):
    assert attribute_target(name) == target
