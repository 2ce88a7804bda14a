"""Completing Meta Lead Ads submissions: the webhook carries IDs only, so the worker fetches
each lead from the Graph API (`GET /{leadgen_id}` -> field_data) with a page access token,
under the same retry rules as CRM calls. Runs outside any transaction: no lock is held while
we wait for Meta."""

from datetime import timedelta
import enum
from urllib.parse import quote

from django.conf import settings
from django.utils import timezone

from core import metrics, outbound
from ingestion.models import SourceSecret, Submission
from ingestion.presets import META_KIND, idempotency_key_from
from ingestion.services import active_secrets

# Graph error codes that mean "try again later": unknown/service errors and rate limits.
_TRANSIENT_GRAPH_CODES = {1, 2, 4, 17, 32, 341, 613}


class Fetch(enum.StrEnum):
    READY = "ready"  # nothing (more) to fetch
    RETRY = "retry"  # transient failure; next_attempt_at is set
    FAILED = "failed"  # permanent failure; the submission was rejected with the reason


class _Refused(Exception):
    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def meta_leads_fetch(*, submission: Submission) -> Fetch:
    if submission.source.kind != META_KIND or "leads" in submission.enrichment:
        return Fetch.READY
    try:
        leads = [_fetch_one(submission, leadgen_id) for leadgen_id in _leadgen_ids(submission)]
    except _Refused as exc:
        return _retry(submission, str(exc)) if exc.transient else _fail(submission, str(exc))
    submission.enrichment = {**submission.enrichment, "leads": leads}
    submission.save(update_fields=["enrichment"])
    return Fetch.READY


def _leadgen_ids(submission: Submission) -> list[str]:
    found = idempotency_key_from(submission.payload, ("entry.*.changes.*.value.leadgen_id",))
    if not found:
        raise _Refused("The notification names no leadgen_id.", transient=False)
    return found.split(",")


def _fetch_one(submission: Submission, leadgen_id: str) -> dict:
    tokens = active_secrets(source=submission.source, purpose=SourceSecret.Purpose.META_PAGE_TOKEN)
    if not tokens:
        raise _Refused("The source has no active Meta page access token.", transient=False)
    url = f"{submission.source.graph_base_url.rstrip('/')}/{quote(leadgen_id, safe='')}?access_token={quote(tokens[0], safe='')}"
    try:
        response = outbound.request("GET", url)
    except outbound.OutboundError as exc:
        raise _Refused(f"Graph API unreachable: {exc}", transient=True) from exc
    if response.ok and isinstance(response.body, dict) and "field_data" in response.body:
        return response.body
    raise _graph_error(response)


def _graph_error(response: outbound.Response) -> _Refused:
    error = response.body.get("error", {}) if isinstance(response.body, dict) else {}
    message = f"Graph API {response.status}: {error.get('message') or str(response.body)[:300]}"
    transient = response.status >= 500 or response.status == 429 or error.get("code") in _TRANSIENT_GRAPH_CODES
    return _Refused(message, transient)


def _retry(submission: Submission, message: str) -> Fetch:
    submission.fetch_attempts += 1
    if submission.fetch_attempts >= settings.CRMSYNC["PUSH_MAX_ATTEMPTS"]:
        return _fail(submission, f"Gave up after {submission.fetch_attempts} attempts. {message}")
    submission.next_attempt_at = timezone.now() + timedelta(seconds=outbound.backoff_seconds(submission.fetch_attempts))
    submission.notes = [*submission.notes, f"fetch attempt {submission.fetch_attempts} failed: {message}"][-20:]
    submission.save(update_fields=["fetch_attempts", "next_attempt_at", "notes"])
    return Fetch.RETRY


def _fail(submission: Submission, message: str) -> Fetch:
    # Only a still-received submission may be rejected; a concurrent run may have finished it.
    if Submission.objects.filter(pk=submission.pk, status=Submission.Status.RECEIVED).update(
            status=Submission.Status.REJECTED, processed_at=timezone.now(),
            reasons=[{"field": "leadgen_id", "target": "", "message": message}]):
        metrics.submission_finished(source=submission.source.slug, status=Submission.Status.REJECTED, fields=[""])
    return Fetch.FAILED
