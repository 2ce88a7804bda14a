"""Identity resolution: which key finds the person, what a match changes, and the log of it."""

from delivery.models import PushJob
from leads.models import Company, Lead, LeadDecision, LeadIdentity, MergeRule
from tests.leads.helpers import submit

Action = LeadDecision.Action


def decisions(lead: Lead) -> list[tuple[str, str]]:
    return [(d.action, d.matched_by) for d in lead.decisions.order_by("id")]


def test_a_returning_email_updates_the_lead_and_logs_the_match_and_what_changed(web):
    first = submit(web, email="Ada@Example.com", first_name="Ada", company="Engines Ltd")
    again = submit(web, email="ada@example.com", last_name="Lovelace", company="Analytical Engines")

    assert again.pk == first.pk and Lead.objects.count() == 1
    again.refresh_from_db()
    assert (again.first_name, again.last_name, again.company) == ("Ada", "Lovelace", "Analytical Engines")
    assert decisions(again) == [(Action.CREATED, ""), (Action.MATCHED, "email")]
    match = again.decisions.get(action=Action.MATCHED)
    assert match.changes["changed"] == {"last_name": ["", "Lovelace"], "company": ["Engines Ltd", "Analytical Engines"]}
    assert match.submission.lead == again


def test_blank_values_never_overwrite_stored_ones(web):
    submit(web, email="ada@example.com", first_name="Ada", phone="+44 20 7946 0958", country="GB")
    lead = submit(web, email="ada@example.com", first_name="  ", phone="", country="")

    lead.refresh_from_db()
    assert (lead.first_name, lead.phone, lead.country) == ("Ada", "+442079460958", "GB")
    assert lead.decisions.get(action=Action.MATCHED).changes["changed"] == {}


def test_the_sources_own_record_id_matches_before_the_email(db):
    from mapping.starters import mapping_starter_create
    from tests.factories import source_with_secret

    stripe, _ = source_with_secret(kind="stripe", secret="whsec_x")
    mapping_starter_create(source=stripe)
    checkout = {"type": "checkout.session.completed",
                "data": {"object": {"id": "cs_1", "customer": "cus_ADA", "customer_details": {"email": "ada@example.com"}}}}
    lead = submit(stripe, **checkout)
    # the customer changes their email in Stripe: the customer ID still finds them
    checkout["data"]["object"].update(id="cs_2", customer_details={"email": "ada@lovelace.dev"})
    again = submit(stripe, **checkout)

    assert again.pk == lead.pk and Lead.objects.count() == 1
    assert decisions(again)[-1] == (Action.MATCHED, "source_record")
    assert LeadIdentity.objects.filter(lead=lead, kind="source_record", value="stripe:cus_ADA").exists()
    # the first address stays the lead's email; the new one is another key to it
    again.refresh_from_db()
    assert again.email == "ada@example.com"
    assert LeadIdentity.objects.get(kind="email", value="ada@lovelace.dev").lead == again
    assert submit(stripe, type="customer.updated", data={"object": {"id": "cus_OTHER", "email": "ada@lovelace.dev"}}).pk == lead.pk


def test_our_external_id_sent_back_by_a_form_matches_first(web):
    lead = submit(web, email="ada@example.com")
    web_rules = web.mapping_sets.get().rules
    web_rules.create(position=99, source_keys="crmsync_id", target="external_id")
    from mapping.services import mapping_publish

    mapping_publish(mapping_set=web.mapping_sets.get())
    again = submit(web, email="someone.else@example.org", crmsync_id=lead.external_id, first_name="Ada")

    assert again.pk == lead.pk and decisions(again)[-1] == (Action.MATCHED, "external_id")
    assert Lead.objects.count() == 1


def test_first_and_last_name_at_the_same_company_domain_match_a_second_address(web):
    grace = submit(web, email="grace@navy.mil", first_name="Grace", last_name="Hopper")
    again = submit(web, email="g.hopper@navy.mil", first_name="grace", last_name="HOPPER")

    assert again.pk == grace.pk and decisions(again)[-1] == (Action.MATCHED, "name_domain")
    again.refresh_from_db()
    assert again.email == "grace@navy.mil"  # an email is an identity: the second becomes another key
    assert submit(web, email="g.hopper@navy.mil").pk == grace.pk
    assert decisions(again)[-1] == (Action.MATCHED, "email")


def test_the_same_name_at_a_free_mail_domain_or_at_two_companies_is_two_people(web):
    a = submit(web, email="john.smith@gmail.com", first_name="John", last_name="Smith")
    b = submit(web, email="jsmith1970@gmail.com", first_name="John", last_name="Smith")
    c = submit(web, email="john@acme.com", first_name="John", last_name="Smith")

    assert len({a.pk, b.pk, c.pk}) == 3
    assert not Company.objects.filter(domain="gmail.com").exists()


def test_a_name_shared_by_two_leads_at_one_company_matches_neither(web):
    submit(web, email="john@acme.com", first_name="John", last_name="Smith")
    second = submit(web, email="j.smith@acme.com", first_name="Jane", last_name="Smith")
    Lead.objects.filter(pk=second.pk).update(first_name="John")  # two John Smiths at acme.com now

    third = submit(web, email="jsmith@acme.com", first_name="John", last_name="Smith")

    assert Lead.objects.count() == 3
    assert "several leads named John Smith at acme.com" in third.decisions.get(action=Action.CREATED).detail


def test_one_company_per_domain_and_free_mail_never_becomes_a_company(web):
    a = submit(web, email="ada@acme.com", company="ACME")
    b = submit(web, email="bob@ACME.com")
    c = submit(web, email="carol@gmail.com", company="Carol's Cakes", website="https://www.carols-cakes.example/")
    d = submit(web, email="dan@hotmail.com")

    [acme] = Company.objects.filter(domain="acme.com")
    assert acme.name == "ACME" and {a.company_record, b.company_record} == {acme}
    c.refresh_from_db()
    assert c.company_record.domain == "carols-cakes.example"  # the website names the company
    assert d.company_record is None
    assert Company.objects.count() == 2


def test_merge_rules_choose_which_source_wins_per_field(web, crm_import):
    MergeRule.objects.create(field="company", mode=MergeRule.Mode.PRIORITY, source_order="crm-import")
    MergeRule.objects.create(field="first_name", mode=MergeRule.Mode.FIRST)
    submit(crm_import, email="ada@example.com", first_name="Augusta", company="Analytical Engines Ltd", country="GB")
    lead = submit(web, email="ada@example.com", first_name="Ada", company="ae", country="FR", last_name="King")

    lead.refresh_from_db()
    assert lead.company == "Analytical Engines Ltd"  # the import outranks the form
    assert lead.first_name == "Augusta"  # the first value is kept
    assert lead.country == "FR"  # no rule: the newest value wins
    assert lead.last_name == "King"  # a blank is always filled
    kept = lead.decisions.get(action=Action.MATCHED).changes["kept"]
    assert kept == {"company": "set by crm-import, which ranks above website", "first_name": "the first value is kept"}
    # the trusted source may change its own value again
    submit(crm_import, email="ada@example.com", company="Analytical Engines plc")
    lead.refresh_from_db()
    assert lead.company == "Analytical Engines plc"


def test_an_unchanged_resubmission_queues_no_push(web, settings):
    from delivery.models import Destination

    Destination.objects.create(name="REST", kind="rest", auth_method="none", base_url="https://example.org/hook",
                               object_model="record")
    submit(web, email="ada@example.com", first_name="Ada")
    PushJob.objects.update(status=PushJob.Status.SUCCEEDED)
    submit(web, email="ada@example.com", first_name="Ada")

    assert PushJob.objects.count() == 1


def test_a_merge_rule_may_let_a_new_email_replace_the_old_which_still_finds_the_lead(web):
    MergeRule.objects.create(field="email", mode=MergeRule.Mode.NEWEST)
    grace = submit(web, email="grace@navy.mil", first_name="Grace", last_name="Hopper")
    submit(web, email="g.hopper@navy.mil", first_name="Grace", last_name="Hopper")

    grace.refresh_from_db()
    assert grace.email == "g.hopper@navy.mil"
    assert submit(web, email="grace@navy.mil").pk == grace.pk
    assert Lead.objects.count() == 1
