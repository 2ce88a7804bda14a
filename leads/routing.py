"""Owner assignment: territory rules pick a team, round-robin picks an owner within it.

Round-robin is weighted and fair under concurrency: the team's row is locked while an owner is
picked, and the owner who has received the fewest leads for their weight gets the next one
(ties go to the fewest leads, then the oldest owner). Owners marked away are skipped and do
not catch up on their return: they simply take their share of new leads again."""

from django.db.models import F

from leads.decisions import decision_record
from leads.fields import lead_value
from leads.models import Lead, LeadDecision, Owner, Team, TerritoryRule


def team_for(lead: Lead) -> tuple[Team | None, str]:
    """(team, why) for a lead: account management for customers, else the first territory
    rule that matches, else the default team."""
    if lead.lifecycle_stage == Lead.Stage.CUSTOMER:
        team = Team.objects.filter(handles_customers=True).first()
        return team, "existing customer: account management" if team else "existing customer, but no team handles customers"
    for rule in TerritoryRule.objects.select_related("team"):
        value = lead_value(lead, rule.field)
        if value is not None and str(value).strip().lower() in rule.value_set:
            return rule.team, f"territory rule: {rule}"
    team = Team.objects.filter(is_default=True).first()
    return team, "default team" if team else "no territory rule matched and there is no default team"


def lead_route(*, lead: Lead, submission=None) -> bool:
    """Give an unowned lead a team and an owner; returns whether the lead changed. The caller
    saves the lead. A lead keeps its owner once it has one."""
    if lead.owner_id:
        return False
    team, why = team_for(lead)
    if team is None:
        if lead.team_id is not None:
            lead.team = None
            return True
        return False
    owner = _next_owner(team)
    lead.team, lead.owner = team, owner
    detail = f"{owner} of {team} ({why}, round-robin)" if owner else f"{team}: every owner is away ({why})"
    decision_record(lead=lead, action=LeadDecision.Action.ROUTED, submission=submission, detail=detail,
                    changes={"team": team.name, "owner": owner.name if owner else None})
    return True


def _next_owner(team: Team) -> Owner | None:
    Team.objects.select_for_update().filter(pk=team.pk).first()  # one pick at a time per team
    owners = list(Owner.objects.filter(team=team, is_away=False))
    if not owners:
        return None
    owner = min(owners, key=lambda o: ((o.assigned + 1) / o.weight, o.assigned, o.pk))
    Owner.objects.filter(pk=owner.pk).update(assigned=F("assigned") + 1)
    return owner
