"""What each kind of alert rule measures. Each check reads a window of indexed rows (sync log
rows by time, submissions by status and time, pending push jobs), a small table (destinations,
budgets, drift, heartbeats, open conflicts) or the hourly counts of audit.buckets, and returns
whether the condition holds with the numbers that decided it: the evidence an alert shows and
sends. Thresholds are compared strictly ("above"), shares only on at least `min_events` events.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import math
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import Count, Max, Min, Q, Sum
from django.urls import reverse

from audit import buckets
from audit.models import HourlyCount, SyncLog
from delivery.models import Destination, PushJob, RateBudget
from ingestion.models import Source, Submission
from leads.models import Team
from mapping.selectors import drift_summary
from monitoring.models import AlertRule

Kind = AlertRule.Kind
# Counting a backlog stops here: the alert needs to know it is past the threshold, not by how much.
COUNT_CAP = 100_000
# The consent rule compares the window with this much history before it.
CONSENT_BASELINE = timedelta(days=7)
CONSENT_USED_TO_SEND = 0.5  # a source "used to send" consent when at least half its leads carried it
SUCCESS_OPERATIONS = (SyncLog.Operation.CREATE, SyncLog.Operation.UPDATE, SyncLog.Operation.NOOP)


@dataclass
class Check:
    holds: bool
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)
    link: str = ""


def check(rule: AlertRule, now: datetime) -> Check:
    return CHECKS[rule.kind](rule, now)


def _since(rule: AlertRule, now: datetime) -> datetime:
    return now - timedelta(minutes=rule.window_minutes)


def _share(part: int, total: int) -> float:
    return round(100.0 * part / total, 2) if total else 0.0


def _admin_list(model: str, query: str = "") -> str:
    app_label, model_name = model.split(".")
    url = reverse(f"admin:{app_label}_{model_name}_changelist")
    return f"{url}?{query}" if query else url


def _calls(rule: AlertRule, now: datetime):
    """Sync log rows (one per record per CRM call) in the window, by the created_at index."""
    return SyncLog.objects.filter(created_at__gt=_since(rule, now), created_at__lte=now).order_by()


def sync_error_rate(rule: AlertRule, now: datetime) -> Check:
    rows = _calls(rule, now).values("destination_name").annotate(
        total=Count("id"), errors=Count("id", filter=Q(operation=SyncLog.Operation.ERROR) & ~Q(outcome="rate_limited")))
    per = {row["destination_name"]: {"calls": row["total"], "errors": row["errors"],
                                     "error_rate_pct": _share(row["errors"], row["total"])} for row in rows}
    total, errors = sum(p["calls"] for p in per.values()), sum(p["errors"] for p in per.values())
    rate = _share(errors, total)
    evidence = {"error_rate_pct": rate, "errors": errors, "calls": total, "threshold_pct": rule.threshold,
                "window_minutes": rule.window_minutes, "by_destination": per}
    holds = total >= rule.min_events and rate > rule.threshold
    return Check(holds, f"{rate}% of {total} CRM calls failed in the last {rule.window_minutes} min "
                        f"(threshold {rule.threshold}%).", evidence, _admin_list("audit.synclog", "operation__exact=error"))


def queue_backlog(rule: AlertRule, now: datetime) -> Check:
    received = Submission.objects.filter(status=Submission.Status.RECEIVED).order_by()[:COUNT_CAP].count()
    pending = dict(PushJob.objects.filter(status=PushJob.Status.PENDING).order_by().values_list("destination__name")
                   .annotate(n=Count("id")))
    waiting = received + sum(pending.values())
    evidence = {"waiting": waiting, "received_submissions": received, "pending_push_jobs": pending,
                "threshold": rule.threshold}
    return Check(waiting > rule.threshold, f"{waiting} items are waiting (threshold {rule.threshold:g}).", evidence,
                 _admin_list("delivery.pushjob", "status__exact=pending"))


def stuck_in_retries(rule: AlertRule, now: datetime) -> Check:
    cutoff = now - timedelta(minutes=rule.threshold)
    stuck = PushJob.objects.filter(status__in=[PushJob.Status.PENDING, PushJob.Status.IN_PROGRESS], attempts__gte=1,
                                   created_at__lte=cutoff).order_by("created_at")
    sample = list(stuck.values("id", "lead__external_id", "destination__name", "attempts", "last_error_code",
                               "created_at")[:10])
    count = stuck[:COUNT_CAP].count() if sample else 0
    evidence = {"jobs": count, "threshold_minutes": rule.threshold,
                "oldest": [{**row, "created_at": row["created_at"].isoformat()} for row in sample]}
    return Check(bool(count), f"{count} push jobs have been retrying for more than {rule.threshold:g} min.", evidence,
                 _admin_list("delivery.pushjob", "status__exact=pending"))


def zero_successes(rule: AlertRule, now: datetime) -> Check:
    rows = _calls(rule, now).values("destination_name").annotate(
        total=Count("id"), succeeded=Count("id", filter=Q(operation__in=SUCCESS_OPERATIONS)))
    silent = {row["destination_name"]: row["total"] for row in rows
              if row["total"] >= max(rule.min_events, 1) and not row["succeeded"]}
    evidence = {"destinations_without_success": silent, "window_minutes": rule.window_minutes}
    names = ", ".join(sorted(silent))
    return Check(bool(silent), f"No successful push to {names or 'any destination'} in the last {rule.window_minutes} min "
                               f"despite {sum(silent.values())} attempts.", evidence, _admin_list("audit.synclog"))


def paused_for_credentials(rule: AlertRule, now: datetime) -> Check:
    paused = list(Destination.objects.filter(paused_at__isnull=False, paused_reason__startswith="CRM refused the credentials")
                  .values("name", "paused_at", "paused_reason"))
    evidence = {"paused": [{**row, "paused_at": row["paused_at"].isoformat()} for row in paused]}
    names = ", ".join(row["name"] for row in paused)
    return Check(bool(paused), f"Paused because the CRM refused the credentials: {names}.", evidence,
                 _admin_list("delivery.destination"))


def rate_limited_share(rule: AlertRule, now: datetime) -> Check:
    counts = _calls(rule, now).aggregate(total=Count("id"), limited=Count("id", filter=Q(outcome="rate_limited")))
    share = _share(counts["limited"], counts["total"])
    evidence = {"rate_limited_pct": share, "rate_limited": counts["limited"], "calls": counts["total"],
                "threshold_pct": rule.threshold, "window_minutes": rule.window_minutes}
    holds = counts["total"] >= rule.min_events and share > rule.threshold
    return Check(holds, f"{share}% of {counts['total']} CRM calls were rate-limited in the last {rule.window_minutes} min.",
                 evidence, _admin_list("audit.synclog", "operation__exact=error"))


def daily_budget(rule: AlertRule, now: datetime) -> Check:
    today = now.date().isoformat()
    used = {}
    for budget in RateBudget.objects.filter(day=today).select_related("destination"):
        share = _share(budget.day_count, budget.destination.daily_budget)
        if share > rule.threshold:
            used[budget.destination.name] = {"used": budget.day_count, "daily_budget": budget.destination.daily_budget,
                                             "used_pct": share}
    evidence = {"destinations": used, "threshold_pct": rule.threshold, "day": today}
    return Check(bool(used), f"Daily request budget past {rule.threshold:g}% for {', '.join(sorted(used))}.", evidence,
                 _admin_list("delivery.destination"))


def new_unmapped_field(rule: AlertRule, now: datetime) -> Check:
    drift = {d.slug: d.new_unmapped for d in drift_summary() if d.new_unmapped}
    return Check(bool(drift), f"Sources send fields no mapping rule names: {_names(drift)}.", {"new_unmapped": drift},
                 _admin_list("mapping.unmappedfield", "acknowledged__exact=0"))


def fields_stopped(rule: AlertRule, now: datetime) -> Check:
    drift = {d.slug: d.stopped_arriving for d in drift_summary() if d.stopped_arriving}
    return Check(bool(drift), f"Mapped fields stopped arriving: {_names(drift)}.", {"stopped_arriving": drift},
                 _admin_list("mapping.fieldpresence"))


def _names(by_source: dict[str, list[str]]) -> str:
    return "; ".join(f"{slug}: {', '.join(names[:5])}" for slug, names in sorted(by_source.items()))


def rejected_share(rule: AlertRule, now: datetime) -> Check:
    done = Submission.objects.filter(status__in=[Submission.Status.PROCESSED, Submission.Status.REJECTED],
                                     received_at__gt=_since(rule, now), received_at__lte=now).order_by()
    counts = done.aggregate(total=Count("id"), rejected=Count("id", filter=Q(status=Submission.Status.REJECTED)))
    share = _share(counts["rejected"], counts["total"])
    evidence = {"rejected_pct": share, "rejected": counts["rejected"], "mapped": counts["total"],
                "threshold_pct": rule.threshold, "window_minutes": rule.window_minutes}
    holds = counts["total"] >= rule.min_events and share > rule.threshold
    return Check(holds, f"{share}% of {counts['total']} submissions were rejected in the last {rule.window_minutes} min.",
                 evidence, _admin_list("ingestion.submission", "status__exact=rejected"))


def heartbeat_age_seconds(now: datetime) -> tuple[float | None, bool]:
    """Seconds since the newest worker heartbeat (None: no worker ever beat), and whether the
    product records heartbeats at all (audit.WorkerHeartbeat, written by `manage.py worker`)."""
    try:
        model = apps.get_model("audit", "WorkerHeartbeat")
    except LookupError:
        return None, False
    newest = model.objects.aggregate(at=Max("beat_at"))["at"]
    return (None if newest is None else (now - newest).total_seconds()), True


def worker_heartbeat(rule: AlertRule, now: datetime) -> Check:
    age, recorded = heartbeat_age_seconds(now)
    if not recorded:
        return Check(False, "Worker heartbeats are not recorded by this version.", {"recorded": False})
    evidence = {"newest_heartbeat_age_seconds": None if age is None else round(age, 1), "threshold_seconds": rule.threshold}
    holds = age is None or age > rule.threshold
    said = "No worker has ever reported" if age is None else f"The newest worker heartbeat is {age:.0f} s old"
    return Check(holds, f"{said} (threshold {rule.threshold:g} s): is `manage.py worker` running?", evidence,
                 _admin_list("audit.workerheartbeat") if _registered("audit.workerheartbeat") else "")


def _registered(model: str) -> bool:
    try:
        return admin.site.is_registered(apps.get_model(model))
    except LookupError:
        return False


def conflict_model():
    """delivery.Conflict (two-way sync), or None in a version without it."""
    try:
        return apps.get_model("delivery", "Conflict")
    except LookupError:
        return None


def old_conflicts(rule: AlertRule, now: datetime) -> Check:
    model = conflict_model()
    if model is None:
        return Check(False, "Two-way sync conflicts are not recorded by this version.", {"recorded": False})
    old = model.objects.filter(status="open", created_at__lte=now - timedelta(days=rule.threshold)).order_by()
    found = old.aggregate(n=Count("id"), oldest=Min("created_at"))
    evidence = {"conflicts": found["n"], "oldest": found["oldest"].isoformat() if found["oldest"] else None,
                "threshold_days": rule.threshold}
    return Check(bool(found["n"]), f"{found['n']} conflicts have been open for more than {rule.threshold:g} days.",
                 evidence, _admin_list("delivery.conflict", "status__exact=open") if _registered("delivery.conflict") else "")


def _hours(rule: AlertRule, now: datetime, span: timedelta | None = None) -> datetime:
    """The first hourly bucket a window of counts covers (windows are whole hours)."""
    span = span or timedelta(minutes=rule.window_minutes)
    return buckets.hour_of(now) - timedelta(hours=max(1, math.ceil(span.total_seconds() / 3600)) - 1)


def unowned_leads(rule: AlertRule, now: datetime) -> Check:
    if not Team.objects.exists():
        return Check(False, "No team is set up: leads are not routed to owners.", {"routing": False})
    counts = dict(HourlyCount.objects.filter(metric=buckets.NEW_LEAD, hour__gte=_hours(rule, now), hour__lte=now)
                  .values_list("outcome").annotate(n=Sum("count")))
    total = counts.get("owned", 0) + counts.get("unowned", 0)
    share = _share(counts.get("unowned", 0), total)
    evidence = {"unowned_pct": share, "unowned": counts.get("unowned", 0), "new_leads": total,
                "threshold_pct": rule.threshold, "since": _hours(rule, now).isoformat()}
    holds = total >= rule.min_events and share > rule.threshold
    return Check(holds, f"{share}% of {total} new leads have no owner.", evidence,
                 _admin_list("leads.lead"))


def consent_missing(rule: AlertRule, now: datetime) -> Check:
    """Per source: in the window, the share of mapped submissions without any consent field,
    among sources that carried consent on at least half their leads in the week before."""
    start = _hours(rule, now)
    window = _consent_counts(start, now)
    before = _consent_counts(start - CONSENT_BASELINE, start - timedelta(microseconds=1))
    names = dict(Source.objects.filter(pk__in=window.keys()).values_list("pk", "slug"))
    failing = {}
    for source_id, now_counts in window.items():
        was = before.get(source_id, {})
        was_total = was.get("given", 0) + was.get("missing", 0)
        total = now_counts.get("given", 0) + now_counts.get("missing", 0)
        used_to_send = was_total >= rule.min_events and was.get("given", 0) >= CONSENT_USED_TO_SEND * was_total
        share = _share(now_counts.get("missing", 0), total)
        if used_to_send and total >= rule.min_events and share > rule.threshold:
            failing[names.get(source_id, str(source_id))] = {
                "without_consent_pct": share, "submissions": total,
                "with_consent_before_pct": _share(was.get("given", 0), was_total)}
    evidence = {"sources": failing, "threshold_pct": rule.threshold, "since": start.isoformat()}
    return Check(bool(failing), f"Leads arrive without the consent their source used to send: {', '.join(sorted(failing))}.",
                 evidence, _admin_list("ingestion.submission", "status__exact=processed"))


def _consent_counts(start: datetime, end: datetime) -> dict[int, dict[str, int]]:
    rows = (HourlyCount.objects.filter(metric=buckets.CONSENT, hour__gte=start, hour__lte=end)
            .values_list("subject_id", "outcome").annotate(n=Sum("count")))
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for source_id, outcome, n in rows:
        counts[source_id][outcome] = n
    return counts


CHECKS: dict[str, Callable[[AlertRule, datetime], Check]] = {
    Kind.SYNC_ERROR_RATE: sync_error_rate,
    Kind.QUEUE_BACKLOG: queue_backlog,
    Kind.STUCK_IN_RETRIES: stuck_in_retries,
    Kind.ZERO_SUCCESSES: zero_successes,
    Kind.PAUSED_FOR_CREDENTIALS: paused_for_credentials,
    Kind.RATE_LIMITED_SHARE: rate_limited_share,
    Kind.DAILY_BUDGET: daily_budget,
    Kind.NEW_UNMAPPED_FIELD: new_unmapped_field,
    Kind.REJECTED_SHARE: rejected_share,
    Kind.WORKER_HEARTBEAT: worker_heartbeat,
    Kind.OLD_CONFLICTS: old_conflicts,
    Kind.FIELDS_STOPPED: fields_stopped,
    Kind.UNOWNED_LEADS: unowned_leads,
    Kind.CONSENT_MISSING: consent_missing,
}
