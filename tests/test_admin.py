"""What an operator sees in the admin after leads flowed through."""

import pytest

from crmsync.pipeline import submission_process
from ingestion.models import Submission
from leads.models import Lead
from tests.factories import destination_form, hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db




def test_a_rejected_submission_is_listed_with_its_reason(operator):
    source = source_with_mapping()
    sub = submission(source=source, payload={"first_name": "Ada"})
    submission_process(submission_id=sub.pk)

    listing = operator.get("/admin/ingestion/submission/?status__exact=rejected")
    detail = operator.get(f"/admin/ingestion/submission/{sub.pk}/change/")

    assert listing.status_code == 200 and "is required but missing or empty" in listing.content.decode()
    assert detail.status_code == 200
    assert "&#x27;email&#x27; is required but missing or empty." in detail.content.decode()


def test_submissions_and_sync_logs_are_read_only(operator):
    source = source_with_mapping()
    sub = submission(source=source, payload={"email": "a@b.co"})

    assert operator.get("/admin/ingestion/submission/add/").status_code == 403
    answer = operator.post(f"/admin/ingestion/submission/{sub.pk}/change/", {"status": "processed"})
    assert answer.status_code == 403
    assert Submission.objects.get().status == "received"
    assert operator.get("/admin/audit/synclog/add/").status_code == 403


def test_every_model_has_a_working_admin_list(operator):
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    source_with_mapping()
    for path in ("ingestion/source", "ingestion/submission", "mapping/mappingset", "leads/lead",
                 "delivery/destination", "delivery/pushjob", "audit/synclog"):
        assert operator.get(f"/admin/{path}/").status_code == 200, path


def test_a_destination_token_is_stored_encrypted_and_never_shown_again(operator):
    from delivery.models import Destination

    answer = operator.post("/admin/delivery/destination/add/", destination_form(token="pat-na1-secret"))

    assert answer.status_code == 302
    destination = Destination.objects.get()
    assert destination.get_token() == "pat-na1-secret"
    assert "pat-na1-secret" not in destination.credentials_encrypted
    page = operator.get(f"/admin/delivery/destination/{destination.pk}/change/").content.decode()
    assert "pat-na1-secret" not in page


def test_an_operator_sets_up_a_stripe_source_with_a_secret_in_the_admin(operator):
    from ingestion.models import Source

    answer = operator.post("/admin/ingestion/source/add/", {
        "name": "Stripe checkout", "slug": "stripe-checkout", "kind": "stripe", "auth": "", "is_active": "on",
        "max_body_bytes": "262144", "allowed_origins": "", "honeypot_field": "_gotcha", "ip_limit_per_minute": "30",
        "source_limit_per_minute": "1200", "hmac_header": "X-Signature", "hmac_algorithm": "sha256",
        "hmac_encoding": "hex", "hmac_prefix": "", "hmac_timestamp_header": "", "hmac_window_seconds": "300",
        "graph_base_url": "https://graph.facebook.com/v19.0",
        "secrets-TOTAL_FORMS": "1", "secrets-INITIAL_FORMS": "0",
        "secrets-0-purpose": "signing", "secrets-0-label": "live", "secrets-0-value": "whsec_from_stripe", "secrets-0-is_active": "on",
    })

    assert answer.status_code == 302, answer.content.decode()[:3000]
    secret = Source.objects.get(slug="stripe-checkout").secrets.get()
    assert (secret.purpose, secret.hint) == ("signing", "ripe")
    assert "whsec_from_stripe" not in secret.value_encrypted
    page = operator.get(f"/admin/ingestion/source/{secret.source_id}/change/").content.decode()
    assert "whsec_from_stripe" not in page and "stripe" in page


def test_a_generated_api_key_is_shown_once(operator):
    from ingestion.models import Source

    source = Source.objects.create(name="Hook", slug="hook", kind="json_webhook")
    url = f"/admin/ingestion/source/{source.pk}/change/"
    form = {
        "name": "Hook", "slug": "hook", "kind": "json_webhook", "auth": "", "is_active": "on", "max_body_bytes": "262144",
        "allowed_origins": "", "honeypot_field": "_gotcha", "ip_limit_per_minute": "30", "source_limit_per_minute": "1200",
        "hmac_header": "X-Signature", "hmac_algorithm": "sha256", "hmac_encoding": "hex", "hmac_prefix": "",
        "hmac_timestamp_header": "", "hmac_window_seconds": "300", "graph_base_url": "https://graph.facebook.com/v19.0",
        "secrets-TOTAL_FORMS": "1", "secrets-INITIAL_FORMS": "0",
        "secrets-0-purpose": "api_key", "secrets-0-label": "zapier", "secrets-0-value": "", "secrets-0-is_active": "on",
    }

    shown = operator.post(url, form, follow=True).content.decode()
    later = operator.get(url).content.decode()

    key = shown.split("New API key for Hook: ")[1].split(" ")[0]
    assert key.startswith("csk_")
    assert key not in later
    answer = operator.post("/api/v1/sources/hook/submissions", b'{"a": 1}', content_type="application/json", HTTP_X_API_KEY=key)
    assert answer.status_code == 202


def test_the_source_list_shows_request_counts_per_outcome(operator, client):
    from tests.factories import source_with_secret

    source, _ = source_with_secret(kind="web_form", slug="form", max_body_bytes=50, ip_limit_per_minute=3)
    form = "application/x-www-form-urlencoded"
    for body in ("email=a%40b.co", "email=a%40b.co&_gotcha=x", "email=a%40b.co&note=" + "x" * 100,
                 "email=a%40b.co", "email=a%40b.co"):
        client.post("/api/v1/sources/form/submissions", body, content_type=form)

    page = operator.get("/admin/ingestion/source/").content.decode()
    detail = operator.get(f"/admin/ingestion/source/{source.pk}/change/").content.decode()

    for label, count in (("accepted", 2), ("spam", 1), ("oversize", 1), ("throttled", 1), ("refused auth", 0)):
        assert f"{label}: {count}" in detail, label
    assert "field-accepted" in page and "field-throttled" in page


def test_links_to_the_admin_pages_of_models_that_moved_apps_still_arrive(operator):
    lead = Lead.objects.create(email="moved@example.com")

    answer = operator.get(f"/admin/crmsync/lead/{lead.pk}/change/?_changelist_filters=x", follow=True)

    assert answer.redirect_chain[0] == (f"/admin/leads/lead/{lead.pk}/change/?_changelist_filters=x", 301)
    assert answer.status_code == 200 and "moved@example.com" in answer.content.decode()
    assert operator.get("/admin/crmsync/pushjob/").headers["Location"] == "/admin/delivery/pushjob/"
    assert operator.get("/admin/crmsync/nothing/").status_code == 404
