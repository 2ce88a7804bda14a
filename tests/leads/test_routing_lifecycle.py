"""Owner assignment, lifecycle scoring, existing customers, attribution and consent."""

from collections import Counter
from datetime import datetime, timezone

from django.core.exceptions import ValidationError
import pytest

from delivery.models import DestinationField
from leads.models import CampaignAlias, Company, CustomerEntry, Lead, LeadDecision, Owner, ScoringRule, StageThreshold, Team, TerritoryRule
from mapping.models import FieldRule
from tests.leads.helpers import submit

Action = LeadDecision.Action


@pytest.fixture
def sales(db) -> Team:
    team = Team.objects.create(name="New business", is_default=True)
    for name, owner_id in (("Ann", "101"), ("Ben", "102"), ("Cat", "103")):
        Owner.objects.create(team=team, name=name, hubspot_owner_id=owner_id)
    return team


def owners_of(leads) -> Counter:
    return Counter(Lead.objects.get(pk=lead.pk).owner.name for lead in leads)


def test_round_robin_over_three_owners_gives_thirty_leads_ten_each(web, sales):
    leads = [submit(web, email=f"person{i}@example{i}.com") for i in range(30)]

    assert owners_of(leads) == {"Ann": 10, "Ben": 10, "Cat": 10}
    routed = leads[0].decisions.get(action=Action.ROUTED)
    assert routed.detail == "Ann of New business (default team, round-robin)"


def test_a_territory_rule_overrides_round_robin(web, sales):
    dach = Team.objects.create(name="DACH")
    Owner.objects.create(team=dach, name="Dora")
    TerritoryRule.objects.create(team=dach, field="country", values="DE, AT, CH")

    german = [submit(web, email=f"kunde{i}@beispiel{i}.de", country="Germany") for i in range(4)]
    others = [submit(web, email=f"client{i}@exemple{i}.fr", country="FR") for i in range(3)]

    assert owners_of(german) == {"Dora": 4}
    assert owners_of(others) == {"Ann": 1, "Ben": 1, "Cat": 1}
    assert "territory rule: country in DE, AT, CH → DACH" in german[0].decisions.get(action=Action.ROUTED).detail


def test_away_owners_are_skipped_and_weights_share_leads_in_proportion(web, sales):
    Owner.objects.filter(name="Cat").update(is_away=True)
    Owner.objects.filter(name="Ann").update(weight=2)

    leads = [submit(web, email=f"p{i}@example{i}.com") for i in range(12)]

    assert owners_of(leads) == {"Ann": 8, "Ben": 4}


def test_a_lead_keeps_its_owner_when_it_comes_back(web, sales):
    lead = submit(web, email="ada@example.com")
    owner = Lead.objects.get(pk=lead.pk).owner
    for i in range(3):
        submit(web, email="ada@example.com", first_name=f"Ada{i}")

    assert Lead.objects.get(pk=lead.pk).owner == owner
    assert Owner.objects.get(pk=owner.pk).assigned == 1


def test_without_present_owners_the_lead_waits_in_its_team_and_says_why(web, sales):
    Owner.objects.update(is_away=True)
    lead = Lead.objects.get(pk=submit(web, email="ada@example.com").pk)

    assert (lead.team, lead.owner) == (sales, None)
    assert lead.decisions.get(action=Action.ROUTED).detail == "New business: every owner is away (default team)"


def test_scoring_rules_move_a_lead_to_mql_then_sql_and_log_why(web):
    ScoringRule.objects.create(field="attribution.utm_source", operator="equals", value="google", points=10)
    ScoringRule.objects.create(field="company", operator="present", points=5)
    ScoringRule.objects.create(field="attributes.job_title", operator="contains", value="head of", points=30)
    ScoringRule.objects.create(field="country", operator="in", value="GB, IE", points=5, is_active=False)
    StageThreshold.objects.create(stage="mql", min_score=15)
    StageThreshold.objects.create(stage="sql", min_score=40)
    web.mapping_sets.get().rules.create(position=50, source_keys="job_title", target="attributes.job_title")
    from mapping.services import mapping_publish

    mapping_publish(mapping_set=web.mapping_sets.get())

    lead = submit(web, email="ada@example.com", utm_source="Google", country="GB")
    assert (Lead.objects.get(pk=lead.pk).lifecycle_stage, Lead.objects.get(pk=lead.pk).score) == ("lead", 10)
    submit(web, email="ada@example.com", company="Analytical Engines")
    assert Lead.objects.get(pk=lead.pk).lifecycle_stage == "mql"
    submit(web, email="ada@example.com", job_title="Head of Engineering")
    lead = Lead.objects.get(pk=lead.pk)
    assert (lead.lifecycle_stage, lead.score) == ("sql", 45)
    stages = [d.changes["lifecycle_stage"] for d in lead.decisions.filter(action=Action.STAGE).order_by("id")]
    assert stages == [["lead", "mql"], ["mql", "sql"]]
    assert lead.decisions.filter(action=Action.STAGE).order_by("id").last().detail == (
        "score 45: attributes.job_title contains head of (+30); attribution.utm_source equals google (+10); "
        "company present (+5)")


def test_existing_customers_go_to_account_management_not_new_business(web, sales):
    am = Team.objects.create(name="Account management", handles_customers=True)
    Owner.objects.create(team=am, name="Kim")
    CustomerEntry.objects.create(kind="domain", value="bigclient.com")
    Company.objects.create(domain="oldfriend.io", is_customer=True)
    CustomerEntry.objects.create(kind="email", value="founder@gmail.com")

    leads = [submit(web, email=email) for email in ("cto@bigclient.com", "ops@oldfriend.io", "founder@gmail.com")]
    prospect = submit(web, email="new@prospect.com")

    for lead in leads:
        lead = Lead.objects.get(pk=lead.pk)
        assert (lead.lifecycle_stage, lead.team, lead.owner.name) == ("customer", am, "Kim")
    assert Lead.objects.get(pk=prospect.pk).team == sales
    assert leads[0].decisions.get(action=Action.CUSTOMER).detail == "bigclient.com is on the customer list"


def test_a_known_lead_that_becomes_a_customer_is_rerouted(web, sales):
    am = Team.objects.create(name="Account management", handles_customers=True)
    Owner.objects.create(team=am, name="Kim")
    lead = submit(web, email="ada@acme.com")
    Company.objects.filter(domain="acme.com").update(is_customer=True)

    submit(web, email="ada@acme.com", first_name="Ada")

    lead = Lead.objects.get(pk=lead.pk)
    assert (lead.lifecycle_stage, lead.owner.name) == ("customer", "Kim")


def test_first_touch_is_kept_and_last_touch_follows_with_campaign_names_normalized(web):
    CampaignAlias.objects.create(raw="Spring Launch 2026", name="spring-2026")
    submit(web, email="ada@example.com", utm_source="LinkedIn", utm_campaign="spring launch 2026",
           landing_page="https://example.com/pricing")
    submit(web, email="ada@example.com", first_name="Ada")  # no touch: nothing changes
    lead = submit(web, email="ada@example.com", utm_source="google", utm_medium="cpc", utm_campaign="SPRING-LAUNCH-2026")

    lead = Lead.objects.get(pk=lead.pk)
    assert {k: v for k, v in lead.first_touch.items() if k not in ("at",)} == {
        "utm_source": "linkedin", "utm_campaign": "spring-2026", "landing_page": "https://example.com/pricing",
        "source": "website"}
    assert lead.attribution == {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring-2026"}


def test_consent_is_stored_only_as_given_and_a_newer_answer_wins(web):
    lead = submit(web, email="ada@example.com")
    assert Lead.objects.get(pk=lead.pk).marketing_opt_in is None

    submit(web, email="ada@example.com", marketing_opt_in="yes", consent_text="newsletter-v3",
           consent_at="2026-11-01T10:00:00Z")
    submit(web, email="ada@example.com", marketing_opt_in="no", consent_at="2026-10-01T10:00:00Z")  # older
    lead = Lead.objects.get(pk=lead.pk)
    assert (lead.marketing_opt_in, lead.consent_text, lead.consent_source) == (True, "newsletter-v3", "website")
    assert lead.consent_at == datetime(2026, 11, 1, 10, tzinfo=timezone.utc)

    submit(web, email="ada@example.com", first_name="Ada")  # no answer: consent unchanged
    submit(web, email="ada@example.com", opt_in="off")  # received now: newest
    lead = Lead.objects.get(pk=lead.pk)
    assert lead.marketing_opt_in is False and lead.consent_text == ""


def test_consent_can_never_be_defaulted(web):
    rule = FieldRule(mapping_set=web.mapping_sets.get(), source_keys="gdpr", target="marketing_opt_in", default="true")
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "Consent is never defaulted" in str(refused.value.message_dict["default"])
    rule = FieldRule(mapping_set=web.mapping_sets.get(), source_keys="gdpr", target="marketing_opt_in",
                     transforms=[{"op": "constant", "value": True}])
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "transforms" in refused.value.message_dict
    rule = FieldRule(mapping_set=web.mapping_sets.get(), source_keys="gdpr", target="marketing_opt_in",
                     on_invalid="default")
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert refused.value.message_dict["on_invalid"] == [
        "Consent is never defaulted: reject the submission or drop the field."]
    line = DestinationField(source="marketing_opt_in", target="opt_in", default="true")
    with pytest.raises(ValidationError) as refused:
        line.clean()
    assert "never defaulted" in refused.value.message_dict["default"][0]


def test_an_answer_that_is_not_yes_or_no_is_dropped_with_a_reason(web):
    from crmsync.pipeline import submission_process
    from ingestion.models import Submission
    from tests.factories import submission

    processed = submission_process(submission_id=submission(source=web, payload={
        "email": "ada@example.com", "marketing_opt_in": "maybe"}).pk)

    assert processed.status == Submission.Status.PROCESSED
    assert processed.lead.marketing_opt_in is None
    assert "is not a yes/no value" in processed.reasons[0]["message"]


def test_a_consent_time_that_is_not_a_date_is_dropped_with_a_reason(web):
    from crmsync.pipeline import submission_process
    from ingestion.models import Submission
    from tests.factories import submission

    web.mapping_sets.get().rules.filter(target="consent_at").update(transforms=[])
    from mapping.services import mapping_publish

    mapping_publish(mapping_set=web.mapping_sets.get())
    processed = submission_process(submission_id=submission(source=web, payload={
        "email": "ada@example.com", "marketing_opt_in": "yes", "consent_at": "last tuesday"}).pk)

    assert processed.status == Submission.Status.PROCESSED
    assert processed.reasons[0]["message"] == "dropped: 'last tuesday' is not a date and time; add a 'datetime' step."
    lead = processed.lead
    assert lead.marketing_opt_in is True and lead.consent_at == processed.received_at  # when we received it
