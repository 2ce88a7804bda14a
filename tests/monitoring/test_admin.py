"""The monitoring pages of the admin as an operator uses them."""

from django.utils import timezone
import pytest

from monitoring.models import Alert, AlertRule, Channel

pytestmark = pytest.mark.django_db


def firing_alert() -> Alert:
    rule = AlertRule.objects.get(kind=AlertRule.Kind.SYNC_ERROR_RATE)
    return Alert.objects.create(rule=rule, severity=rule.severity, summary="12.5% of 40 CRM calls failed",
                                evidence={"error_rate_pct": 12.5, "errors": 5, "calls": 40},
                                link="/admin/audit/synclog/?operation__exact=error", started_at=timezone.now(),
                                last_seen_at=timezone.now())


def test_a_webhook_channels_secret_is_stored_encrypted_and_never_shown_again(operator):
    answer = operator.post("/admin/monitoring/channel/add/", {
        "name": "Pager", "kind": "webhook", "recipients": "", "url": "https://hooks.example.com/crmsync",
        "signature_header": "X-Crmsync-Signature", "secret": "s3cret-value", "enabled": "on"})

    assert answer.status_code == 302, answer.content.decode()[:2000]
    channel = Channel.objects.get()
    assert channel.secret() == "s3cret-value" and "s3cret-value" not in channel.secret_encrypted
    assert "s3cret-value" not in operator.get(f"/admin/monitoring/channel/{channel.pk}/change/").content.decode()


def test_an_email_channel_without_addresses_is_refused_with_a_reason(operator):
    answer = operator.post("/admin/monitoring/channel/add/", {
        "name": "Mail", "kind": "email", "recipients": "", "url": "", "signature_header": "X-Crmsync-Signature"})

    assert answer.status_code == 200
    assert "An email channel needs at least one address." in answer.content.decode()


def test_the_alerts_page_shows_the_evidence_and_the_link_and_acknowledges(operator):
    alert = firing_alert()

    listing = operator.get("/admin/monitoring/alert/?state=open").content.decode()
    detail = operator.get(f"/admin/monitoring/alert/{alert.pk}/change/").content.decode()
    answer = operator.post("/admin/monitoring/alert/", {"action": "acknowledge", "_selected_action": [alert.pk]}, follow=True)

    assert "12.5% of 40 CRM calls failed" in listing and "/admin/audit/synclog/?operation__exact=error" in listing
    assert "&quot;error_rate_pct&quot;: 12.5" in detail
    assert "Acknowledged 1 alert(s)." in answer.content.decode()
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.acknowledged_by.username == "ops"


def test_the_home_page_links_to_the_dashboard_and_names_open_alerts(operator):
    firing_alert()

    page = operator.get("/admin/").content.decode()

    assert 'href="/admin/dashboard/"' in page and "Sync error rate above 2%" in page
