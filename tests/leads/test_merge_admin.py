"""A reviewer merges two leads in the admin; both histories stay, and the merged lead's keys
find the survivor from then on."""

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from delivery.models import Destination, PushJob
from ingestion.models import Submission
from leads.models import Lead, LeadDecision, LeadIdentity
from tests.leads.helpers import submit

CHANGELIST = reverse("admin:leads_lead_changelist")


def merge(operator, leads, **extra):
    return operator.post(CHANGELIST, {"action": "merge_leads", ACTION_CHECKBOX_NAME: [lead.pk for lead in leads], **extra})


def test_a_reviewer_merges_two_leads_keeping_both_histories(operator, web):
    Destination.objects.create(name="REST", kind="rest", auth_method="none", base_url="https://example.org/hook",
                               object_model="record")
    ada = submit(web, email="ada@example.com", first_name="Ada", utm_source="newsletter")
    augusta = submit(web, email="augusta@lovelace.dev", first_name="Augusta", last_name="King", phone="+44 20 7946 0958")

    confirm = merge(operator, [ada, augusta])
    assert confirm.status_code == 200
    assert b"Merge two leads" in confirm.content and b"augusta@lovelace.dev" in confirm.content

    done = merge(operator, [ada, augusta], survivor=ada.pk)
    assert done.status_code == 302

    ada, augusta = Lead.objects.get(pk=ada.pk), Lead.objects.get(pk=augusta.pk)
    # the survivor keeps its values and fills its blanks from the other
    assert (ada.email, ada.first_name, ada.last_name, ada.phone) == ("ada@example.com", "Ada", "King", "+442079460958")
    assert augusta.merged_into == ada and augusta.email == ""
    # both histories stay where they were, and say what happened
    assert Submission.objects.filter(lead=augusta).count() == 1
    assert augusta.decisions.filter(action=LeadDecision.Action.CREATED).exists()
    merged = ada.decisions.get(action=LeadDecision.Action.MERGED)
    assert merged.actor.username == "ops" and merged.changes["merged_lead"] == augusta.external_id
    assert augusta.decisions.get(action=LeadDecision.Action.MERGED).detail.startswith(f"Merged into {ada.external_id}")
    # the merged lead's pending push stops; the survivor's goes out
    assert PushJob.objects.get(lead=augusta).status == PushJob.Status.SUPERSEDED
    assert PushJob.objects.get(lead=ada).status == PushJob.Status.PENDING
    # and its email now finds the survivor
    assert LeadIdentity.objects.get(value="augusta@lovelace.dev").lead == ada
    assert submit(web, email="augusta@lovelace.dev", country="GB").pk == ada.pk
    assert Lead.objects.filter(merged_into__isnull=True).count() == 1


def test_the_lead_page_shows_its_decisions_keys_and_merged_leads(operator, web):
    lead = submit(web, email="ada@example.com")
    submit(web, email="ada@example.com", first_name="Ada")

    page = operator.get(reverse("admin:leads_lead_change", args=[lead.pk]))

    assert page.status_code == 200
    text = page.content.decode()
    assert "Created a new lead" in text and "Matched an existing lead" in text
    assert "&quot;first_name&quot;: [" in text  # what the match changed


def test_merging_needs_exactly_two_leads_that_are_not_merged_already(operator, web):
    a, b, c = (submit(web, email=f"{n}@example.com") for n in "abc")

    answer = merge(operator, [a, b, c])
    assert answer.status_code == 302
    messages = [str(m) for m in operator.get(CHANGELIST).context["messages"]]
    assert messages == ["Select exactly two leads to merge."]

    merge(operator, [a, b], survivor=a.pk)
    merge(operator, [b, c], survivor=c.pk)
    messages = [str(m) for m in operator.get(CHANGELIST).context["messages"]]
    assert messages[-1] == "One of the leads was already merged; merge into the lead it was merged into."
    assert Lead.objects.get(pk=c.pk).merged_into is None


def test_a_company_page_links_to_its_leads(operator, web):
    import re

    from leads.models import Company

    submit(web, email="ada@acme.com")
    submit(web, email="bob@acme.com")
    submit(web, email="carol@other.example")
    page = operator.get(reverse("admin:leads_company_change", args=[Company.objects.get(domain="acme.com").pk]))

    link = re.search(r'href="([^"]+)">2 lead\(s\)', page.content.decode()).group(1).replace("&amp;", "&")
    listed = operator.get(link)
    assert listed.status_code == 200
    assert [lead.email for lead in listed.context["cl"].result_list] == ["bob@acme.com", "ada@acme.com"]


def test_new_rules_apply_to_existing_leads_from_the_admin_at_once(operator, web):
    from leads.models import Company, Owner, ScoringRule, StageThreshold, Team

    ada = submit(web, email="ada@acme.com", company="ACME")
    bob = submit(web, email="bob@other.example")
    ScoringRule.objects.create(field="company", operator="present", points=50)
    StageThreshold.objects.create(stage="sql", min_score=50)
    Owner.objects.create(team=Team.objects.create(name="Sales", is_default=True), name="Ann")
    Company.objects.filter(domain="other.example").update(is_customer=True)

    answer = operator.post(CHANGELIST, {"action": "reevaluate_leads", ACTION_CHECKBOX_NAME: [ada.pk, bob.pk]},
                           follow=True)

    assert "2 of 2 lead(s) changed and will be pushed again." in [str(m) for m in answer.context["messages"]]
    ada, bob = Lead.objects.get(pk=ada.pk), Lead.objects.get(pk=bob.pk)
    assert (ada.lifecycle_stage, ada.score, ada.owner.name) == ("sql", 50, "Ann")
    assert bob.lifecycle_stage == "customer"
    assert LeadDecision.objects.filter(lead=ada, action=LeadDecision.Action.STAGE).exists()
