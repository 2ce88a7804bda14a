"""Lifecycle: lead, MQL, SQL by admin-editable scoring rules, and existing customers.

A stage only moves forward on its own (a lead that scored as SQL stays SQL if a later rule
change lowers its score); customers are a stage of their own and are never scored down to a
lead."""

from typing import Any

from leads.decisions import decision_record
from leads.fields import lead_value
from leads.models import CustomerEntry, Lead, LeadDecision, ScoringRule, StageThreshold

Stage = Lead.Stage
ORDER = {Stage.LEAD: 0, Stage.MQL: 1, Stage.SQL: 2, Stage.CUSTOMER: 3}


def score(lead: Lead, rules: list[ScoringRule] | None = None) -> tuple[int, list[str]]:
    """The lead's total and the rules that gave points."""
    rules = rules if rules is not None else list(ScoringRule.objects.filter(is_active=True))
    total, hits = 0, []
    for rule in rules:
        if _matches(rule, lead_value(lead, rule.field)):
            total += rule.points
            hits.append(f"{rule.describe()} ({rule.points:+d})")
    return total, hits


def _matches(rule: ScoringRule, value: Any) -> bool:
    text = "" if value is None else str(value).strip().casefold()
    wanted = rule.value.strip().casefold()
    if rule.operator == ScoringRule.Operator.PRESENT:
        return bool(text)
    if not text:
        return False
    if rule.operator == ScoringRule.Operator.EQUALS:
        return text == wanted
    if rule.operator == ScoringRule.Operator.CONTAINS:
        return wanted in text
    return text in {v.strip().casefold() for v in rule.value.split(",") if v.strip()}


def stage_for(total: int) -> str:
    stage = Stage.LEAD
    for threshold in StageThreshold.objects.order_by("min_score"):
        if total >= threshold.min_score and ORDER[threshold.stage] > ORDER[stage]:
            stage = threshold.stage
    return stage


def customer_reason(lead: Lead) -> str:
    """Why the lead is an existing customer ('' when it is not): the customer list (by email or
    domain) or a company marked as a customer."""
    domain = lead.company_record.domain if lead.company_record else ""
    if lead.email and CustomerEntry.objects.filter(kind=CustomerEntry.Kind.EMAIL, value=lead.email).exists():
        return f"{lead.email} is on the customer list"
    if domain and CustomerEntry.objects.filter(kind=CustomerEntry.Kind.DOMAIN, value=domain).exists():
        return f"{domain} is on the customer list"
    if lead.company_record and lead.company_record.is_customer:
        return f"the company {lead.company_record} is a customer"
    return ""


def lead_evaluate(*, lead: Lead, submission=None) -> bool:
    """Score the lead and move its stage forward; returns whether the lead changed. The
    caller saves the lead."""
    if lead.lifecycle_stage != Stage.CUSTOMER and (reason := customer_reason(lead)):
        return lead_mark_customer(lead=lead, detail=reason, submission=submission)
    total, hits = score(lead)
    changed = total != lead.score
    lead.score = total
    if lead.lifecycle_stage == Stage.CUSTOMER:
        return changed
    stage = stage_for(total)
    if ORDER[stage] > ORDER[Stage(lead.lifecycle_stage)]:
        decision_record(lead=lead, action=LeadDecision.Action.STAGE, submission=submission,
                        detail=f"score {total}: {'; '.join(hits) or 'no rule'}",
                        changes={"lifecycle_stage": [lead.lifecycle_stage, stage], "score": total})
        lead.lifecycle_stage = stage
        changed = True
    return changed


def lead_mark_customer(*, lead: Lead, detail: str, submission=None) -> bool:
    """An existing customer: stage 'customer', and routed to account management instead of
    staying with new business (the caller routes and saves)."""
    if lead.lifecycle_stage == Stage.CUSTOMER:
        return False
    decision_record(lead=lead, action=LeadDecision.Action.CUSTOMER, submission=submission, detail=detail,
                    changes={"lifecycle_stage": [lead.lifecycle_stage, Stage.CUSTOMER]})
    lead.lifecycle_stage = Stage.CUSTOMER
    lead.owner, lead.team = None, None  # account management takes over
    return True
