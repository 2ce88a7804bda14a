"""GET /metrics: Prometheus's view of the pipeline.

The counters and histograms every process wrote (core/metrics.py, multiprocess mode) plus
gauges read from the database at scrape time: what waits at each stage and for how long, each
destination's pause and rate budget. Each gauge query reads a few rows through an index
(submissions by status and receipt time, push jobs by status, one row per destination), never
a count over a whole table, so a scrape costs the same at a million leads.

Who may scrape: a request with `Authorization: Bearer <CRMSYNC_METRICS_TOKEN>`, or one from an
address in CRMSYNC_METRICS_ALLOWED_IPS. Anyone else gets 401 (a token is configured and was
missing or wrong) or 403, as JSON.
"""

from collections.abc import Iterator
from datetime import datetime
from datetime import timezone as dt_timezone
import hmac
import ipaddress
import time

from django.conf import settings
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from delivery.models import Destination, PushJob, RateBudget
from ingestion.models import Submission

_WAITING = (PushJob.Status.PENDING, PushJob.Status.IN_PROGRESS)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(PipelineState())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


def _refusal(request: HttpRequest) -> JsonResponse | None:
    token = settings.CRMSYNC_METRICS_TOKEN
    presented = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(presented.encode(), f"Bearer {token}".encode()):
        return None
    if _address_allowed(request.META.get("REMOTE_ADDR", "")):
        return None
    if token:
        answer = JsonResponse({"error": "unauthorized", "detail": "Send Authorization: Bearer <CRMSYNC_METRICS_TOKEN>."},
                              status=401)
        answer["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return answer
    return JsonResponse({"error": "forbidden", "detail": "This address may not read the metrics: set "
                         "CRMSYNC_METRICS_ALLOWED_IPS or CRMSYNC_METRICS_TOKEN."}, status=403)


def _address_allowed(remote_addr: str) -> bool:
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if getattr(address, "ipv4_mapped", None):
        address = address.ipv4_mapped
    return any(address in network for network in settings.CRMSYNC_METRICS_ALLOWED_IPS)


class PipelineState:
    """Gauges computed at scrape time, in the web process that answers the scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = timezone.now()
        yield from self._submissions(now)
        destinations = list(Destination.objects.filter(is_active=True).order_by("id")
                            .values("id", "name", "paused_at", "daily_budget"))
        yield from self._push_jobs(now, destinations)
        yield from self._destinations(destinations)

    def _submissions(self, now) -> Iterator[GaugeMetricFamily]:
        # The index submission_status_received: the received rows only, oldest first.
        waiting = (Submission.objects.filter(status=Submission.Status.RECEIVED).order_by()
                   .aggregate(n=Count("id"), oldest=Min("received_at")))
        yield GaugeMetricFamily("crmsync_submissions_waiting", "Submissions received and not yet processed.",
                                value=waiting["n"])
        yield GaugeMetricFamily("crmsync_submissions_waiting_oldest_age_seconds",
                                "Age of the oldest submission waiting to be processed (0: none waits).",
                                value=_age(now, waiting["oldest"]))

    def _push_jobs(self, now, destinations: list[dict]) -> Iterator[GaugeMetricFamily]:
        # The index pushjob_due (status first): only the waiting jobs are read.
        rows = (PushJob.objects.filter(status__in=_WAITING).order_by().values("destination_id")
                .annotate(n=Count("id"), oldest=Min("created_at")))
        by_destination = {row["destination_id"]: row for row in rows}
        count = GaugeMetricFamily("crmsync_push_jobs_waiting", "Push jobs pending or in progress, by destination.",
                                  labels=["destination"])
        age = GaugeMetricFamily("crmsync_push_jobs_waiting_oldest_age_seconds",
                                "Age of the oldest push job not yet delivered, by destination (0: none waits).",
                                labels=["destination"])
        for destination in destinations:
            row = by_destination.get(destination["id"], {"n": 0, "oldest": None})
            count.add_metric([destination["name"]], row["n"])
            age.add_metric([destination["name"]], _age(now, row["oldest"]))
        yield count
        yield age

    def _destinations(self, destinations: list[dict]) -> Iterator[GaugeMetricFamily]:
        families = {
            "paused": GaugeMetricFamily("crmsync_destination_paused", "1 while a destination is paused (refused "
                                        "credentials, or an operator paused it), else 0.", labels=["destination"]),
            "remaining": GaugeMetricFamily("crmsync_rate_budget_daily_remaining",
                                           "Requests left in a destination's daily budget today (UTC).",
                                           labels=["destination"]),
            "limit": GaugeMetricFamily("crmsync_rate_budget_daily_limit", "A destination's daily request budget.",
                                       labels=["destination"]),
            "blocked": GaugeMetricFamily("crmsync_rate_budget_blocked_seconds", "How much longer a destination's "
                                         "budget is blocked by the CRM's signals (0: not blocked).", labels=["destination"]),
        }
        budgets = {b.destination_id: b for b in RateBudget.objects.filter(destination_id__in=[d["id"] for d in destinations])}
        now_ms = int(time.time() * 1000)
        today = datetime.fromtimestamp(now_ms / 1000, dt_timezone.utc).date().isoformat()  # as delivery.ratelimit counts
        for destination in destinations:
            budget, name = budgets.get(destination["id"]), [destination["name"]]
            used = budget.day_count if budget and budget.day == today else 0
            families["paused"].add_metric(name, 1 if destination["paused_at"] else 0)
            families["remaining"].add_metric(name, max(0, destination["daily_budget"] - used))
            families["limit"].add_metric(name, destination["daily_budget"])
            families["blocked"].add_metric(name, max(0, (budget.blocked_until_ms - now_ms) / 1000) if budget else 0)
        yield from families.values()


def _age(now, oldest) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
