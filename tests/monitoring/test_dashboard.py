"""The dashboard RevOps open in the admin: its numbers come from the hourly counts, its page
costs the same statements however many leads there are, and its chart library is served from
the installed package."""

from datetime import timedelta
import json

from django.contrib.staticfiles import finders
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
import pytest

from audit import buckets
from audit.models import HourlyCount
from delivery.models import PushJob
from ingestion.models import Source, Submission
from leads.models import Lead
from monitoring.samples import history_seed
from monitoring.staticfiles import STATIC_PATH
from tests.factories import hubspot_destination

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded():
    sources = [Source.objects.create(name="Website", slug="website"), Source.objects.create(name="Typeform", slug="typeform")]
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    history_seed(source_ids=[s.pk for s in sources], destination_ids=[destination.pk], now=timezone.now())
    return sources, destination


def page_data(answer) -> dict:
    html = answer.content.decode()
    start = html.index('<script id="dashboard-data" type="application/json">') + len('<script id="dashboard-data" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def test_the_dashboard_shows_a_weeks_counts_per_source_and_destination(operator, seeded):
    (website, typeform), destination = seeded

    answer = operator.get("/admin/dashboard/?range=7d")

    assert answer.status_code == 200
    assert f'src="/static/{STATIC_PATH}"' in answer.content.decode()
    data = page_data(answer)
    start = buckets.hour_of(timezone.now() - timedelta(days=7)) + timedelta(hours=1)
    accepted = dict(HourlyCount.objects.filter(metric=buckets.INTAKE, outcome="accepted", hour__gte=start)
                    .values_list("subject_id").annotate(n=Sum("count")))
    assert data["submissions"]["names"] == ["Typeform", "Website"]
    assert data["submissions"]["series"]["accepted"] == [accepted[typeform.pk], accepted[website.pk]]
    refused = HourlyCount.objects.filter(metric=buckets.INTAKE, subject_id=website.pk, hour__gte=start,
                                         outcome__in=["refused_auth", "throttled"]).aggregate(n=Sum("count"))["n"]
    assert data["submissions"]["series"]["refused"][1] == refused
    assert data["pushes"]["names"] == ["HubSpot"] and data["pushes"]["series"]["dead letter"] == [14]
    assert len(data["bins"]) in (28, 29)  # six-hour steps over a week
    assert all(p50 is not None and p95 >= p50 for p50, p95 in zip(data["latency"]["p50"], data["latency"]["p95"]))
    assert set(data["backlog"]) == {"received submissions", "pending: HubSpot"}
    assert max(data["conflicts"]) == 6


def test_the_last_24_hours_are_hourly_and_30_days_daily(operator, seeded):
    assert len(page_data(operator.get("/admin/dashboard/?range=24h"))["bins"]) == 24
    assert len(page_data(operator.get("/admin/dashboard/?range=30d"))["bins"]) in (30, 31)


def test_the_page_costs_the_same_statements_with_many_more_leads(operator, seeded):
    _, destination = seeded
    with CaptureQueriesContext(connection) as few:
        operator.get("/admin/dashboard/?range=30d")

    # when the raw tables grow (the counts do not change)
    source = Source.objects.get(slug="website")
    leads = Lead.objects.bulk_create(Lead(email=f"p{i}@example.org") for i in range(500))
    Submission.objects.bulk_create(Submission(source=source, raw_body=b"{}", payload={}, lead=lead) for lead in leads)
    PushJob.objects.bulk_create(PushJob(lead=lead, destination=destination, status="succeeded") for lead in leads)
    with CaptureQueriesContext(connection) as many:
        operator.get("/admin/dashboard/?range=30d")

    assert len(many) == len(few)
    assert not any("crmsync_lead" in q["sql"] or "ingestion_submission" in q["sql"] for q in many.captured_queries)


def test_an_outsider_is_sent_to_the_login_page(client):
    answer = client.get("/admin/dashboard/")

    assert answer.status_code == 302 and answer["Location"].startswith("/admin/login/")


def test_the_chart_library_is_served_from_the_installed_plotly_package():
    found = finders.find(STATIC_PATH)

    assert found and found.endswith("plotly.min.js")
    with open(found, encoding="utf-8") as script:
        assert "plotly.js" in script.read(300)


def test_every_kind_of_rule_ships_enabled_with_its_default(operator):
    from monitoring.models import AlertRule

    shipped = dict(AlertRule.objects.values_list("kind", "threshold"))

    assert set(shipped) == set(AlertRule.Kind.values)
    assert shipped[AlertRule.Kind.SYNC_ERROR_RATE] == 2 and shipped[AlertRule.Kind.STUCK_IN_RETRIES] == 30
    assert operator.get("/admin/monitoring/alertrule/").status_code == 200
