"""The three-way comparison of two-way sync, per record and field, and the conflicts it opens.

    base    the value last synced (pushed or pulled): LeadDelivery.pushed
    ours    the lead's value now, rendered through the field map
    theirs  the CRM's value now

The CRM unchanged (theirs == base, which includes our own writes coming back: the echo) is
nothing to do; the outbox carries our changes as always. The CRM changed and we did not: the
CRM's value is written to the lead (with the CRM's change time, on the lead's decision log) and
becomes the base. Both changed to the same value: the base moves. Both changed to different
values: the field's rule decides, and 'manual review' opens a Conflict that holds the field's
pushes until a reviewer resolves it. Re-reading a record applies nothing twice.

Records deleted or merged away in the CRM hold the lead's pushes to that destination and open a
Conflict: nothing is recreated until a reviewer says so.

Used by the poller (delivery.sync) and by the dispatcher, which reads two-way fields back just
before it would overwrite them. It queues no pushes itself: it says which leads need them.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
import phonenumbers

from delivery.connectors.base import CrmChange
from delivery.fieldmap import render
from delivery.models import Conflict, Destination, DestinationField, LeadDelivery
from leads.decisions import decision_record
from leads.models import Lead, LeadDecision
from leads.services import field_time, lead_values_apply
from mapping.transforms import phone_region

log = logging.getLogger(__name__)

Direction = DestinationField.Direction
Rule = DestinationField.Rule
State = LeadDelivery.CrmState


def sync_fields(destination: Destination) -> list[DestinationField]:
    """The destination's field-map lines that read the CRM's changes back."""
    return [f for f in destination.fields.all() if f.reads_back and f.object == DestinationField.Object.PRIMARY]


@dataclass
class Reconciled:
    """What a reconciliation did, and the pushes it calls for (queued by the caller)."""

    applied: int = 0  # field changes applied to a lead or a base
    conflicts_opened: int = 0
    held: int = 0  # records newly held (deleted or merged in the CRM)
    pulled: set[int] = field(default_factory=set)  # leads that took CRM values: push them to the other destinations
    push_here: set[int] = field(default_factory=set)  # leads whose value won over the CRM's: push them here


# --- The three-way comparison --------------------------------------------------------------


def changes_reconcile(*, destination: Destination, fields: list[DestinationField], changes: list[CrmChange],
                      report: Reconciled | None = None) -> Reconciled:
    """Reconcile CRM records with the leads we hold for them, in the caller's transaction.
    Records we do not hold are not ours, and are left alone."""
    report = report or Reconciled()
    ids = {c.crm_id for c in changes} | {m for c in changes for m in c.merged_ids}
    deliveries = {d.crm_record_id: d for d in LeadDelivery.objects.filter(destination=destination, crm_record_id__in=ids)}
    for change in changes:
        for merged_id in change.merged_ids:
            held = deliveries.get(merged_id)
            if held is not None and merged_id != change.crm_id:
                report.held += _hold(held, State.MERGED, change, merged_into=change.crm_id)
        delivery = deliveries.get(change.crm_id)
        if delivery is None:
            continue
        if change.merged_into and change.merged_into != change.crm_id:  # Salesforce: deleted by the merge
            report.held += _hold(delivery, State.MERGED, change, merged_into=change.merged_into)
        elif change.archived:
            report.held += _hold(delivery, State.DELETED, change)
        elif fields and delivery.crm_state == State.LINKED:
            report.applied += _record_reconcile(destination, fields, delivery, change, report)
    return report


def _record_reconcile(destination: Destination, fields: list[DestinationField], delivery: LeadDelivery,
                      change: CrmChange, report: Reconciled) -> int:
    lead = Lead.objects.select_for_update().filter(pk=delivery.lead_id, merged_into__isnull=True).first()
    if lead is None:
        return 0
    delivery = LeadDelivery.objects.select_for_update().get(pk=delivery.pk)
    all_fields = list(destination.fields.all())
    ours_all, _ = render(lead, all_fields, company_key="")
    base_all = dict(delivery.pushed.get("primary") or {})
    take: dict[str, tuple[DestinationField, Any]] = {}  # target -> (field, theirs)
    push_ours = False
    applied = 0
    for line in fields:
        target = line.target
        if target not in change.values:
            continue
        theirs, base, ours = _crm_value(line, change.values.get(target), lead), base_all.get(target), ours_all.get(target)
        if same(theirs, base):
            # The CRM did not change it (or it is our own write coming back). A conflict still
            # open on it means the CRM's change was undone there: ours stands and goes out.
            if not _converged_close(lead, destination, target, ours, theirs) and _undone_close(lead, destination, target):
                push_ours = True
            continue
        if line.direction == Direction.FROM_CRM or same(ours, base) or (base is None and _blank(ours)):
            take[target] = (line, theirs)
            continue
        if same(ours, theirs):
            base_all[target] = theirs  # both sides made the same change
            applied += 1
            _converged_close(lead, destination, target, ours, theirs)
            continue
        if change.by_us:
            # The CRM says its last change was our own write (a push whose answer was lost):
            # not a person's change. Ours, changed since, goes out.
            base_all[target] = theirs
            push_ours = True
            applied += 1
            continue
        verdict = _rule_verdict(destination, line, lead, change, ours, theirs)
        if verdict == "theirs":
            take[target] = (line, theirs)
        elif verdict == "ours":
            # Ours goes out with the next push: the base becomes the CRM's value, so the
            # comparison sees the CRM unchanged and the dispatcher sees ours changed.
            base_all[target] = theirs
            push_ours = True
            applied += 1
            decision_record(lead=lead, action=LeadDecision.Action.CONFLICT,
                            detail=f"{destination.name}: {target} changed on both sides; rule "
                                   f"'{line.get_rule_display() if line.rule else Rule(line.effective_rule()).label}' kept ours",
                            changes={target: {"base": base, "ours": ours, "theirs": theirs}})
        else:
            report.conflicts_opened += _conflict_open(lead, destination, line, delivery, change, base, ours, theirs)
    if take:
        before = dict(base_all)
        refused = _take(destination, lead, change, take, base_all)
        applied += len(take) - len(refused)
        for target, reason in refused.items():
            # The lead could not hold the CRM's value: the base stays, so the value is not
            # pushed back over the CRM's, and a reviewer decides.
            line, theirs = take[target]
            if target in before:
                base_all[target] = before[target]
            else:
                base_all.pop(target, None)
            report.conflicts_opened += _conflict_open(lead, destination, line, delivery, change, before.get(target),
                                                      ours_all.get(target), theirs, note=reason)
    if applied or take:
        delivery.pushed = {**delivery.pushed, "primary": base_all}
    delivery.crm_modified_at = change.modified_at
    delivery.save(update_fields=["pushed", "crm_modified_at"])
    if take:
        report.pulled.add(lead.pk)  # other destinations get the new values; this one holds them already
    if push_ours:
        report.push_here.add(lead.pk)
    return applied


def _take(destination: Destination, lead: Lead, change: CrmChange, take: dict[str, tuple[DestinationField, Any]],
          base_all: dict[str, Any]) -> dict[str, str]:
    """Write the CRM's values to the lead (converted back through each field's value map) and
    make them the base. Returns the targets the lead refused, with why."""
    values: dict[str, Any] = {}
    for target, (line, theirs) in take.items():
        values[line.source.strip()] = ours_value(line, theirs)
        base_all[target] = theirs
    at = crm_time(destination, change.modified_at)
    who = next((change.changed_by[t] for t in take if change.changed_by.get(t)), "")
    origin = f"{destination.name}" + (f" ({who})" if who else "")
    result = lead_values_apply(lead=lead, values=values, at=at, origin=origin,
                               detail=f"{destination.name} record {change.crm_id} changed "
                                      f"{', '.join(sorted(values))}" + (f" by {who}" if who else ""))
    refused = {target: result.kept[line.source.strip()] for target, (line, _) in take.items()
               if line.source.strip() in result.kept}
    for target, (line, theirs) in take.items():
        if target not in refused:
            _converged_close(lead, destination, target, theirs, theirs)
    return refused


def _crm_value(line: DestinationField, theirs: Any, lead: Lead) -> Any:
    """The CRM's value as we would hold it: a phone number typed in any format, in E.164 (as
    every mapping stores them), so '+44 20 7946 0000' and '+442079460000' are one number."""
    if line.source.strip() != "phone" or _blank(theirs):
        return theirs
    try:
        number = phonenumbers.parse(str(theirs), phone_region(lead.country) or None)
    except phonenumbers.NumberParseException:
        return theirs
    if not phonenumbers.is_valid_number(number):
        return theirs
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _rule_verdict(destination: Destination, line: DestinationField, lead: Lead, change: CrmChange, ours: Any,
                  theirs: Any) -> str:
    """'ours', 'theirs' or 'manual' for a field both sides changed to different values."""
    rule = line.effective_rule()
    if rule == Rule.OURS:
        return "ours"
    if rule == Rule.CRM:
        return "theirs"
    if rule == Rule.CRM_UNLESS_BLANK:
        return "ours" if _blank(theirs) else "theirs"
    if rule == Rule.MOST_RECENT:
        return most_recent(destination, ours_at=field_time(lead, line.source.strip()),
                           theirs_at=crm_time(destination, change.changed_at.get(line.target) or change.modified_at))
    return "manual"


def most_recent(destination: Destination, *, ours_at: datetime | None, theirs_at: datetime) -> str:
    """The later change wins, both in our clock (the CRM's corrected by its measured offset).
    Changes closer than the destination's clock margin are a tie, and a tie goes to the CRM:
    that is where a person typed the value."""
    if ours_at is None:
        return "theirs"
    margin = timedelta(seconds=destination.clock_margin_seconds)
    if abs(theirs_at - ours_at) <= margin:
        return "theirs"
    return "theirs" if theirs_at > ours_at else "ours"


def crm_time(destination: Destination, moment: datetime) -> datetime:
    """A CRM timestamp in our clock."""
    return moment - timedelta(seconds=destination.clock_offset_seconds or 0)


def ours_value(line: DestinationField, theirs: Any) -> Any:
    """The CRM's value in our form: the field's value map read backwards."""
    text = "" if theirs is None else str(theirs)
    for ours, crm in (line.value_map or {}).items():
        if str(crm) == text:
            return ours
    if line.source.strip() == "lifecycle_stage":
        return text.lower()
    return theirs if theirs is not None else ""


# --- Conflicts -----------------------------------------------------------------------------


def _conflict_open(lead: Lead, destination: Destination, line: DestinationField, delivery: LeadDelivery,
                   change: CrmChange, base: Any, ours: Any, theirs: Any, note: str = "") -> int:
    """Open (or refresh) the field's conflict; returns 1 when a new one was opened. `note`:
    why the CRM's value could not simply be taken."""
    target = line.target
    values = {"field": line, "source": line.source.strip(), "crm_record_id": delivery.crm_record_id, "base": base,
              "note": (f"The CRM's value cannot be written here: {note}." if note else ""),
              "ours": ours, "theirs": theirs, "ours_at": field_time(lead, line.source.strip()),
              "ours_by": lead.field_sources.get(line.source.strip(), ""),
              "theirs_at": crm_time(destination, change.changed_at.get(target) or change.modified_at),
              "theirs_by": change.changed_by.get(target, "")}
    existing = Conflict.objects.filter(lead=lead, destination=destination, target=target, kind=Conflict.Kind.FIELD,
                                       status=Conflict.Status.OPEN).first()
    if existing is not None:
        Conflict.objects.filter(pk=existing.pk).update(**values, updated_at=timezone.now())
        return 0
    try:
        with transaction.atomic():
            Conflict.objects.create(lead=lead, destination=destination, target=target, kind=Conflict.Kind.FIELD, **values)
    except IntegrityError:
        return 0
    why = f"the CRM's value {theirs!r} cannot be written here ({note})" if note else \
        f"changed on both sides ({ours!r} here, {theirs!r} in the CRM)"
    decision_record(lead=lead, action=LeadDecision.Action.CONFLICT,
                    detail=f"{destination.name}: {target} {why}; held for review",
                    changes={target: {"base": base, "ours": ours, "theirs": theirs}})
    log.info("sync conflict opened", extra={"destination": destination.name, "lead": lead.external_id, "field": target})
    return 1


def _converged_close(lead: Lead, destination: Destination, target: str, ours: Any, theirs: Any) -> int:
    """An open conflict whose sides now agree closes itself; returns how many closed."""
    if not same(ours, theirs):
        return 0
    return Conflict.objects.filter(lead=lead, destination=destination, target=target, kind=Conflict.Kind.FIELD,
                                   status=Conflict.Status.OPEN).update(
        status=Conflict.Status.CLOSED, resolution=Conflict.Resolution.CONVERGED, resolved_value=theirs,
        resolved_at=timezone.now(), updated_at=timezone.now())


def _undone_close(lead: Lead, destination: Destination, target: str) -> int:
    """The CRM's side of an open conflict went back to the last synced value: only ours
    changed, so the conflict closes and ours goes out."""
    return Conflict.objects.filter(lead=lead, destination=destination, target=target, kind=Conflict.Kind.FIELD,
                                   status=Conflict.Status.OPEN).update(
        status=Conflict.Status.CLOSED, resolution=Conflict.Resolution.KEEP_OURS, resolved_at=timezone.now(),
        note="The CRM's change was undone in the CRM; ours stands and is pushed.", updated_at=timezone.now())


def open_conflict_targets(*, lead_ids: list[int], destination: Destination) -> dict[int, set[str]]:
    """Per lead, the CRM fields held by an open conflict (the dispatcher does not push them)."""
    held: dict[int, set[str]] = {}
    rows = Conflict.objects.filter(destination=destination, lead_id__in=lead_ids, kind=Conflict.Kind.FIELD,
                                   status=Conflict.Status.OPEN).values_list("lead_id", "target", "theirs")
    for lead_id, target, _theirs in rows:
        held.setdefault(lead_id, set()).add(target)
    return held


def _hold(delivery: LeadDelivery, state: str, change: CrmChange, merged_into: str = "") -> int:
    """A record deleted or merged away in the CRM: stop pushing the lead there and ask a
    reviewer. Returns 1 when newly held."""
    held = LeadDelivery.objects.filter(pk=delivery.pk, crm_state=State.LINKED).update(crm_state=state)
    if not held:
        return 0
    delivery.crm_state = state
    kind = Conflict.Kind.DELETED if state == State.DELETED else Conflict.Kind.MERGED
    try:
        with transaction.atomic():
            Conflict.objects.create(lead_id=delivery.lead_id, destination_id=delivery.destination_id, kind=kind,
                                    crm_record_id=delivery.crm_record_id, merged_into=merged_into,
                                    theirs_at=change.modified_at, theirs_by=next(iter(change.changed_by.values()), ""))
    except IntegrityError:
        pass
    what = "deleted" if state == State.DELETED else f"merged into {merged_into}"
    decision_record(lead=Lead(pk=delivery.lead_id), action=LeadDecision.Action.CONFLICT,
                    detail=f"{delivery.destination} record {delivery.crm_record_id} was {what} in the CRM; "
                           "pushes there are held until a reviewer decides")
    log.warning("crm record gone", extra={"destination_id": delivery.destination_id, "crm_record_id": delivery.crm_record_id,
                                          "state": state})
    return 1


# --- Comparing values ----------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def same(a: Any, b: Any) -> bool:
    """Equal as a CRM stores them: blanks are equal, booleans and numbers by value, date-times
    by instant, text without surrounding spaces."""
    if _blank(a) or _blank(b):
        return _blank(a) and _blank(b)
    ta, tb = _text(a), _text(b)
    if ta == tb:
        return True
    if isinstance(a, (int, float)) or isinstance(b, (int, float)):
        # A number on one side (a score) against the CRM's text of it; two strings are
        # compared as text: '02134' is not '2134'.
        try:
            return float(ta) == float(tb)
        except ValueError:
            return False
    da, db = _instant(ta), _instant(tb)
    return da is not None and da == db


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text.lower() if text.lower() in ("true", "false") else text


def _instant(text: str) -> datetime | None:
    try:
        moment = parse_datetime(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt_timezone.utc)
