"""One person, one record: identity resolution, reviewer merges, re-evaluation and companies.

Order of keys, strongest first: our external ID, the source's own record ID, the email (or an
email the lead is known by), then first and last name with the company domain. The first key
that finds a lead wins; a new lead is created only when none does, and the database's unique
constraints (email, identity keys) make concurrent submissions for one new person end in one
row: the loser of the race rolls back to a savepoint and matches the winner's lead.
"""

from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.fields import LEAD_FIELDS, company_domain
from leads import lifecycle, routing
from leads.decisions import decision_record
from leads.decisions import plain as _plain
from leads.models import CampaignAlias, Company, Lead, LeadDecision, LeadIdentity, MergeRule, Owner, campaign_key

log = logging.getLogger(__name__)

Action = LeadDecision.Action


@dataclass
class Incoming:
    """What one submission says about a person, after mapping."""

    values: dict[str, str] = field(default_factory=dict)  # lead fields, identity and consent targets
    attributes: dict[str, Any] = field(default_factory=dict)
    attribution: dict[str, str] = field(default_factory=dict)
    source_slug: str = ""
    submission: Any = None
    received_at: datetime | None = None
    # When it happened at its origin (the sender's event time, else receipt): values older than
    # the lead's never replace them.
    event_at: datetime | None = None

    @property
    def at(self) -> datetime:
        return self.event_at or self.received_at or timezone.now()

    @property
    def email(self) -> str:
        return self.values.get("email", "").strip().lower()

    @property
    def source_record_key(self) -> str:
        record_id = self.values.get("source_record_id", "").strip()
        return f"{self.source_slug}:{record_id}" if record_id else ""

    def domain(self) -> str:
        return company_domain(email=self.email, attributes=self.attributes)


@dataclass
class Resolution:
    lead: Lead
    changed: bool
    matched_by: str  # "" for a new lead


# --- Resolution ----------------------------------------------------------------------------


def lead_resolve(*, incoming: Incoming) -> Resolution:
    """Find or create the one lead for this person and merge what the submission says.
    Must run inside the caller's transaction."""
    lead, matched_by, note = _find(incoming)
    if lead is None:
        try:
            with transaction.atomic():  # savepoint: a concurrent insert must not poison the caller
                lead = _create(incoming)
        except IntegrityError:
            # Another submission for the same person committed first (unique email or key).
            lead, matched_by, note = _find(incoming)
            if lead is None:
                raise
    changes: dict = {}
    if matched_by:
        changes = _merge(lead, incoming)
        changed = bool(changes["changed"])
        decision_record(lead=lead, action=Action.MATCHED, matched_by=matched_by, submission=incoming.submission,
                        detail=note, changes=changes)
    else:
        changed = True
        decision_record(lead=lead, action=Action.CREATED, submission=incoming.submission, detail=note,
                        changes={"keys": _key_names(incoming)})
    replaced = changes["changed"].get("email", [""])[0] if matched_by else ""
    _identities_add(lead, incoming, replaced_email=replaced)
    changed = _company_link(lead) or changed
    changed = lifecycle.lead_evaluate(lead=lead, submission=incoming.submission) or changed
    changed = routing.lead_route(lead=lead, submission=incoming.submission) or changed
    if changed:
        lead.save()
    return Resolution(lead, changed, matched_by)


def _find(incoming: Incoming) -> tuple[Lead | None, str, str]:
    """(lead, key that matched, note); (None, "", note) when no key matches."""
    locked = Lead.objects.select_for_update()
    if external_id := incoming.values.get("external_id", "").strip():
        if lead := locked.filter(external_id=external_id).first():
            return _survivor(lead), "external_id", f"external ID {external_id}"
    if key := incoming.source_record_key:
        if identity := LeadIdentity.objects.filter(kind=LeadIdentity.Kind.SOURCE_RECORD, value=key).first():
            return _survivor(locked.get(pk=identity.lead_id)), "source_record", f"source record {key}"
    if email := incoming.email:
        if lead := locked.filter(email=email).first():
            return _survivor(lead), "email", "email address"
        if identity := LeadIdentity.objects.filter(kind=LeadIdentity.Kind.EMAIL, value=email).first():
            return _survivor(locked.get(pk=identity.lead_id)), "email", "another email address of the lead"
    return _find_by_name(incoming, locked)


def _find_by_name(incoming: Incoming, locked) -> tuple[Lead | None, str, str]:
    first, last = incoming.values.get("first_name", "").strip(), incoming.values.get("last_name", "").strip()
    domain = incoming.domain()
    if not (first and last and domain):
        return None, "", ""
    candidates = list(locked.filter(first_name__iexact=first, last_name__iexact=last, company_record__domain=domain,
                                    merged_into__isnull=True)[:2])
    if len(candidates) == 1:
        return candidates[0], "name_domain", f"first and last name at {domain}"
    if candidates:
        return None, "", f"several leads named {first} {last} at {domain}: not matched by name, a reviewer may merge"
    return None, "", ""


def _survivor(lead: Lead) -> Lead:
    """A merged lead's keys lead to the lead it was merged into."""
    seen = set()
    while lead.merged_into_id and lead.pk not in seen:
        seen.add(lead.pk)
        lead = Lead.objects.select_for_update().get(pk=lead.merged_into_id)
    return lead


def _key_names(incoming: Incoming) -> list[str]:
    return [name for name, value in (("external_id", incoming.values.get("external_id")),
                                     ("source_record", incoming.source_record_key), ("email", incoming.email))
            if value]


def _create(incoming: Incoming) -> Lead:
    values = {name: str(incoming.values.get(name, "")).strip() for name in LEAD_FIELDS}
    values["email"] = incoming.email
    # An external ID nobody holds is not ours to adopt: the new lead gets its own.
    attributes = _present(incoming.attributes)
    lead = Lead(**values, attributes=attributes,
                field_sources={k: incoming.source_slug for k, v in values.items() if v and k in LEAD_FIELDS},
                field_times={**{k: incoming.at.isoformat() for k, v in values.items() if v},
                             **{f"attributes.{k}": incoming.at.isoformat() for k in attributes}})
    _touch(lead, incoming)
    _consent(lead, incoming)
    lead.save()
    if key := incoming.source_record_key:
        LeadIdentity.objects.create(lead=lead, kind=LeadIdentity.Kind.SOURCE_RECORD, value=key)
    return lead


def _present(values: dict) -> dict:
    return {k: v for k, v in values.items() if not _blank(v)}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or value in ([], {})


# --- Merging -------------------------------------------------------------------------------


def _merge(lead: Lead, incoming: Incoming) -> dict:
    """Apply the merge rules; returns {"changed": {field: [before, after]}, "kept": {field: why}}."""
    rules = {rule.field: rule for rule in MergeRule.objects.all()}
    changed: dict[str, list] = {}
    kept: dict[str, str] = {}
    incoming_values = {name: str(incoming.values.get(name, "")).strip() for name in LEAD_FIELDS}
    incoming_values["email"] = incoming.email
    for name, new in incoming_values.items():
        old = getattr(lead, name)
        verdict = _wins(name, old, new, lead, incoming, rules)
        if verdict is True:
            if name == "email" and Lead.objects.filter(email=new).exclude(pk=lead.pk).exists():
                kept[name] = f"{new} belongs to another lead; a reviewer may merge the two"
                continue
            setattr(lead, name, new)
            _set_origin(lead, name, incoming)
            changed[name] = [old, new]
        elif verdict:
            kept[name] = verdict
    attributes = dict(lead.attributes)
    for name, new in incoming.attributes.items():
        path = f"attributes.{name}"
        verdict = _wins(path, attributes.get(name), new, lead, incoming, rules)
        if verdict is True:
            changed[path] = [attributes.get(name), new]
            attributes[name] = new
            _set_origin(lead, path, incoming)
        elif verdict:
            kept[path] = verdict
    lead.attributes = attributes
    changed.update(_touch(lead, incoming))
    changed.update(_consent(lead, incoming))
    return {"changed": changed, "kept": kept}


def _set_origin(lead: Lead, path: str, incoming: Incoming) -> None:
    lead.field_sources[path] = incoming.source_slug
    lead.field_times[path] = incoming.at.isoformat()


def field_time(lead: Lead, path: str) -> datetime | None:
    """When the lead's value of `path` changed at its origin, when known."""
    moment = parse_datetime(str(lead.field_times.get(path) or ""))
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, dt_timezone.utc)
    return moment


def _wins(path: str, old: Any, new: Any, lead: Lead, incoming: Incoming, rules: dict[str, MergeRule]) -> bool | str:
    """True when `new` replaces `old`; otherwise "" (nothing to do) or why the old value stays."""
    if _blank(new) or old == new:
        return ""  # blanks never overwrite values
    if _blank(old):
        return True
    source = incoming.source_slug
    rule = rules.get(path)
    mode = rule.mode if rule else (MergeRule.Mode.FIRST if path == "email" else MergeRule.Mode.NEWEST)
    if mode == MergeRule.Mode.NEWEST:
        current_at = field_time(lead, path)
        if current_at is not None and incoming.at < current_at:
            return f"the value set at {current_at.isoformat()} is newer than this submission's ({incoming.at.isoformat()})"
        return True
    if mode == MergeRule.Mode.FIRST:
        return "the first value is kept" + (" (the new address is kept as another email)" if path == "email" else "")
    order = rule.sources
    rank = {slug: i for i, slug in enumerate(order)}
    current = lead.field_sources.get(path, "")
    if rank.get(source, len(order)) <= rank.get(current, len(order)):
        return True
    return f"set by {current or 'an earlier source'}, which ranks above {source}"


def _touch(lead: Lead, incoming: Incoming) -> dict[str, list]:
    """First touch is kept; last touch is replaced by any submission that carries one."""
    touch = {k: str(v).strip() for k, v in incoming.attribution.items() if not _blank(v)}
    if not touch:
        return {}
    if "utm_campaign" in touch:
        touch["utm_campaign"] = campaign_name(touch["utm_campaign"])
    changes = {}
    if not lead.first_touch:
        lead.first_touch = {**touch, "source": incoming.source_slug, "at": incoming.at.isoformat()}
        changes["first_touch"] = [None, touch]
    current_at = field_time(lead, "attribution")
    if touch != lead.attribution and (current_at is None or incoming.at >= current_at):
        changes["last_touch"] = [lead.attribution, touch]
        lead.attribution = touch
        lead.field_times["attribution"] = incoming.at.isoformat()
    return changes


def campaign_name(raw: str) -> str:
    """The campaign's reporting name when an alias names it, else the value as normalized."""
    alias = CampaignAlias.objects.filter(raw=campaign_key(raw)).values_list("name", flat=True).first()
    return alias or raw


def _consent(lead: Lead, incoming: Incoming) -> dict[str, list]:
    """Consent is only ever what the person said: an explicit yes or no, with when, which
    wording and where. A submission without an answer changes nothing; an older answer never
    replaces a newer one."""
    answer = _yes_no(incoming.values.get("marketing_opt_in"))
    if answer is None:
        return {}
    given_at = parse_datetime(incoming.values.get("consent_at", "") or "") or incoming.at
    if timezone.is_naive(given_at):
        given_at = timezone.make_aware(given_at, dt_timezone.utc)
    if lead.consent_at and given_at < lead.consent_at:
        return {}
    new = {"marketing_opt_in": answer, "consent_at": given_at,
           "consent_text": incoming.values.get("consent_text", "").strip(),
           "consent_source": incoming.values.get("consent_source", "").strip() or incoming.source_slug}
    changes = {}
    for name, value in new.items():
        if getattr(lead, name) != value:
            changes[name] = [_plain(getattr(lead, name)), _plain(value)]
            setattr(lead, name, value)
    return changes


def _yes_no(value: Any) -> bool | None:
    text = str(value if value is not None else "").strip().lower()
    return {"true": True, "false": False}.get(text)


def _identities_add(lead: Lead, incoming: Incoming, replaced_email: str = "") -> None:
    """Remember the keys this submission brought, and an address a merge rule replaced, so
    each of them finds the lead again."""
    keys = []
    if key := incoming.source_record_key:
        keys.append((LeadIdentity.Kind.SOURCE_RECORD, key))
    for email in (incoming.email, replaced_email):
        if email and email != lead.email:
            keys.append((LeadIdentity.Kind.EMAIL, email))
    for kind, value in keys:
        if Lead.objects.filter(email=value).exclude(pk=lead.pk).exists():
            continue  # another lead's own address: not an alias of this one
        try:
            with transaction.atomic():
                LeadIdentity.objects.get_or_create(kind=kind, value=value, defaults={"lead": lead})
        except IntegrityError:
            pass  # claimed concurrently by the same lead or another one


# --- Companies -----------------------------------------------------------------------------


def _company_link(lead: Lead) -> bool:
    """Link the lead to the one company of its domain; returns whether the lead changed."""
    domain = company_domain(email=lead.email, attributes=lead.attributes)
    if not domain:
        return False
    company = company_for_domain(domain, name=lead.company)
    if lead.company_record_id == company.pk:
        return False
    lead.company_record = company
    return True


def company_for_domain(domain: str, *, name: str = "") -> Company:
    company = Company.objects.filter(domain=domain).first()
    if company is None:
        try:
            with transaction.atomic():
                company = Company.objects.create(domain=domain, name=name)
        except IntegrityError:
            company = Company.objects.get(domain=domain)
    if name and not company.name:
        Company.objects.filter(pk=company.pk, name="").update(name=name)
        company.name = name
    return company


def lead_customer_found(*, lead: Lead, detail: str) -> bool:
    """A CRM told us this person is an existing customer: mark them and route them to account
    management. Returns whether the lead changed (the caller queues its push again)."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        if lead.lifecycle_stage == Lead.Stage.CUSTOMER:
            return False
        changed = lifecycle.lead_mark_customer(lead=lead, detail=detail)
        changed = routing.lead_route(lead=lead) or changed
        if changed:
            lead.save()
        return changed


# --- Reviewer merge ------------------------------------------------------------------------


class MergeError(Exception):
    """Two leads that cannot be merged; the message is for the reviewer."""


@dataclass
class LeadMerge:
    survivor: Lead
    other: Lead
    other_email: str
    changes: dict


def leads_merge(*, survivor: Lead, other: Lead) -> LeadMerge:
    """Merge `other` into `survivor`, in the caller's transaction. The survivor keeps its values
    and fills its blanks from the other; the other lead stays, marked merged, with its own
    history (submissions, push jobs, decisions) untouched, and its keys (email, source record
    IDs) now find the survivor. The caller stops the other's deliveries and records the merge
    (`merge_decisions_record`)."""
    if survivor.pk == other.pk:
        raise MergeError("A lead cannot be merged into itself.")
    locked = {lead.pk: lead for lead in Lead.objects.select_for_update().filter(pk__in=[survivor.pk, other.pk])
              .order_by("pk")}
    survivor, other = locked[survivor.pk], locked[other.pk]
    if survivor.merged_into_id or other.merged_into_id:
        raise MergeError("One of the leads was already merged; merge into the lead it was merged into.")
    changes = _merge_values(survivor, other)
    other_email = other.email
    other.email, other.merged_into = "", survivor
    other.save(update_fields=["email", "merged_into", "updated_at"])
    if other_email and not survivor.email:
        survivor.email = other_email
        changes["email"] = ["", other_email]
    elif other_email and other_email != survivor.email:
        LeadIdentity.objects.get_or_create(kind=LeadIdentity.Kind.EMAIL, value=other_email,
                                           defaults={"lead": survivor})
    LeadIdentity.objects.filter(lead=other).update(lead=survivor)
    survivor.save()
    return LeadMerge(survivor, other, other_email, changes)


def merge_decisions_record(*, merge: LeadMerge, actor=None, crm_records: list[str], stopped: int) -> None:
    """Log the merge on both leads: what the survivor took over, the CRM records still holding
    the merged lead, and how many of its pending pushes were stopped."""
    survivor, other = merge.survivor, merge.other
    left = (f" The CRM still holds the merged lead's records ({'; '.join(crm_records)}): merge them there."
            if crm_records else "")
    decision_record(lead=survivor, action=Action.MERGED, actor=actor, matched_by="reviewer",
                    detail=f"Merged {other.external_id} ({merge.other_email or 'no email'}) into this lead.{left}",
                    changes={"changed": merge.changes, "merged_lead": other.external_id})
    decision_record(lead=other, action=Action.MERGED, actor=actor, matched_by="reviewer",
                    detail=f"Merged into {survivor.external_id} ({survivor.email or 'no email'}); "
                           f"{stopped} pending push(es) stopped.")


def _merge_values(survivor: Lead, other: Lead) -> dict[str, list]:
    changes: dict[str, list] = {}
    for name in LEAD_FIELDS:
        if name != "email" and _blank(getattr(survivor, name)) and not _blank(getattr(other, name)):
            changes[name] = [getattr(survivor, name), getattr(other, name)]
            setattr(survivor, name, getattr(other, name))
    for name, value in other.attributes.items():
        if _blank(survivor.attributes.get(name)) and not _blank(value):
            survivor.attributes[name] = value
            changes[f"attributes.{name}"] = [None, value]
    if other.first_touch and (not survivor.first_touch
                              or other.first_touch.get("at", "") < survivor.first_touch.get("at", "")):
        changes["first_touch"] = [survivor.first_touch, other.first_touch]
        survivor.first_touch = other.first_touch
    if not survivor.attribution and other.attribution:
        survivor.attribution = other.attribution
    if other.marketing_opt_in is not None and (survivor.consent_at is None or
                                               (other.consent_at and other.consent_at > survivor.consent_at)):
        for name in ("marketing_opt_in", "consent_at", "consent_text", "consent_source"):
            changes[name] = [_plain(getattr(survivor, name)), _plain(getattr(other, name))]
            setattr(survivor, name, getattr(other, name))
    if lifecycle.ORDER[Lead.Stage(other.lifecycle_stage)] > lifecycle.ORDER[Lead.Stage(survivor.lifecycle_stage)]:
        changes["lifecycle_stage"] = [survivor.lifecycle_stage, other.lifecycle_stage]
        survivor.lifecycle_stage = other.lifecycle_stage
    for name in ("company_record", "owner", "team"):
        if getattr(survivor, f"{name}_id") is None and getattr(other, f"{name}_id") is not None:
            setattr(survivor, name, getattr(other, name))
            changes[name] = [None, str(getattr(other, name))]
    return changes


# --- Re-evaluation -------------------------------------------------------------------------


def lead_reevaluate(*, lead_id: int) -> Lead | None:
    """Apply the current scoring, customer and routing rules to an existing lead now, instead of
    at its next submission, in the caller's transaction. Returns the lead if it changed."""
    lead = Lead.objects.select_for_update().filter(pk=lead_id, merged_into__isnull=True).first()
    if lead is None:
        return None
    changed = _company_link(lead)
    changed = lifecycle.lead_evaluate(lead=lead) or changed
    changed = routing.lead_route(lead=lead) or changed
    if not changed:
        return None
    lead.save()
    return lead


# --- Values from a CRM ---------------------------------------------------------------------


# Lead fields a CRM's value (or a reviewer's choice) may be written to, besides attributes.<name>.
WRITABLE_PATHS = ("first_name", "last_name", "phone", "company", "country", "lifecycle_stage",
                  "owner.hubspot_owner_id", "owner.salesforce_user_id", "marketing_opt_in")


@dataclass
class Applied:
    changed: dict[str, list] = field(default_factory=dict)  # path -> [before, after]
    kept: dict[str, str] = field(default_factory=dict)  # path -> why the value could not be written


def lead_values_apply(*, lead: Lead, values: dict[str, Any], at: datetime, origin: str, detail: str,
                      action: str = Action.CRM_CHANGED, actor=None) -> Applied:
    """Write values a CRM holds (or a reviewer chose) into a lead, in the caller's transaction,
    with `at` as their change time at the origin, and log one decision. `values` maps lead paths
    (see WRITABLE_PATHS, attributes.<name>) to our form of the value; '' clears a field.
    The caller holds the lead's row lock."""
    result = Applied()
    for path, value in values.items():
        before, reason = _value_write(lead, path, value, at, origin)
        if reason:
            result.kept[path] = reason
            continue
        after = _path_value(lead, path)
        if before != after:
            result.changed[path] = [_plain(before), _plain(after)]
        lead.field_sources[path] = origin
        lead.field_times[path] = at.isoformat()
    if result.changed or result.kept:
        lead.save()
        decision_record(lead=lead, action=action, detail=detail, actor=actor,
                        changes={"changed": result.changed, "kept": result.kept, "at": at.isoformat(), "origin": origin})
    return result


def _path_value(lead: Lead, path: str) -> Any:
    if path.startswith("attributes."):
        return lead.attributes.get(path.partition(".")[2])
    if path.startswith("owner."):
        return str(lead.owner) if lead.owner_id else None
    return getattr(lead, path)


def _value_write(lead: Lead, path: str, value: Any, at: datetime, origin: str) -> tuple[Any, str]:
    """Set one path; returns (value before, '' or why nothing was written)."""
    before = _path_value(lead, path)
    text = "" if value is None else str(value).strip()
    if path.startswith("attributes.") and len(path) > len("attributes."):
        name = path.partition(".")[2]
        attributes = dict(lead.attributes)
        if text:
            attributes[name] = value
        else:
            attributes.pop(name, None)
        lead.attributes = attributes
        return before, ""
    if path in LEAD_FIELDS and path != "email":
        setattr(lead, path, text[:lead._meta.get_field(path).max_length])
        return before, ""
    if path == "lifecycle_stage":
        if text not in Lead.Stage.values:
            return before, f"'{text}' is not a lifecycle stage here ({', '.join(Lead.Stage.values)})"
        lead.lifecycle_stage = text
        return before, ""
    if path in ("owner.hubspot_owner_id", "owner.salesforce_user_id"):
        if not text:
            lead.owner = None
            return before, ""
        owner = Owner.objects.filter(**{path.partition(".")[2]: text}).select_related("team").first()
        if owner is None:
            return before, f"no owner here has the CRM user ID {text}: add it to an owner"
        lead.owner, lead.team = owner, owner.team
        return before, ""
    if path == "marketing_opt_in":
        answer = _yes_no(text)
        if answer is None:
            return before, f"'{text}' is not a yes or no answer"
        if lead.consent_at and at < lead.consent_at:
            return before, f"the person's answer of {lead.consent_at.isoformat()} is newer"
        lead.marketing_opt_in, lead.consent_at, lead.consent_source = answer, at, origin
        return before, ""
    return before, f"{path} cannot be written from outside"
