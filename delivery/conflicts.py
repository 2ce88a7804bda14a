"""The conflict-review queue's actions: a reviewer keeps our value, takes the CRM's, enters a
third, or (for a record deleted or merged away in the CRM) recreates it or stops syncing the lead
there. Each resolution leaves both sides agreeing once the outbox has run, is recorded on the
conflict (who, when, which values) and on the lead's decision log."""

from dataclasses import dataclass
import logging
from typing import Any

from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from delivery.fieldmap import render
from delivery.models import Conflict, DestinationField, LeadDelivery, PushJob
from delivery.reconcile import ours_value
from delivery.services import push_jobs_enqueue, push_jobs_retry
from leads.decisions import decision_record
from leads.models import Lead, LeadDecision
from leads.services import lead_values_apply

log = logging.getLogger(__name__)

R = Conflict.Resolution
FIELD_RESOLUTIONS = (R.KEEP_OURS, R.TAKE_CRM, R.VALUE)
RECORD_RESOLUTIONS = (R.RECREATE, R.UNLINK)


class ConflictError(Exception):
    """A resolution that cannot be applied; the message is for the reviewer."""


@dataclass
class Resolved:
    conflict: Conflict
    pushed: bool  # our side (or the entered value) goes to the CRM with the next push


def conflict_resolve(*, conflict_id: int, resolution: str, actor, value: Any = None, note: str = "") -> Resolved:
    """Apply a reviewer's decision to one open conflict."""
    with transaction.atomic():
        # Locks in the poller's order (lead, its delivery, then the conflict), so the two never
        # wait on each other.
        lead_id, destination_id = Conflict.objects.values_list("lead_id", "destination_id").get(pk=conflict_id)
        Lead.objects.select_for_update().filter(pk=lead_id).first()
        LeadDelivery.objects.select_for_update().filter(lead_id=lead_id, destination_id=destination_id).first()
        conflict = Conflict.objects.select_for_update(of=("self",)).select_related("destination", "field").get(pk=conflict_id)
        if conflict.status != Conflict.Status.OPEN:
            raise ConflictError(f"This conflict is already {conflict.get_status_display().lower()}.")
        allowed = FIELD_RESOLUTIONS if conflict.kind == Conflict.Kind.FIELD else RECORD_RESOLUTIONS
        if resolution not in allowed:
            raise ConflictError(f"'{resolution}' does not resolve a {conflict.get_kind_display().lower()} conflict; "
                                f"use one of {', '.join(allowed)}.")
        lead = Lead.objects.select_for_update().get(pk=conflict.lead_id)
        delivery = LeadDelivery.objects.select_for_update().filter(
            lead_id=conflict.lead_id, destination_id=conflict.destination_id).first()
        if conflict.kind == Conflict.Kind.FIELD:
            pushed, final = _field_resolve(conflict, lead, delivery, resolution, value, actor)
        else:
            pushed, final = _record_resolve(conflict, delivery, resolution), None
        Conflict.objects.filter(pk=conflict.pk).update(
            status=Conflict.Status.RESOLVED, resolution=resolution, resolved_value=final, resolved_by=actor,
            resolved_at=timezone.now(), note=(note or conflict.note)[:2000], updated_at=timezone.now())
        decision_record(lead=lead, action=LeadDecision.Action.CONFLICT, actor=actor,
                        detail=f"{_who(actor)} resolved the {conflict.destination.name} conflict on "
                               f"{conflict.target or conflict.get_kind_display().lower()}: {R(resolution).label}"
                               + (f" ({note})" if note else ""),
                        changes={"conflict": conflict.pk, "resolution": resolution, "base": conflict.base,
                                 "ours": conflict.ours, "theirs": conflict.theirs, "value": final})
    conflict.refresh_from_db()
    log.info("sync conflict resolved", extra={"conflict": conflict.pk, "resolution": resolution, "actor": _who(actor)})
    return Resolved(conflict, pushed)


def _field_resolve(conflict: Conflict, lead: Lead, delivery: LeadDelivery | None, resolution: str, value: Any,
                   actor) -> tuple[bool, Any]:
    line = conflict.field
    source = conflict.source or (line.source.strip() if line else "")
    origin = f"review by {_who(actor)}"
    now = timezone.now()
    if resolution == R.TAKE_CRM:
        if line is None:
            raise ConflictError("The field-map line of this conflict was deleted; enter a value instead.")
        _apply(lead, source, ours_value(line, conflict.theirs), now, origin, actor)
        final = conflict.theirs
        _base_set(delivery, conflict.target, conflict.theirs)
        push_jobs_enqueue(lead=lead, exclude_destination_id=conflict.destination_id)
        return False, final
    if resolution == R.VALUE:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ConflictError("Enter the value both sides should hold.")
        _apply(lead, source, value, now, origin, actor)
    # Keep ours, or the entered value: the base becomes the CRM's current value, so the next
    # poll sees the CRM unchanged and the dispatcher sends our value.
    _base_set(delivery, conflict.target, conflict.theirs)
    lead.refresh_from_db()
    fields = [line] if line else []
    final = render(lead, fields, company_key="")[0].get(conflict.target) if line else value
    push_jobs_enqueue(lead=lead)
    return True, final


def _apply(lead: Lead, source: str, value: Any, at, origin: str, actor) -> None:
    result = lead_values_apply(lead=lead, values={source: value}, at=at, origin=origin,
                               detail=f"Set by {origin}", action=LeadDecision.Action.CONFLICT, actor=actor)
    if result.kept:
        raise ConflictError(f"{source}: {result.kept[source]}")


def _base_set(delivery: LeadDelivery | None, target: str, theirs: Any) -> None:
    if delivery is None:
        return
    primary = dict(delivery.pushed.get("primary") or {})
    primary[target] = theirs
    delivery.pushed = {**delivery.pushed, "primary": primary}
    delivery.save(update_fields=["pushed"])


def _record_resolve(conflict: Conflict, delivery: LeadDelivery | None, resolution: str) -> bool:
    if delivery is None:
        return False
    if resolution == R.UNLINK:
        delivery.crm_state = LeadDelivery.CrmState.UNLINKED
        delivery.save(update_fields=["crm_state"])
        now = timezone.now()
        PushJob.objects.filter(lead_id=delivery.lead_id, destination_id=delivery.destination_id,
                               status__in=[PushJob.Status.PENDING, PushJob.Status.REVIEW]).update(
            status=PushJob.Status.SUPERSEDED, last_error="A reviewer stopped syncing this lead here.", finished_at=now,
            updated_at=now)
        return False
    # Recreate: forget the record the CRM no longer has; the next push creates a new one.
    delivery.crm_state = LeadDelivery.CrmState.LINKED
    delivery.crm_record_id, delivery.pushed, delivery.looked_up_at = "", {}, None
    delivery.save(update_fields=["crm_state", "crm_record_id", "pushed", "looked_up_at"])
    held = PushJob.objects.filter(lead_id=delivery.lead_id, destination_id=delivery.destination_id,
                                  status=PushJob.Status.REVIEW, last_error_code="CRM_RECORD_HELD")
    if not push_jobs_retry(jobs=held):
        push_jobs_enqueue(lead=delivery.lead, only_destination_id=delivery.destination_id)
    return True


def conflicts_resolve(*, conflicts: QuerySet, resolution: str, actor) -> tuple[int, list[str]]:
    """Bulk resolve: each open conflict in turn; returns (resolved, problems)."""
    done, problems = 0, []
    for conflict_id in conflicts.filter(status=Conflict.Status.OPEN).values_list("pk", flat=True):
        try:
            conflict_resolve(conflict_id=conflict_id, resolution=resolution, actor=actor)
            done += 1
        except ConflictError as exc:
            problems.append(f"#{conflict_id}: {exc}")
    return done, problems


def field_prefer(*, conflict: Conflict, side: str, actor) -> tuple[int, list[str]]:
    """'Always prefer this side for this field': set the field's rule to ours or the CRM's,
    then resolve every open conflict of that field at that destination that way."""
    if conflict.field is None or conflict.kind != Conflict.Kind.FIELD:
        raise ConflictError("Only a field conflict whose field-map line still exists can set the field's rule.")
    line = conflict.field
    rule = DestinationField.Rule.OURS if side == R.KEEP_OURS else DestinationField.Rule.CRM
    if line.direction == DestinationField.Direction.FROM_CRM and rule != DestinationField.Rule.CRM:
        raise ConflictError("This field comes from the CRM; set its direction to 'both' first to prefer ours.")
    line.rule = rule
    try:
        line.full_clean()
    except ValidationError as exc:
        raise ConflictError("; ".join(exc.messages)) from None
    line.save(update_fields=["rule"])
    LogEntry.objects.log_actions(user_id=actor.pk, queryset=[line.destination], action_flag=CHANGE,
                                 change_message=f"Field {line.target}: rule set to '{line.get_rule_display()}' from the "
                                                f"conflict queue.", single_object=True)
    log.info("sync rule set", extra={"field": line.target, "destination_id": line.destination_id, "rule": rule,
                                     "actor": _who(actor)})
    same_field = Conflict.objects.filter(destination_id=conflict.destination_id, target=conflict.target,
                                         kind=Conflict.Kind.FIELD, status=Conflict.Status.OPEN)
    return conflicts_resolve(conflicts=same_field, resolution=side, actor=actor)


def conflict_assign(*, conflicts: QuerySet, user) -> int:
    return conflicts.filter(status=Conflict.Status.OPEN).update(assignee=user, updated_at=timezone.now())


def _who(actor) -> str:
    return getattr(actor, "get_username", lambda: "")() or "a reviewer"
