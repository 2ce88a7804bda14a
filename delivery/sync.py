"""Two-way sync: the reconciliation poller. Per destination, on the worker's schedule (or at
once when asked), it reads the CRM records modified since the watermark (minus an overlap
window: CRM search lags its writes) page by page, reconciles each page with the leads we hold
(delivery.reconcile: the three-way comparison and the conflicts), and queues the pushes that
calls for.

A page's changes and the watermark that covers it commit in one transaction, so a poll killed
mid-page resumes from the last applied page; re-reading a record applies nothing twice.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
import logging
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Min, Q
from django.utils import timezone

from core.queue import enqueue
from delivery.connectors import connector_for
from delivery.connectors.base import ChangePage, PollError
from delivery.models import Conflict, Destination, DestinationField, LeadDelivery, SyncCursor
from delivery.reconcile import Reconciled, changes_reconcile, crm_time, sync_fields
from delivery.services import destination_pause, push_jobs_enqueue
from delivery.session import DestinationSession, RateLimitWait
from leads.models import Lead

log = logging.getLogger(__name__)

POLL_KINDS = (Destination.Kind.HUBSPOT, Destination.Kind.SALESFORCE)


# --- Scheduling ----------------------------------------------------------------------------


def polls_due_enqueue(*, now: datetime | None = None) -> int:
    """Queue a poll for every destination whose interval has passed (or that a person or a
    webhook asked to poll now). Cheap enough to run every sweep; racing sweepers queue once."""
    now = now or timezone.now()
    queued = 0
    destinations = Destination.objects.filter(is_active=True, paused_at__isnull=True, kind__in=POLL_KINDS).filter(
        Q(poll_interval_seconds__gt=0) | Q(sync_cursors__poll_requested_at__isnull=False)).distinct()
    for destination in destinations:
        cursor = _cursor(destination)
        requested = cursor.poll_requested_at is not None
        interval = timedelta(seconds=destination.poll_interval_seconds)
        # A poll cut short (a killed worker, a spent budget, its page limit) goes on at once.
        unfinished = bool(cursor.cursor)
        due = requested or unfinished or cursor.last_started_at is None or cursor.last_started_at + interval <= now
        if not due:
            continue
        # A queued poll whose message was lost is queued again after a while.
        stale = now - timedelta(seconds=settings.CRMSYNC["SYNC_POLL_LEASE_SECONDS"])
        claimed = SyncCursor.objects.filter(pk=cursor.pk).filter(
            Q(queued_at__isnull=True) | Q(queued_at__lt=stale)).filter(
            Q(leased_until__isnull=True) | Q(leased_until__lt=now)).update(queued_at=now)
        if claimed:
            enqueue("delivery.tasks.sync_poll", destination.pk)
            queued += 1
    return queued


def poll_request(*, destination: Destination) -> None:
    """'Poll now' (the admin's button): the next sweep queues a poll whatever the interval."""
    cursor = _cursor(destination)
    SyncCursor.objects.filter(pk=cursor.pk).update(poll_requested_at=timezone.now(), queued_at=None)
    enqueue("delivery.tasks.sync_poll", destination.pk)


def poll_hint(*, destination: Destination, object: str, crm_ids: list[str]) -> int:
    """A CRM webhook named these records: read them at the next poll, which is queued now. The
    webhook is only a hint; the poll reads the records' current values. Returns how many IDs
    are waiting."""
    if object != SyncCursor.Object.PRIMARY:
        return 0  # companies are only pushed (see pull_error)
    ids = [str(i) for i in crm_ids if str(i).strip()]
    with transaction.atomic():
        cursor = SyncCursor.objects.select_for_update().get(pk=_cursor(destination).pk)
        waiting = list(dict.fromkeys([*cursor.hinted_ids, *ids]))[-settings.CRMSYNC["SYNC_MAX_HINTS"]:]
        cursor.hinted_ids, cursor.poll_requested_at = waiting, timezone.now()
        cursor.save(update_fields=["hinted_ids", "poll_requested_at"])
    enqueue("delivery.tasks.sync_poll", destination.pk)
    return len(waiting)


def _cursor(destination: Destination, obj: str = SyncCursor.Object.PRIMARY) -> SyncCursor:
    try:
        with transaction.atomic():
            return SyncCursor.objects.get_or_create(destination=destination, object=obj)[0]
    except IntegrityError:
        return SyncCursor.objects.get(destination=destination, object=obj)


# --- The poll ------------------------------------------------------------------------------


@dataclass
class PollReport:
    destination: str
    records_read: int = 0
    changes_applied: int = 0
    conflicts_opened: int = 0
    held: int = 0
    calls: int = 0
    pages: int = 0
    error: str = ""
    skipped: str = ""

    def add(self, reconciled: Reconciled) -> None:
        self.changes_applied += reconciled.applied
        self.conflicts_opened += reconciled.conflicts_opened
        self.held += reconciled.held


def destination_poll(*, destination_id: int, max_pages: int | None = None) -> PollReport:
    """Read the CRM's changes since the watermark and reconcile them, one page per transaction.
    At most one poll per destination runs at a time (a lease on its cursor)."""
    destination = Destination.objects.get(pk=destination_id)
    report = PollReport(destination.name)
    if destination.kind not in POLL_KINDS:
        report.skipped = "this kind of destination cannot be read back"
        return report
    if not destination.is_active or destination.is_paused:
        report.skipped = "inactive or paused"
        SyncCursor.objects.filter(destination=destination, queued_at__isnull=False).update(queued_at=None)
        return report
    fields = sync_fields(destination)
    cursor = _cursor(destination)
    token_until = _lease(cursor)
    if token_until is None:
        report.skipped = "another poll of this destination is running"
        return report
    try:
        if not fields:
            report.skipped = "no field reads back from the CRM"
            return report
        connector = connector_for(destination, DestinationSession(destination, max_wait=settings.CRMSYNC["SYNC_MAX_WAIT_SECONDS"]))
        targets = sorted({f.target for f in fields})
        _poll_hints(destination, connector, cursor, fields, targets, report)
        _poll_changes(destination, connector, cursor, fields, targets, report, max_pages)
        _poll_deletions(destination, connector, cursor, report)
    except RateLimitWait as wait:
        report.error = f"rate budget: {wait}"
    except PollError as exc:
        report.error = str(exc)
        if exc.auth:
            destination_pause(destination=destination, reason=f"CRM refused the credentials while polling: {exc}")
    except DatabaseError as exc:
        # A lock conflict with a push settling the same lead (PostgreSQL picks one transaction to
        # fail): the page was rolled back with its watermark, and the next poll reads it again.
        report.error = f"database: {exc}"[:2000]
        log.warning("sync poll page rolled back", extra={"destination": destination.name, "error": str(exc)})
    except Exception as exc:  # noqa: BLE001 -- shown on the destination, never a silent stop
        report.error = f"{type(exc).__name__}: {exc}"[:2000]
        log.exception("sync poll failed", extra={"destination": destination.name})
    finally:
        _cursor_release(destination, report)
    log.info("sync poll", extra={"destination": destination.name, "records": report.records_read,
                                 "applied": report.changes_applied, "conflicts": report.conflicts_opened,
                                 "held": report.held, "calls": report.calls, "error": report.error,
                                 "skipped": report.skipped})
    return report


def _lease(cursor: SyncCursor) -> datetime | None:
    now = timezone.now()
    until = now + timedelta(seconds=settings.CRMSYNC["SYNC_POLL_LEASE_SECONDS"])
    taken = SyncCursor.objects.filter(pk=cursor.pk).filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now)).update(
        leased_until=until, last_started_at=now, poll_requested_at=None, last_error="")
    return until if taken else None


def _renew(cursor: SyncCursor) -> None:
    until = timezone.now() + timedelta(seconds=settings.CRMSYNC["SYNC_POLL_LEASE_SECONDS"])
    SyncCursor.objects.filter(pk=cursor.pk).update(leased_until=until)


def _cursor_release(destination: Destination, report: PollReport) -> None:
    now = timezone.now()
    SyncCursor.objects.filter(destination=destination, object=SyncCursor.Object.PRIMARY).update(
        leased_until=None, queued_at=None, last_finished_at=now, last_error=report.error[:2000],
        last_records_read=report.records_read, last_changes_applied=report.changes_applied, last_calls=report.calls)


def _poll_changes(destination: Destination, connector: Any, cursor: SyncCursor, fields: list[DestinationField],
                  targets: list[str], report: PollReport, max_pages: int | None) -> None:
    overlap = timedelta(seconds=settings.CRMSYNC["SYNC_POLL_OVERLAP_SECONDS"])
    max_pages = max_pages or settings.CRMSYNC["SYNC_MAX_PAGES_PER_POLL"]
    while report.pages < max_pages:
        cursor.refresh_from_db(fields=["watermark", "cursor"])
        since = cursor.watermark - overlap if cursor.watermark else _first_since(destination)
        try:
            page = connector.changes(object=SyncCursor.Object.PRIMARY, since=since, cursor=cursor.cursor, fields=targets)
        except (PollError, ValueError) as exc:
            if not cursor.cursor or (isinstance(exc, PollError) and exc.retryable):
                raise
            # The CRM no longer takes the page cursor (a Salesforce query locator expires): start
            # the query again from the watermark, which covers only pages already applied.
            log.warning("sync poll cursor refused; restarting from the watermark",
                        extra={"destination": destination.name, "error": str(exc)})
            SyncCursor.objects.filter(pk=cursor.pk).update(cursor="")
            continue
        _page_apply(destination, cursor, fields, page, report)
        _conflicts_who(destination, connector, [c.crm_id for c in page.changes], targets, report)
        _renew(cursor)
        if not page.cursor:
            return
    # Page limit reached with more to read: the next sweep goes on from the stored cursor.
    log.info("sync poll continues in the next task", extra={"destination": destination.name, "pages": report.pages})


def _first_since(destination: Destination) -> datetime:
    """Where the first poll starts: the CRM's changes since our first push there (nothing
    older can concern a record we wrote), less an hour for the CRM's clock; now if none yet."""
    first = LeadDelivery.objects.filter(destination=destination).exclude(crm_record_id="").aggregate(
        first=Min("pushed_at"))["first"]
    return (first or timezone.now()) - timedelta(hours=1)


def _page_apply(destination: Destination, cursor: SyncCursor, fields: list[DestinationField], page: ChangePage,
                report: PollReport) -> None:
    """Apply one page and move the watermark past it, in one transaction."""
    report.pages += 1
    report.calls += page.calls
    report.records_read += len(page.changes)
    if page.clock_offset_seconds is not None:
        Destination.objects.filter(pk=destination.pk).update(clock_offset_seconds=page.clock_offset_seconds)
        destination.clock_offset_seconds = page.clock_offset_seconds
    with transaction.atomic():
        reconciled = reconciled_push(destination, changes_reconcile(destination=destination, fields=fields,
                                                                    changes=page.changes))
        applied = reconciled.applied
        locked = SyncCursor.objects.select_for_update().get(pk=cursor.pk)
        if page.watermark and (locked.watermark is None or page.watermark > locked.watermark):
            locked.watermark = page.watermark
        locked.cursor = page.cursor
        locked.records_read += len(page.changes)
        locked.changes_applied += applied
        locked.polls += 0 if page.cursor else 1
        locked.save(update_fields=["watermark", "cursor", "records_read", "changes_applied", "polls"])
    report.add(reconciled)


def _conflicts_who(destination: Destination, connector: Any, crm_ids: list[str], targets: list[str],
                   report: PollReport) -> None:
    """A CRM whose changes list does not say who changed a field (HubSpot's search): for the
    conflicts just opened, read the fields' history, so the reviewer sees who and when."""
    unknown = list(Conflict.objects.filter(destination=destination, status=Conflict.Status.OPEN, kind=Conflict.Kind.FIELD,
                                           theirs_by="", crm_record_id__in=crm_ids))
    if not unknown:
        return
    records = {c.crm_id: c for c in connector.read(object=SyncCursor.Object.PRIMARY, ids=sorted({c.crm_record_id for c in unknown}),
                                                  fields=targets, history=True)}
    report.calls += max(1, -(-len(records) // 50))
    for conflict in unknown:
        record = records.get(conflict.crm_record_id)
        if record is None or not record.changed_by.get(conflict.target):
            continue
        at = record.changed_at.get(conflict.target)
        Conflict.objects.filter(pk=conflict.pk).update(
            theirs_by=record.changed_by[conflict.target][:200],
            theirs_at=crm_time(destination, at) if at else conflict.theirs_at)


def _poll_hints(destination: Destination, connector: Any, cursor: SyncCursor, fields: list[DestinationField],
                targets: list[str], report: PollReport) -> None:
    """Read the records a webhook named, directly (search lags the CRM's writes)."""
    cursor.refresh_from_db(fields=["hinted_ids"])
    ids = list(cursor.hinted_ids)
    if not ids:
        return
    changes = connector.read(object=SyncCursor.Object.PRIMARY, ids=ids, fields=targets)
    report.calls += max(1, -(-len(ids) // 100))
    report.records_read += len(changes)
    with transaction.atomic():
        report.add(reconciled_push(destination, changes_reconcile(destination=destination, fields=fields, changes=changes)))
        locked = SyncCursor.objects.select_for_update().get(pk=cursor.pk)
        locked.hinted_ids = [i for i in locked.hinted_ids if i not in set(ids)]
        locked.save(update_fields=["hinted_ids"])


def _poll_deletions(destination: Destination, connector: Any, cursor: SyncCursor, report: PollReport) -> None:
    """Look for records deleted in the CRM (HubSpot lists archived records separately;
    Salesforce's deleted rows come with the changes), every SYNC_DELETIONS_EVERY_SECONDS."""
    cursor.refresh_from_db(fields=["deletions_checked_at", "deletions_watermark"])
    now = timezone.now()
    every = timedelta(seconds=settings.CRMSYNC["SYNC_DELETIONS_EVERY_SECONDS"])
    if cursor.deletions_checked_at and cursor.deletions_checked_at + every > now:
        return
    page_cursor, newest = "", cursor.deletions_watermark
    while True:
        page = connector.deletions(object=SyncCursor.Object.PRIMARY, since=cursor.deletions_watermark, cursor=page_cursor)
        report.calls += page.calls
        with transaction.atomic():
            report.add(changes_reconcile(destination=destination, fields=[], changes=page.changes))
        if page.watermark and (newest is None or page.watermark > newest):
            newest = page.watermark
        page_cursor = page.cursor
        if not page_cursor:
            break
    SyncCursor.objects.filter(pk=cursor.pk).update(deletions_checked_at=now, deletions_watermark=newest)


def reconciled_push(destination: Destination, reconciled: Reconciled) -> Reconciled:
    """Queue the pushes a reconciliation calls for, in its transaction: leads that took CRM
    values go to the other destinations, leads whose value won go to this one."""
    for lead in Lead.objects.filter(pk__in=reconciled.pulled | reconciled.push_here):
        if lead.pk in reconciled.pulled:
            push_jobs_enqueue(lead=lead, exclude_destination_id=destination.pk)
        if lead.pk in reconciled.push_here:
            push_jobs_enqueue(lead=lead, only_destination_id=destination.pk)
    return reconciled
