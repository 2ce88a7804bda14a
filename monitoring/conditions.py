"""What each kind of alert rule measures. Each check reads a window of indexed rows (sync log
rows by time, submissions by status and time, pending push jobs), a small table (destinations,
budgets, drift, heartbeats, open conflicts) or the hourly counts of audit.buckets, and returns
whether the condition holds with the numbers that decided it: the evidence an alert shows and
sends. Thresholds are compared strictly ("above"), shares only on at least `min_events` events.
Fewer events that still look bad are "too few to judge": an open episode stays as it is (a CRM
outage whose retries back off is not over), and no episode opens on them.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery, Sum
from django.urls import reverse

from audit import buckets
from audit.models import HourlyCount, SyncLog
from delivery.models import Destination, PushJob, RateBudget
from ingestion.models import Source, Submission
from leads.models import Team
from mapping.selectors import drift_summary
from monitoring.models import COUNT_CAP, AlertRule

Kind = AlertRule.Kind
# Counting a backlog stops at COUNT_CAP: the alert needs to know it is past the threshold, not by how much.
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
    # Too few events to judge, and those there are look bad: neither resolves nor opens an episode.
    too_few: bool = False


def _judged(rule: AlertRule, total: int, share: float, evidence: dict[str, Any]) -> tuple[bool, bool]:
    """(holds, too_few) for a share: it holds above the threshold on at least `min_events`
    events; fewer events above the threshold are too few to judge (shown in the evidence)."""
    holds = total >= rule.min_events and share > rule.threshold
    too_few = not holds and share > rule.threshold
    if too_few:
        evidence.update(too_few_events=True, min_events=rule.min_events)
    return holds, too_few


def _too_few_note(rule: AlertRule) -> str:
    return f" Too few to judge (at least {rule.min_events} needed): an open alert stays open."


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
    holds, too_few = _judged(rule, total, rate, evidence)
    return Check(holds, f"{rate}% of {total} CRM calls failed in the last {rule.window_minutes} min "
                        f"(threshold {rule.threshold}%)." + (_too_few_note(rule) if too_few else ""), evidence,
                 _admin_list("audit.synclog", "operation__exact=error"), too_few)


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
    """Jobs still to push whose first failed attempt (their earliest error row in the sync log,
    rate limits aside) is older than the threshold. Not the job's age: a job that waited (a
    paused destination, a spent budget, a backlog) is not retrying on its first attempt."""
    cutoff = now - timedelta(minutes=rule.threshold)
    first_failure = (SyncLog.objects.filter(push_job=OuterRef("pk"), operation=SyncLog.Operation.ERROR)
                     .exclude(outcome="rate_limited").order_by("created_at").values("created_at")[:1])
    # A job that failed has an error code; one older than the cutoff can have failed before it.
    stuck = (PushJob.objects.filter(status__in=[PushJob.Status.PENDING, PushJob.Status.IN_PROGRESS], attempts__gte=1,
                                    created_at__lte=cutoff).exclude(last_error_code="")
             .annotate(first_failed_at=Subquery(first_failure)).filter(first_failed_at__lte=cutoff)
             .order_by("first_failed_at"))
    sample = list(stuck.values("id", "lead__external_id", "destination__name", "attempts", "last_error_code",
                               "created_at", "first_failed_at")[:10])
    count = stuck[:COUNT_CAP].count() if sample else 0
    evidence = {"jobs": count, "threshold_minutes": rule.threshold,
                "oldest": [{**row, "created_at": row["created_at"].isoformat(),
                            "first_failed_at": row["first_failed_at"].isoformat()} for row in sample]}
    return Check(bool(count), f"{count} push jobs have been retrying for more than {rule.threshold:g} min.", evidence,
                 _admin_list("delivery.pushjob", "status__exact=pending"))


def zero_successes(rule: AlertRule, now: datetime) -> Check:
    rows = _calls(rule, now).values("destination_name").annotate(
        total=Count("id"), succeeded=Count("id", filter=Q(operation__in=SUCCESS_OPERATIONS)))
    failing = {row["destination_name"]: row["total"] for row in rows if row["total"] and not row["succeeded"]}
    silent = {name: total for name, total in failing.items() if total >= max(rule.min_events, 1)}
    evidence = {"destinations_without_success": silent, "window_minutes": rule.window_minutes}
    too_few = bool(failing) and not silent
    if too_few:
        evidence.update(too_few_events=True, min_events=rule.min_events, destinations_failing=failing)
    names = ", ".join(sorted(silent or failing))
    return Check(bool(silent), f"No successful push to {names or 'any destination'} in the last {rule.window_minutes} min "
                               f"despite {sum((silent or failing).values())} attempts."
                               + (_too_few_note(rule) if too_few else ""), evidence, _admin_list("audit.synclog"), too_few)


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
    holds, too_few = _judged(rule, counts["total"], share, evidence)
    return Check(holds, f"{share}% of {counts['total']} CRM calls were rate-limited in the last {rule.window_minutes} min."
                 + (_too_few_note(rule) if too_few else ""), evidence, _admin_list("audit.synclog", "operation__exact=error"),
                 too_few)


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
    holds, too_few = _judged(rule, counts["total"], share, evidence)
    return Check(holds, f"{share}% of {counts['total']} submissions were rejected in the last {rule.window_minutes} min."
                 + (_too_few_note(rule) if too_few else ""), evidence,
                 _admin_list("ingestion.submission", "status__exact=rejected"), too_few)


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
    """The first hourly bucket a window of counts covers: the hour `window` ago, so the window
    is always covered by whole hours (not the current hour so far, which just after hh:00 holds
    too few events and would end an episode at every hour)."""
    span = span or timedelta(minutes=rule.window_minutes)
    return buckets.hour_of(now - span)


def unowned_leads(rule: AlertRule, now: datetime) -> Check:
    if not Team.objects.exists():
        return Check(False, "No team is set up: leads are not routed to owners.", {"routing": False})
    counts = dict(HourlyCount.objects.filter(metric=buckets.NEW_LEAD, hour__gte=_hours(rule, now), hour__lte=now)
                  .values_list("outcome").annotate(n=Sum("count")))
    total = counts.get("owned", 0) + counts.get("unowned", 0)
    share = _share(counts.get("unowned", 0), total)
    evidence = {"unowned_pct": share, "unowned": counts.get("unowned", 0), "new_leads": total,
                "threshold_pct": rule.threshold, "since": _hours(rule, now).isoformat()}
    holds, too_few = _judged(rule, total, share, evidence)
    return Check(holds, f"{share}% of {total} new leads have no owner." + (_too_few_note(rule) if too_few else ""),
                 evidence, _admin_list("leads.lead"), too_few)


def consent_missing(rule: AlertRule, now: datetime) -> Check:
    """Per source: in the window, the share of mapped submissions without any consent field,
    among sources that carried consent on at least half their leads in the week before."""
    start = _hours(rule, now)
    window = _consent_counts(start, now)
    before = _consent_counts(start - CONSENT_BASELINE, start - timedelta(microseconds=1))
    names = dict(Source.objects.filter(pk__in=window.keys()).values_list("pk", "slug"))
    failing, undecided = {}, []
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
        elif used_to_send and share > rule.threshold:
            undecided.append(names.get(source_id, str(source_id)))
    evidence = {"sources": failing, "threshold_pct": rule.threshold, "since": start.isoformat()}
    too_few = bool(undecided) and not failing
    if too_few:
        evidence.update(too_few_events=True, min_events=rule.min_events, sources_too_few=sorted(undecided))
    return Check(bool(failing), f"Leads arrive without the consent their source used to send: "
                                f"{', '.join(sorted(failing or undecided))}." + (_too_few_note(rule) if too_few else ""),
                 evidence, _admin_list("ingestion.submission", "status__exact=processed"), too_few)


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
