"""RevOps rules refuse what cannot work, with a message on the field, and match leads
however the values were typed."""

from django.core.exceptions import ValidationError
from django.urls import reverse
import pytest

from delivery.models import DestinationField
from leads.models import Company, CustomerEntry, Lead, Owner, Team, TerritoryRule
from tests.factories import hubspot_destination
from tests.leads.helpers import submit


def add(client, model: str, **values):
    return client.post(reverse(f"admin:leads_{model}_add"), values)


def field_errors(answer) -> dict[str, list[str]]:
    assert answer.status_code == 200, "the form was accepted"
    return {name: list(errors) for name, errors in answer.context["adminform"].form.errors.items()}


def test_bad_rules_are_refused_with_a_reason_on_the_field(operator):
    assert field_errors(add(operator, "scoringrule", field="job", **{"operator": "equals"}, value="cto", points="5")) == {
        "field": ["Use one of email, first_name, last_name, phone, company, country, attributes.<name>, "
                  "attribution.<name> or first_touch.<name>."]}
    assert field_errors(add(operator, "scoringrule", field="country", **{"operator": "in"}, value=" ", points="5")) == {
        "value": ["Give the value to compare with."]}
    assert field_errors(add(operator, "mergerule", field="company", mode="priority", source_order="")) == {
        "source_order": ["List the source slugs in order of trust."]}
    assert field_errors(add(operator, "mergerule", field="lifecycle", mode="newest")) == {
        "field": ["Use one of email, first_name, last_name, phone, company, country or attributes.<name>."]}
    assert field_errors(add(operator, "customerentry", kind="domain", value="not a domain")) == {
        "value": ["A domain looks like example.com."]}
    assert field_errors(add(operator, "customerentry", kind="email", value="acme.com")) == {
        "value": ["An email address needs an @."]}


def test_an_owner_with_no_weight_and_a_territory_without_values_are_refused(db):
    team = Team.objects.create(name="Sales")
    owner = Owner(team=team, name="Ann", weight=0)
    rule = TerritoryRule(team=team, field="country", values=" , ")
    with pytest.raises(ValidationError) as refused:
        owner.full_clean()
    assert refused.value.message_dict["weight"] == ["At least 1; mark the owner away instead."]
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert refused.value.message_dict["values"] == ["List at least one value."]


def test_a_field_map_line_must_read_something_a_lead_has(db):
    destination = hubspot_destination(base_url="https://api.hubapi.com")
    with pytest.raises(ValidationError) as refused:
        DestinationField(destination=destination, source="owner.phone", target="x").full_clean()
    assert refused.value.message_dict["source"][0].startswith("Use one of email, first_name")
    DestinationField(destination=destination, source="owner.hubspot_owner_id", target="y").full_clean()


def test_the_customer_list_and_companies_match_however_they_were_typed(web):
    CustomerEntry.objects.create(kind="domain", value=" @BigClient.COM ")
    Company.objects.create(domain="https://www.OldFriend.io/", is_customer=True)

    big = submit(web, email="cto@bigclient.com")
    old = submit(web, email="ops@oldfriend.io")

    assert Lead.objects.get(pk=big.pk).lifecycle_stage == "customer"
    assert Lead.objects.get(pk=old.pk).lifecycle_stage == "customer"
    assert Company.objects.filter(domain="oldfriend.io").count() == 1
