"""RevOps in a real browser (Chromium): the dashboard draws its charts from a seeded week,
with the chart library served by the product itself, and the alerts page shows what fired,
with its evidence, and lets her acknowledge it."""

from django.db import connection
from django.utils import timezone
import pytest

from delivery import services as delivery
from ingestion.models import Source
from monitoring.models import Alert, AlertRule
from monitoring.samples import history_seed
from monitoring.services import alerts_evaluate
from tests.browser import expect
from tests.factories import hubspot_destination

pytestmark = pytest.mark.django_db(transaction=True)

CHARTS = ("submissions", "pushes", "latency", "backlog", "budget", "dead", "conflicts")


@pytest.fixture
def page(browser_page):
    yield browser_page
    connection.close()


def log_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/admin/login/")
    page.fill("#id_username", "rosa")
    page.fill("#id_password", "pw-rosa-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def test_revops_reads_a_weeks_charts_and_acknowledges_a_firing_alert(live_server, page, django_user_model, tmp_path):
    # given a week of traffic from two sources to a CRM whose credentials were just refused
    django_user_model.objects.create_superuser("rosa", "rosa@example.com", "pw-rosa-123")
    sources = [Source.objects.create(name="Website", slug="website"), Source.objects.create(name="Typeform", slug="typeform")]
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot")
    history_seed(source_ids=[s.pk for s in sources], destination_ids=[destination.pk], now=timezone.now())
    AlertRule.objects.all().delete()  # only the rule this test is about (the shipped ones may be there)
    rule = AlertRule.objects.create(name="Destination paused: the CRM refused the credentials",
                                    kind=AlertRule.Kind.PAUSED_FOR_CREDENTIALS, severity=AlertRule.Severity.CRITICAL)
    delivery.destination_pause(destination=destination, reason="CRM refused the credentials: INVALID_AUTHENTICATION")
    alerts_evaluate()

    # when she opens the dashboard from the admin's home page and picks the last 7 days
    log_in(page, live_server.url)
    page.click("#monitoring-box >> text=Dashboard")
    page.click("text=Last 7 days")
    page.wait_for_selector("#chart-conflicts .main-svg", timeout=60_000)  # 4.8 MB of plotly.js to parse

    # then every chart is drawn, with data
    for chart in CHARTS:
        assert page.locator(f"#chart-{chart} .main-svg").count() >= 1, chart
        assert page.locator(f"#chart-{chart} g.trace").count() >= 1, f"{chart} has no data drawn"
    assert page.locator("#chart-submissions g.trace.bars path").count() >= 2  # bars for both sources
    assert page.locator("#chart-latency g.trace.scatter").count() == 2  # p50 and p95
    expect(page.locator(".dashboard-alerts")).to_contain_text("Destination paused")
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"dashboard screenshot: {shot}")
    assert shot.stat().st_size > 10_000

    # when she opens the alerts page: the firing alert comes first, with its link and evidence
    page.click(".dashboard-ranges >> text=Alerts")
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("Firing")
    assert "Firing" in row.inner_text() and "INVALID_AUTHENTICATION" not in row.inner_text()
    row.locator("th a, td.field-rule a").first.click()
    expect(page.locator(".field-evidence_pretty")).to_contain_text("INVALID_AUTHENTICATION")
    page.go_back()
    page.screenshot(path=str(tmp_path / "alerts.png"), full_page=True)
    print(f"alerts screenshot: {tmp_path / 'alerts.png'}")

    # and acknowledges it
    page.locator("#result_list tbody tr").first.locator("input.action-select").check()
    page.select_option("select[name=action]", "acknowledge")
    page.click("button[name=index]")
    expect(page.locator(".messagelist")).to_contain_text("Acknowledged 1 alert(s)")
    assert Alert.objects.get(rule=rule).state == Alert.State.ACKNOWLEDGED
