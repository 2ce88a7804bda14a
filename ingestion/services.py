"""Receiving: the gatekeeper. Every request is checked in this order, each step cheap before
expensive: source, origin, throttle, size, authentication on the raw bytes, content type,
parsing, honeypot, idempotency; then one transaction stores the submission, and the answer
goes out after the commit. Workers find new submissions by polling (`submissions_claim`) and
the pipeline records each one's outcome here (`submission_finish`)."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import functools
import hmac
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from audit import buckets
from audit.logging import correlation_id_new, correlation_ids_bind
from core import metrics
from core import secrets as crypto
from ingestion import cache, parsing, signatures, throttle
from ingestion.models import Source, SourceCounter, SourceSecret, Submission
from ingestion.parsing import IntakeError
from ingestion.presets import (
    CONTENT_HASH_PREFIX,
    META_KIND,
    PRESETS,
    WEB_FORM_KIND,
    Auth,
    content_hash_key,
    idempotency_key_from,
)

log = logging.getLogger(__name__)
Outcome = SourceCounter.Outcome

# Header names (lower-case) or fragments of them that carry secrets; never stored.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie", "set-cookie"}
_SECRET_FRAGMENTS = ("signature", "secret", "token", "api-key", "apikey", "password")
API_KEY_HEADER = "X-API-Key"


@dataclass(frozen=True)
class Inbound:
    body: bytes
    content_type: str
    headers: dict[str, str]
    remote_addr: str | None
    user_agent: str
    query: dict[str, str] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return _header(self.headers, "Origin")


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def source_for_intake(*, slug: str) -> Source:
    source = cache.cached(("source", slug), lambda: Source.objects.filter(slug=slug, is_active=True).order_by().first())
    if source is None:
        raise IntakeError(404, "unknown_source", f"No active source has the slug '{slug}'.")
    return source


def submission_intake(*, source: Source, inbound: Inbound) -> Answer:
    """Everything after the body was read within the source's size limit."""
    cors = cors_headers(source=source, origin=inbound.origin)
    try:
        _gate(source, inbound)
        stored = submission_receive(source=source, inbound=inbound)
    except IntakeError as exc:
        source_count(source=source, outcome=exc.outcome, reason=exc.code)
        return Answer(exc.status, exc.as_json(), {**cors, **exc.headers})
    for _ in range(sum(not created for _, created in stored)):
        source_count(source=source, outcome=Outcome.DUPLICATE, reason="idempotency key seen before")
    body: dict[str, Any] = {"id": stored[0][0], "status": "accepted"}
    if source.kind == META_KIND:
        body["ids"] = [submission_id for submission_id, _ in stored]  # one submission per lead
    if source.kind == WEB_FORM_KIND and source.success_url:
        body["redirect"] = source.success_url  # where the form script sends the visitor
    return Answer(202, body, cors)


def _gate(source: Source, inbound: Inbound) -> None:
    if source.auth_method == Auth.NONE:
        _check_origin(source, inbound.origin)
        _check_throttles(source, inbound.remote_addr)
    authenticate(source=source, inbound=inbound)


@dataclass(frozen=True)
class _Row:
    """One submission to store: its payload, notes and idempotency key."""

    payload: dict[str, Any]
    notes: list[str]
    key: str | None
    hashed: bool = False  # the key is a content hash, good for the preset's content_hash_seconds


def submission_receive(*, source: Source, inbound: Inbound) -> list[tuple[int, bool]]:
    """Parse and store. Returns each stored submission's ID and whether it is new (False: its
    idempotency key was seen before and nothing was created): one submission per request,
    except a Meta notification, stored as one per lead. All of a request's rows are stored in
    one transaction."""
    parsed = parsing.parse_body(inbound.body, inbound.content_type, source.preset)
    rows = _meta_rows(parsed) if source.kind == META_KIND else [_keyed_row(source, inbound, parsed)]
    values = {
        "source_id": source.pk, "raw_body": inbound.body, "content_type": inbound.content_type[:200],
        "headers": headers_filter(inbound.headers), "remote_addr": inbound.remote_addr,
        "user_agent": inbound.user_agent[:500],
        "status": Submission.Status.SPAM if _is_spam(source, parsed.payload) else Submission.Status.RECEIVED,
    }
    if len(rows) == 1:
        stored = [_store(source, rows[0], values)]
    else:
        with transaction.atomic():  # each row in a savepoint of its own (see _store)
            stored = [_store(source, row, values) for row in rows]
    metrics.intake_record(source=source.slug, outcome="spam" if values["status"] == Submission.Status.SPAM
                          else "accepted" if any(row[1] for row in stored) else "duplicate")
    if values["status"] == Submission.Status.SPAM:
        buckets.count_add(metric=buckets.INTAKE, subject_id=source.pk, outcome="spam", n=sum(new for _, new, _ in stored))
    # The request's log lines (and its X-Correlation-ID) name the submissions it stored, or the
    # ones that already held its idempotency key.
    correlation_ids_bind(correlation_id for _, _, correlation_id in stored)
    return [(submission_id, created) for submission_id, created, _ in stored]


def _keyed_row(source: Source, inbound: Inbound, parsed: parsing.Parsed) -> _Row:
    """The key, first found: the Idempotency-Key header; a web form's hidden key field (always
    taken out of the stored payload: it is not lead data); the provider's event ID; a hash of
    the content for presets whose sender may send no ID."""
    payload = parsed.payload
    hidden = ""
    if source.kind == WEB_FORM_KIND and source.idempotency_field:
        payload = dict(payload)
        hidden = _hidden_key(source.idempotency_field, payload.pop(source.idempotency_field, ""))
    key = (_header(inbound.headers, "Idempotency-Key") or hidden
           or idempotency_key_from(payload, source.preset.idempotency_paths))
    if key:
        return _Row(payload, parsed.notes, key[:255])
    if source.preset.content_hash_seconds:
        return _Row(payload, parsed.notes, content_hash_key(payload, parsed.notes), hashed=True)
    return _Row(payload, parsed.notes, None)


def _hidden_key(field_name: str, value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    raise IntakeError(400, "invalid_payload", f"The hidden field '{field_name}' must appear once, holding one key.",
                      fields={field_name: "Appears more than once."})


def _meta_rows(parsed: parsing.Parsed) -> list[_Row]:
    """One row per lead, keyed on its leadgen_id: Meta's redelivery of the notification, or
    another notification naming a lead already received, stores nothing again. A notification
    naming no lead is kept whole (the worker rejects it, saying so)."""
    leads = parsing.meta_leads_split(parsed.payload)
    if not leads:
        return [_Row(parsed.payload, parsed.notes, None)]
    note = [f"one of {len(leads)} leads in one Meta notification"] if len(leads) > 1 else []
    return [_Row(payload, [*parsed.notes, *note], leadgen_id[:255]) for leadgen_id, payload in leads]


def _store(source: Source, row: _Row, values: dict[str, Any]) -> tuple[int, bool, str]:
    """Insert the row, or find the submission that already holds its key. Returns its ID,
    whether it is new, and its correlation ID.

    The unique (source, idempotency_key) constraint decides, not a prior SELECT: of any number
    of concurrent deliveries of one event, exactly one row exists. A content-hash key counts
    only within its preset's window: past it, the old submission gives the key up and this one
    is stored (so the window holds whenever idempotency_keys_prune last ran)."""
    correlation_id = correlation_id_new()
    for _ in range(3):
        try:
            with transaction.atomic():
                return submission_insert(**values, payload=row.payload, notes=row.notes, idempotency_key=row.key,
                                         correlation_id=correlation_id), True, correlation_id
        except IntegrityError:
            holder = Submission.objects.filter(source_id=source.pk, idempotency_key=row.key).values_list(
                "pk", "received_at", "correlation_id").first()
            if holder is not None and not (row.hashed and _expired(source, holder[1])):
                return holder[0], False, holder[2]
            if holder is not None:
                Submission.objects.filter(pk=holder[0], idempotency_key=row.key).update(idempotency_key=None)
            # else: the holder gave the key up (pruned) since our INSERT failed: insert again.
    raise IntakeError(503, "busy", "The submission could not be stored; retry.", None, headers={"Retry-After": "1"})


def _expired(source: Source, received_at: datetime) -> bool:
    return received_at < timezone.now() - timedelta(seconds=source.preset.content_hash_seconds)


def submission_insert(*, source_id: int, raw_body: bytes, content_type: str, payload: dict[str, Any],
                      notes: list, headers: dict[str, str], remote_addr: str | None, user_agent: str,
                      idempotency_key: str | None, status: str, correlation_id: str = "") -> int:
    """One INSERT ... RETURNING id, as a single prepared statement.

    This is the only write on the intake's hot path, and building and saving a model instance
    costs more CPU than the rest of the request together (bench/README.md). Values go through
    the backend's own adapters, exactly as the ORM would send them; every other column takes
    the model's default. tests/ingestion/test_intake.py reads rows back through the ORM."""
    ops = connection.ops
    params = [
        source_id, ops.adapt_datetimefield_value(timezone.now()), status, ops.adapt_json_value([], None),
        raw_body, content_type, ops.adapt_json_value(payload, None), ops.adapt_json_value(headers, None),
        ops.adapt_ipaddressfield_value(remote_addr), user_agent, idempotency_key,
        ops.adapt_json_value(notes, None), ops.adapt_json_value({}, None), 0, ops.adapt_json_value({}, None), "",
        correlation_id or correlation_id_new(),
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_sql(connection.vendor), params)
        return cursor.fetchone()[0]


_INSERT_COLUMNS = ("source", "received_at", "status", "reasons", "raw_body", "content_type", "payload", "headers",
                   "remote_addr", "user_agent", "idempotency_key", "notes", "enrichment", "fetch_attempts",
                   "field_overrides", "dismissed_reason", "correlation_id")


@functools.cache
def _insert_sql(vendor: str) -> str:
    meta = Submission._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _INSERT_COLUMNS)
    placeholders = ", ".join(["%s"] * len(_INSERT_COLUMNS))
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING {quote(meta.pk.column)}"


# --- Authentication ------------------------------------------------------------------------


def authenticate(*, source: Source, inbound: Inbound) -> None:
    """On the raw bytes, before anything parses them; secrets compared in constant time."""
    method = source.auth_method
    if method == Auth.NONE:
        return
    if method == Auth.API_KEY:
        _check_hashed(source, SourceSecret.Purpose.API_KEY, _header(inbound.headers, API_KEY_HEADER), "api key")
    elif method == Auth.URL_TOKEN:
        _check_hashed(source, SourceSecret.Purpose.URL_TOKEN, inbound.query.get("token", ""), "token")
    else:
        _check_signature(source, inbound)


def _check_hashed(source: Source, purpose: str, presented: str, what: str) -> None:
    if not presented:
        raise IntakeError(401, "unauthorized", f"Missing {what}.", Outcome.REFUSED_AUTH)
    hashes = cache.cached(("hashes", source.pk, purpose), lambda: list(
        SourceSecret.objects.filter(source_id=source.pk, purpose=purpose, is_active=True).order_by()
        .values_list("value_hash", flat=True)))
    if not signatures.api_key_matches(presented, hashes):
        raise IntakeError(401, "unauthorized", f"Invalid {what}.", Outcome.REFUSED_AUTH)


def _check_signature(source: Source, inbound: Inbound) -> None:
    generic = source.auth_method == Auth.GENERIC_HMAC
    scheme = "generic_hmac" if generic else source.preset.signature_scheme
    try:
        signatures.verify(scheme, secrets=active_secrets(source=source, purpose=SourceSecret.Purpose.SIGNING),
                          body=inbound.body, headers=inbound.headers,
                          options=source.hmac_options() if generic else None)
    except signatures.SignatureError as exc:
        raise IntakeError(401, "unauthorized", str(exc), Outcome.REFUSED_AUTH, reason=exc.reason) from exc


def active_secrets(*, source: Source, purpose: str) -> list[str]:
    def load() -> list[str]:
        rows = SourceSecret.objects.filter(source_id=source.pk, purpose=purpose, is_active=True).order_by()
        return [crypto.decrypt(value) for value in rows.values_list("value_encrypted", flat=True) if value]

    return cache.cached(("secrets", source.pk, purpose), load)


def meta_handshake(*, source: Source, query: dict[str, str]) -> str:
    """Meta's subscription check: echo hub.challenge when hub.verify_token is ours."""
    if source.kind != META_KIND:
        raise IntakeError(405, "method_not_allowed", "GET is only answered for Meta's verification handshake.")
    presented = query.get("hub.verify_token", "")
    tokens = active_secrets(source=source, purpose=SourceSecret.Purpose.META_VERIFY)
    matched = [hmac.compare_digest(presented.encode(), token.encode()) for token in tokens]
    if query.get("hub.mode") != "subscribe" or not presented or not any(matched):
        raise IntakeError(403, "verification_failed", "hub.mode or hub.verify_token is wrong.", Outcome.REFUSED_AUTH)
    return query.get("hub.challenge", "")


# --- Public web forms ----------------------------------------------------------------------


def cors_headers(*, source: Source, origin: str) -> dict[str, str]:
    if source.auth_method != Auth.NONE or not origin or not _origin_allowed(source, origin):
        return {}
    return {"Access-Control-Allow-Origin": origin if source.origins else "*", "Vary": "Origin"}


def cors_preflight(*, source: Source, origin: str) -> Answer:
    if source.auth_method != Auth.NONE:
        raise IntakeError(405, "method_not_allowed", "This source does not accept browser requests.")
    _check_origin(source, origin)
    headers = {
        **cors_headers(source=source, origin=origin),
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key",
        "Access-Control-Max-Age": "86400",
    }
    return Answer(204, {}, headers)


def _origin_allowed(source: Source, origin: str) -> bool:
    return not source.origins or origin.rstrip("/") in source.origins


def _check_origin(source: Source, origin: str) -> None:
    # Requests without an Origin are not from a browser's cross-site form; they pass here and
    # meet the throttles like everyone else.
    if origin and not _origin_allowed(source, origin):
        raise IntakeError(403, "origin_not_allowed", f"Origin '{origin}' may not post to this form.", Outcome.BAD_ORIGIN)


def _check_throttles(source: Source, remote_addr: str | None) -> None:
    checks = [(f"src:{source.pk}", source.source_limit_per_minute)]
    if remote_addr:
        checks.append((f"ip:{source.pk}:{remote_addr}", source.ip_limit_per_minute))
    for key, limit in checks:
        wait = throttle.hit(key, limit=limit, window_seconds=60)
        if wait:
            raise IntakeError(429, "throttled", f"Too many requests; retry in {wait} s.", Outcome.THROTTLED,
                              headers={"Retry-After": str(wait)})


def _is_spam(source: Source, payload: dict[str, Any]) -> bool:
    field_name = source.honeypot_field
    return bool(source.auth_method == Auth.NONE and field_name and payload.get(field_name) not in (None, "", []))


# --- Handing over to the workers ----------------------------------------------------------


def submissions_claim(*, requeue_after_seconds: int, limit: int = 500) -> list[int]:
    """Claim received submissions for processing and return their IDs. The intake only
    inserts; workers poll for new rows (manage.py worker) and queue them in batches. A claim
    whose queue message was lost is claimed again after `requeue_after_seconds`.

    Race-free across workers: the conditional UPDATE re-checks the WHERE clause on write."""
    now = timezone.now()
    due = list(_claimable(now, requeue_after_seconds).order_by("id").values_list("id", "source_id", "queued_at")[:limit])
    ids = [submission_id for submission_id, _, _ in due]
    if not ids:
        return []
    _claimable(now, requeue_after_seconds).filter(id__in=ids).update(queued_at=now)
    claimed = list(Submission.objects.filter(id__in=ids, queued_at=now).values_list("id", flat=True))
    _accepted_count(due, set(claimed))
    return claimed


def _accepted_count(due: list[tuple[int, int, Any]], claimed: set[int]) -> None:
    """Count accepted submissions for the dashboard when first claimed (never queued before),
    here in the worker: a counter row updated by every request would serialize intake."""
    for source_id, n in Counter(source_id for pk, source_id, queued_at in due if queued_at is None and pk in claimed).items():
        buckets.count_add(metric=buckets.INTAKE, subject_id=source_id, outcome="accepted", n=n)


def _claimable(now, requeue_after_seconds: int):
    from django.db.models import Q

    stale = now - timedelta(seconds=requeue_after_seconds)
    return Submission.objects.filter(
        Q(queued_at__isnull=True) | Q(queued_at__lte=stale),
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        status=Submission.Status.RECEIVED,
    )


# --- Bookkeeping ---------------------------------------------------------------------------


def submission_waiting_for_retry(submission: Submission) -> bool:
    """A fetch of the submission's data (Meta leads) failed and its backoff has not run out."""
    return submission.next_attempt_at is not None and submission.next_attempt_at > timezone.now()


def submission_reopen(*, submission_id: int) -> bool:
    """Make a rejected submission 'received' again so it is processed anew; False for any other."""
    updated = Submission.objects.filter(pk=submission_id, status=Submission.Status.REJECTED).update(
        status=Submission.Status.RECEIVED, reasons=[], processed_at=None, fetch_attempts=0, next_attempt_at=None)
    if updated:
        log.info("submission reprocessing", extra={"submission": submission_id})
    return bool(updated)


def submission_finish(*, submission: Submission, status: str, reasons: list | None = None, lead=None,
                      mapping_version=None) -> Submission:
    """Record what became of a submission: processed (with its lead) or rejected (with reasons)."""
    submission.status = status
    submission.reasons = reasons or []
    submission.lead = lead
    submission.mapping_version = mapping_version
    submission.processed_at = timezone.now()
    submission.save(update_fields=["status", "reasons", "lead", "mapping_version", "processed_at"])
    log.info("submission processed", extra={"submission": submission.pk, "status": status})
    buckets.count_add(metric=buckets.INTAKE, subject_id=submission.source_id, outcome=status)
    metrics.submission_finished(source=submission.source.slug, status=status, fields=[
        reason.get("target", "") for reason in submission.reasons] if status == Submission.Status.REJECTED else ())
    return submission


def source_count(*, source: Source, outcome: str | None, reason: str = "") -> None:
    """Count a refusal or a duplicate. Accepted and spam requests are counted from their rows."""
    if outcome is None:
        return
    buckets.count_add(metric=buckets.INTAKE, subject_id=source.pk, outcome=outcome)
    updated = SourceCounter.objects.filter(source=source, outcome=outcome).update(
        count=F("count") + 1, last_at=timezone.now(), last_reason=reason[:200])
    if not updated:
        try:
            with transaction.atomic():
                SourceCounter.objects.create(source=source, outcome=outcome, count=1, last_reason=reason[:200])
        except IntegrityError:  # created concurrently
            source_count(source=source, outcome=outcome, reason=reason)


def idempotency_keys_prune(*, older_than_days: int | None = None) -> int:
    """Forget keys after the retention period: a sender retrying after that makes a new row.
    Content-hash keys are forgotten once their preset's window is over (the intake already
    ignores them then; this keeps the unique index small)."""
    days = settings.CRMSYNC["IDEMPOTENCY_RETENTION_DAYS"] if older_than_days is None else older_than_days
    now = timezone.now()
    retained = now - timedelta(days=days)
    forgotten = Submission.objects.filter(idempotency_key__isnull=False, received_at__lt=retained).update(
        idempotency_key=None)
    for seconds, kinds in _content_hash_windows().items():
        # Bounded below by the retention cutoff: older rows were just cleared, so the scan of
        # the received_at index stays within the retention period.
        forgotten += Submission.objects.filter(
            source__kind__in=kinds, idempotency_key__startswith=CONTENT_HASH_PREFIX,
            received_at__lt=now - timedelta(seconds=seconds), received_at__gte=retained,
        ).update(idempotency_key=None)
    return forgotten


def _content_hash_windows() -> dict[int, list[str]]:
    windows: dict[int, list[str]] = {}
    for preset in PRESETS.values():
        if preset.content_hash_seconds:
            windows.setdefault(preset.content_hash_seconds, []).append(preset.kind)
    return windows


def headers_filter(headers: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if not _is_secret(name)}


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered in _SECRET_HEADERS or any(fragment in lowered for fragment in _SECRET_FRAGMENTS)


def _header(headers: dict[str, str], name: str) -> str:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), "")
