"""A lead's timeline: everything that happened to one person, across every stage, in time order.

The page a reviewer opens when a sales rep says "my lead never arrived": each submission (the raw
body as received; the values its mapping version gave), each decision about the lead (changes a
poll read back from a CRM among them), each push job and every CRM call made for it (what was
sent, what came back, how long it took), and two-way sync's conflicts.

Each kind of event comes from one small function that takes the lead's IDs (the lead and the
leads merged into it) and yields `Entry` values; `SOURCES` lists them with the permission a user
needs to see them. A new kind of event is one more function and one more line in `SOURCES`.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
import json
from typing import Any

from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse

from audit.models import SyncLog
from delivery.models import Conflict, PushJob
from ingestion.models import Submission
from leads.models import Lead, LeadDecision
from mapping.services import mapping_apply, source_fields

# Rows read per kind of event: a lead's history is short, but a page must stay bounded whatever
# a misbehaving sender did (the newest are kept).
LIMIT = 500
RAW_BODY_CHARS = 20_000


@dataclass(frozen=True)
class Entry:
    """One thing that happened, as the page shows it."""

    at: datetime
    kind: str  # submission, decision, push, call, ... (also the entry's CSS class)
    title: str
    detail: dict[str, Any] = field(default_factory=dict)  # label -> text, or a value shown as JSON
    link: str = ""  # the row's own admin page
    correlation_id: str = ""

    def rows(self) -> list[tuple[str, str, bool]]:
        """(label, text, shown as a block) per detail, dropping empty ones."""
        return [(label, _text(value), isinstance(value, (dict, list)) or "\n" in str(value))
                for label, value in self.detail.items() if value not in (None, "", {}, [])]


@dataclass(frozen=True)
class Source:
    """One kind of event: who may see it, and where it comes from."""

    permission: str
    entries: Callable[[list[int]], Iterable[Entry]]


# --- The kinds of event --------------------------------------------------------------------


def submission_entries(lead_ids: list[int]) -> Iterable[Entry]:
    rows = Submission.objects.filter(lead_id__in=lead_ids).select_related("source", "mapping_version__mapping_set")
    yield from submissions_entries(rows.order_by("-received_at")[:LIMIT])


def submissions_entries(submissions: Iterable[Submission]) -> Iterable[Entry]:
    """Received (the request as it came) and, once done, processed or rejected (the values its
    mapping version gives, which is how the lead got them)."""
    for submission in submissions:
        link = reverse("admin:ingestion_submission_change", args=[submission.pk])
        yield Entry(submission.received_at, "submission", f"Submission {submission.pk} received from {submission.source}",
                    {"content type": submission.content_type, "raw body": _raw_body(submission),
                     "corrected fields": submission.field_overrides},
                    link, submission.correlation_id)
        if submission.processed_at:
            yield Entry(submission.processed_at, "submission", _outcome_title(submission), _mapped(submission), link,
                        submission.correlation_id)


def decision_entries(lead_ids: list[int]) -> Iterable[Entry]:
    rows = LeadDecision.objects.filter(lead_id__in=lead_ids).select_related("lead", "actor").order_by("-created_at")
    for decision in rows[:LIMIT]:
        title = decision.get_action_display() + (f" (by {decision.matched_by})" if decision.matched_by else "")
        yield Entry(decision.created_at, "decision", title,
                    {"lead": decision.lead.external_id, "detail": decision.detail, "changes": decision.changes,
                     "by": str(decision.actor or ""), "submission": decision.submission_id},
                    reverse("admin:leads_leaddecision_change", args=[decision.pk]), decision.correlation_id)


def push_job_entries(lead_ids: list[int]) -> Iterable[Entry]:
    rows = PushJob.objects.filter(lead_id__in=lead_ids).select_related("destination").order_by("-created_at")
    for job in rows[:LIMIT]:
        link = reverse("admin:delivery_pushjob_change", args=[job.pk])
        yield Entry(job.created_at, "push", f"Push job {job.pk} queued for {job.destination}",
                    {"status now": job.get_status_display(), "attempts": job.attempts}, link, job.correlation_id)
        if job.finished_at:
            yield Entry(job.finished_at, "push", f"Push job {job.pk} {job.get_status_display().lower()}",
                        {"operation": job.operation, "CRM record": job.crm_record_id, "last error": job.last_error},
                        link, job.correlation_id)


def sync_log_entries(lead_ids: list[int]) -> Iterable[Entry]:
    """Every CRM call made for the lead: one row per record per call, per attempt."""
    rows = SyncLog.objects.filter(lead_id__in=lead_ids).order_by("-created_at")
    for call in rows[:LIMIT]:
        status = f" ({call.http_status})" if call.http_status else ""
        yield Entry(call.created_at, "call",
                    f"Attempt {call.attempt} of push job {call.push_job_id} → {call.destination_name}: "
                    f"{call.get_operation_display().lower()}{status} in {call.duration_ms} ms",
                    {"outcome": call.outcome, "CRM record": call.crm_record_id,
                     "error": f"{call.error_code} {call.error_message}".strip(), "request": call.request,
                     "response": call.response},
                    reverse("admin:audit_synclog_change", args=[call.pk]), call.correlation_id)


def conflict_entries(lead_ids: list[int]) -> Iterable[Entry]:
    """Two-way sync's conflicts: opened (both sides changed a field; the CRM record was deleted
    or merged) and settled. What a poll read back shows as a decision ("Changed in a CRM")."""
    rows = Conflict.objects.filter(lead_id__in=lead_ids).select_related("destination", "resolved_by").order_by("-created_at")
    for conflict in rows[:LIMIT]:
        link = reverse("admin:delivery_conflict_change", args=[conflict.pk])
        what = conflict.target if conflict.kind == Conflict.Kind.FIELD else conflict.get_kind_display().lower()
        yield Entry(conflict.created_at, "conflict", f"Conflict at {conflict.destination}: {what}",
                    {"ours": conflict.ours, "theirs (CRM)": conflict.theirs, "last synced": conflict.base,
                     "CRM record": conflict.crm_record_id, "status now": conflict.get_status_display()}, link)
        if conflict.resolved_at:
            yield Entry(conflict.resolved_at, "conflict", f"Conflict at {conflict.destination}: {what}, "
                        f"{(conflict.get_resolution_display() or conflict.get_status_display()).lower()}",
                        {"value": conflict.resolved_value, "by": str(conflict.resolved_by or ""), "note": conflict.note},
                        link)


SOURCES: list[Source] = [
    Source("ingestion.view_submission", submission_entries),
    Source("leads.view_leaddecision", decision_entries),
    Source("delivery.view_pushjob", push_job_entries),
    Source("audit.view_synclog", sync_log_entries),
    Source("delivery.view_conflict", conflict_entries),
]

# Entries at the same instant keep the order the stages run in.
_KIND_ORDER = {"submission": 0, "decision": 1, "push": 2, "call": 3, "conflict": 4}


def lead_timeline(*, lead: Lead, sources: Iterable[Source] = SOURCES) -> list[Entry]:
    """The lead's events (and those of the leads merged into it), oldest first."""
    lead_ids = [lead.pk, *lead.merged_leads.values_list("pk", flat=True)]
    entries = [entry for source in sources for entry in source.entries(lead_ids)]
    return sorted(entries, key=lambda e: (e.at, _KIND_ORDER.get(e.kind, len(_KIND_ORDER))))


def visible_sources(user) -> list[Source]:
    return [source for source in SOURCES if user.has_perm(source.permission)]


# --- The page ------------------------------------------------------------------------------


def timeline_page(request: HttpRequest, *, admin_context: dict, lead: Lead | None, focus: Submission | None = None,
                  focus_correlation_id: str = "") -> TemplateResponse:
    """The lead's timeline, with the entries of one submission's correlation ID highlighted (a
    submission's page). A submission that became no lead shows on its own."""
    sources = visible_sources(request.user)
    if lead is not None:
        entries = lead_timeline(lead=lead, sources=sources)
    elif focus is not None and request.user.has_perm("ingestion.view_submission"):
        entries = list(submissions_entries([focus]))
    else:
        entries = []
    correlation_id = focus.correlation_id if focus is not None else focus_correlation_id
    title = f"Timeline of {lead}" if lead is not None else f"Timeline of submission {focus.pk}"
    context = {
        **admin_context, "title": title, "lead": lead, "focus": focus, "correlation_id": correlation_id,
        "entries": [(entry, bool(correlation_id) and entry.correlation_id == correlation_id) for entry in entries],
        "focused_count": sum(bool(correlation_id) and e.correlation_id == correlation_id for e in entries),
        "hidden": [s.permission for s in SOURCES if s not in sources],
    }
    return TemplateResponse(request, "admin/crmsync/timeline.html", context)


def _outcome_title(submission: Submission) -> str:
    version = f" with {submission.mapping_version}" if submission.mapping_version_id else ""
    return f"Submission {submission.pk} {submission.get_status_display().lower()}{version}"


def _mapped(submission: Submission) -> dict[str, Any]:
    """What the submission's mapping version makes of it: recomputed (versions never change),
    so the values are shown as that version maps the submission and its corrections today."""
    detail: dict[str, Any] = {"reasons": submission.reasons}
    version = submission.mapping_version
    if version is None or submission.status != Submission.Status.PROCESSED:
        return detail
    mapped = mapping_apply(config=version.config, fields=source_fields(submission=submission, shape=version.config["shape"]))
    return {**detail, "mapped values": mapped.values, "attributes": mapped.attributes, "attribution": mapped.attribution}


def _raw_body(submission: Submission) -> str:
    text = bytes(submission.raw_body).decode("utf-8", errors="replace")
    return text if len(text) <= RAW_BODY_CHARS else text[:RAW_BODY_CHARS] + f"\n… ({len(text) - RAW_BODY_CHARS} more characters)"


def _text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    return str(value)
