"""What an operator sees in the admin after leads flowed through."""

import subprocess

from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
import pytest

from audit.admin_mixins import ReadOnlyAdmin
from crmsync.pipeline import submission_process
from delivery.models import Destination, PushJob
from delivery.services import destination_pause
from ingestion.models import Source, Submission
from leads.models import Lead
from mapping.models import MappingSet
from sandbox.models import SandboxFaults
from tests.factories import destination_form, hubspot_destination, source_with_mapping, source_with_secret, submission

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
    answer = operator.post("/admin/delivery/destination/add/", destination_form(token="pat-na1-secret"))

    assert answer.status_code == 302
    destination = Destination.objects.get()
    assert destination.get_token() == "pat-na1-secret"
    assert "pat-na1-secret" not in destination.credentials_encrypted
    page = operator.get(f"/admin/delivery/destination/{destination.pk}/change/").content.decode()
    assert "pat-na1-secret" not in page


def test_an_operator_sets_up_a_stripe_source_with_a_secret_in_the_admin(operator):
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
    source, _ = source_with_secret(kind="web_form", slug="form", max_body_bytes=50, ip_limit_per_minute=3)
    form = "application/x-www-form-urlencoded"
    # Different people: identical bodies within a short time count as one submission.
    for body in ("email=a%40b.co", "email=b%40b.co&_gotcha=x", "email=c%40b.co&note=" + "x" * 100,
                 "email=d%40b.co", "email=e%40b.co"):
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


# --- Reviewers: correct, dismiss, reprocess -------------------------------------------------


@pytest.fixture
def reviewer(django_user_model):
    """A reviewer: sees submissions and may reprocess them; no mapping or lead permissions."""
    user = django_user_model.objects.create_user("rita", "rita@example.com", "pw-rita-123", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="ingestion", codename__in=["view_submission", "reprocess_submission"]))
    client = Client()
    client.force_login(user)
    client.user = user
    return client


def rejected_submission(source=None, payload=None) -> Submission:
    source = source or source_with_mapping()
    sub = submission(source=source, payload=payload if payload is not None else {"email": "bob@@x", "name": "Bob"})
    submission_process(submission_id=sub.pk)
    sub.refresh_from_db()
    assert sub.status == "rejected"
    return sub


def messages_of(answer) -> list[str]:
    return [str(m) for m in answer.context["messages"]]


def test_a_reviewer_sees_the_fields_of_a_rejected_submission_with_the_reason_next_to_the_wrong_one(reviewer):
    sub = rejected_submission()

    detail = reviewer.get(f"/admin/ingestion/submission/{sub.pk}/change/").content.decode()
    page = reviewer.get(f"/admin/ingestion/submission/{sub.pk}/correct/").content.decode()

    assert f'href="/admin/ingestion/submission/{sub.pk}/correct/"' in detail
    assert f'href="/admin/ingestion/submission/{sub.pk}/dismiss/"' in detail
    email_row = page.split('<label for="id_value_')[1:]
    row = next(r for r in email_row if r.split(">")[1].startswith("email<"))
    assert 'value="bob@@x"' in row and "is not a valid email address" in row.split("</tr>")[0]
    assert 'value="Bob"' in page


def test_a_reviewer_corrects_a_wrong_email_and_the_submission_becomes_a_lead(reviewer):
    sub = rejected_submission()
    form = reviewer.get(f"/admin/ingestion/submission/{sub.pk}/correct/").context["form"]
    data = {f"name_{i}": name for i, name in enumerate(form.names)}
    data.update({f"value_{i}": {"email": "bob@example.com", "name": "Bob"}[name] for i, name in enumerate(form.names)})

    answer = reviewer.post(f"/admin/ingestion/submission/{sub.pk}/correct/", {**data, "note": "typo"}, follow=True)

    sub.refresh_from_db()
    assert sub.status == "processed" and sub.lead.email == "bob@example.com"
    assert bytes(sub.raw_body) == b"{}" and sub.payload == {"email": "bob@@x", "name": "Bob"}
    [correction] = sub.corrections.all()
    assert (correction.changes, correction.note, correction.actor) == ({"email": ["bob@@x", "bob@example.com"]}, "typo",
                                                                       reviewer.user)
    assert messages_of(answer) == [
        "Corrected email ('bob@@x' → 'bob@example.com') and reprocessed: processed into lead bob@example.com."]
    page = answer.content.decode()
    assert "rita" in page and "bob@@x → bob@example.com" in page  # the correction, on the submission's page


def test_a_multi_line_value_left_alone_is_not_recorded_as_changed(reviewer):
    sub = rejected_submission(payload={"email": "bob@@x", "message": "Hi,\ncall me"})
    url = f"/admin/ingestion/submission/{sub.pk}/correct/"
    names = reviewer.get(url).context["form"].names
    sent = {"email": "bob@example.com", "message": "Hi,\r\ncall me"}  # as a browser sends a textarea

    reviewer.post(url, {**{f"name_{i}": n for i, n in enumerate(names)},
                        **{f"value_{i}": sent[n] for i, n in enumerate(names)}})

    assert Submission.objects.get().corrections.get().changes == {"email": ["bob@@x", "bob@example.com"]}


def test_a_reviewer_adds_a_field_the_sender_left_out(reviewer):
    sub = rejected_submission(payload={"name": "Bob", "mail": "bob@example.com"})
    url = f"/admin/ingestion/submission/{sub.pk}/correct/"
    names = reviewer.get(url).context["form"].names  # 'email' has a row: the reason names it

    answer = reviewer.post(url, {**{f"name_{i}": n for i, n in enumerate(names)},
                                 **{f"value_{i}": {"email": "bob@example.com"}.get(n, {"name": "Bob", "mail": "bob@example.com"}.get(n, ""))
                                    for i, n in enumerate(names)},
                                 "new_name_0": "company", "new_value_0": "Acme"})

    assert answer.status_code == 302
    sub.refresh_from_db()
    assert sub.status == "processed"
    assert sub.field_overrides == {"email": "bob@example.com", "company": "Acme"}
    assert sub.corrections.get().changes == {"email": [None, "bob@example.com"], "company": [None, "Acme"]}


def test_a_correction_that_is_still_wrong_shows_the_new_reason_on_the_correct_page(reviewer):
    sub = rejected_submission()
    url = f"/admin/ingestion/submission/{sub.pk}/correct/"
    names = reviewer.get(url).context["form"].names

    answer = reviewer.post(url, {**{f"name_{i}": n for i, n in enumerate(names)},
                                 **{f"value_{i}": {"email": "bob@", "name": "Bob"}[n] for i, n in enumerate(names)}},
                           follow=True)

    assert answer.redirect_chain[-1][0] == url
    assert messages_of(answer)[0].startswith("Corrected email ('bob@@x' → 'bob@') and reprocessed, but it is rejected again")
    assert 'value="bob@"' in answer.content.decode()
    assert Submission.objects.get().status == "rejected"


def test_a_correction_without_a_change_or_with_an_unnamed_value_gets_a_form_error(reviewer):
    sub = rejected_submission()
    url = f"/admin/ingestion/submission/{sub.pk}/correct/"
    names = reviewer.get(url).context["form"].names
    same = {**{f"name_{i}": n for i, n in enumerate(names)},
            **{f"value_{i}": {"email": "bob@@x", "name": "Bob"}[n] for i, n in enumerate(names)}}

    unchanged = reviewer.post(url, same)
    unnamed = reviewer.post(url, {**same, "new_value_0": "Acme"})
    twice = reviewer.post(url, {**same, "new_name_0": "email", "new_value_0": "a@b.co"})

    assert unchanged.status_code == 200 and "Nothing to save: every value is as it was." in unchanged.content.decode()
    assert "Name the field this value is for." in unnamed.content.decode()
    assert "&#x27;email&#x27; is listed above: change its value there." in twice.content.decode()
    assert not sub.corrections.exists() and Submission.objects.get().status == "rejected"


def test_a_reviewer_dismisses_a_rejected_submission_with_a_reason(reviewer):
    sub = rejected_submission()
    url = f"/admin/ingestion/submission/{sub.pk}/dismiss/"

    no_reason = reviewer.post(url, {"reason": " "})
    answer = reviewer.post(url, {"reason": "a test from the agency"}, follow=True)

    assert no_reason.status_code == 200 and "This field is required." in no_reason.content.decode()
    sub.refresh_from_db()
    assert (sub.status, sub.dismissed_reason) == ("dismissed", "a test from the agency")
    assert sub.corrections.get().actor == reviewer.user
    assert messages_of(answer) == [f"Dismissed submission {sub.pk}: a test from the agency"]
    rejected_list = reviewer.get("/admin/ingestion/submission/?status__exact=rejected")
    assert sub not in rejected_list.context["cl"].result_list


def test_the_dismiss_action_asks_for_a_reason_and_says_what_it_skipped(reviewer):
    source = source_with_mapping()
    bad = rejected_submission(source=source)
    good = submission(source=source, payload={"email": "ok@example.com"})
    submission_process(submission_id=good.pk)
    selection = {"action": "dismiss", "_selected_action": [bad.pk, good.pk]}

    asked = reviewer.post("/admin/ingestion/submission/", selection)
    done = reviewer.post("/admin/ingestion/submission/", {**selection, "reason": "bot traffic"}, follow=True)

    assert asked.status_code == 200 and 'name="reason"' in asked.content.decode()
    assert messages_of(done) == ["1 dismissed; 1 skipped: processed: only rejected submissions can be dismissed."]
    assert Submission.objects.get(pk=bad.pk).status == "dismissed"
    assert Submission.objects.get(pk=good.pk).status == "processed"


def test_correcting_and_dismissing_need_the_reprocess_permission(client, django_user_model):
    sub = rejected_submission()
    viewer = django_user_model.objects.create_user("vic", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_submission"))
    client.force_login(viewer)

    detail = client.get(f"/admin/ingestion/submission/{sub.pk}/change/").content.decode()

    assert "/correct/" not in detail
    assert client.get(f"/admin/ingestion/submission/{sub.pk}/correct/").status_code == 403
    assert client.post(f"/admin/ingestion/submission/{sub.pk}/dismiss/", {"reason": "x"}).status_code == 403
    assert Submission.objects.get().status == "rejected"


def test_a_processed_submission_cannot_be_corrected(reviewer):
    sub = submission(source=source_with_mapping(), payload={"email": "ok@example.com"})
    submission_process(submission_id=sub.pk)

    answer = reviewer.get(f"/admin/ingestion/submission/{sub.pk}/correct/", follow=True)

    assert messages_of(answer) == [f"Only rejected submissions can be corrected or dismissed; submission {sub.pk} is processed."]
    assert "/correct/" not in answer.content.decode()


def test_reprocessing_a_processed_submission_says_it_was_skipped_and_changes_nothing(reviewer):
    sub = submission(source=source_with_mapping(), payload={"email": "ok@example.com"})
    submission_process(submission_id=sub.pk)
    before = Submission.objects.get().processed_at

    answer = reviewer.post("/admin/ingestion/submission/", {"action": "reprocess", "_selected_action": [sub.pk]},
                           follow=True)

    assert messages_of(answer) == ["0 reprocessed: only rejected submissions can be (1 skipped: processed)."]
    assert Submission.objects.get().processed_at == before


def test_reprocessing_says_what_became_of_each_submission(reviewer):
    source = source_with_mapping()
    fixed = rejected_submission(source=source)
    still_bad = rejected_submission(source=source, payload={"name": "no email"})
    Submission.objects.filter(pk=fixed.pk).update(field_overrides={"email": "bob@example.com"})
    done = submission(source=source, payload={"email": "ok@example.com"})
    submission_process(submission_id=done.pk)

    answer = reviewer.post("/admin/ingestion/submission/",
                           {"action": "reprocess", "_selected_action": [fixed.pk, still_bad.pk, done.pk]}, follow=True)

    assert messages_of(answer) == [
        "2 reprocessed: 1 processed, 1 rejected again; only rejected submissions can be (1 skipped: processed)."]


# --- Replays never count negative ------------------------------------------------------------


def dead_job(destination, email: str):
    return PushJob.objects.create(lead=Lead.objects.create(email=email), destination=destination, status="dead",
                                  last_error="gave up")


def test_retrying_dead_jobs_from_the_filtered_list_counts_no_negative_skips(operator):
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    jobs = [dead_job(destination, f"p{i}@example.com") for i in range(2)]

    answer = operator.post("/admin/delivery/pushjob/?status__exact=dead",
                           {"action": "retry_now", "_selected_action": [j.pk for j in jobs]}, follow=True)

    assert messages_of(answer) == ["2 job(s) queued again."]


def test_retrying_says_why_a_job_was_skipped(operator):
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    done = PushJob.objects.create(lead=Lead.objects.create(email="a@example.com"), destination=destination,
                                  status="succeeded")
    dead = dead_job(destination, "b@example.com")
    PushJob.objects.create(lead=dead.lead, destination=destination)  # a newer pending job for the same lead

    answer = operator.post("/admin/delivery/pushjob/",
                           {"action": "retry_now", "_selected_action": [done.pk, dead.pk]}, follow=True)

    assert messages_of(answer) == ["0 job(s) queued again; 2 skipped: 1 succeeded, 1 a newer job for the lead is pending."]


def test_pausing_and_resuming_count_only_what_changed(operator):
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    destination_pause(destination=destination, reason="auth failed")
    selection = {"_selected_action": [destination.pk]}

    paused = operator.post("/admin/delivery/destination/", {**selection, "action": "pause"}, follow=True)
    resumed = operator.post("/admin/delivery/destination/", {**selection, "action": "resume"}, follow=True)
    again = operator.post("/admin/delivery/destination/", {**selection, "action": "resume"}, follow=True)

    assert messages_of(paused) == ["Paused 0 destination(s); their jobs wait (1 already paused)."]
    assert messages_of(resumed) == ["Resumed 1 destination(s); 0 waiting job(s) are due now."]
    assert messages_of(again) == ["Resumed 0 destination(s); 0 waiting job(s) are due now (1 were not paused)."]


# --- Admin details ---------------------------------------------------------------------------


def test_the_source_page_shows_the_full_intake_url_snippets_and_its_mapping(operator):
    source = source_with_mapping(slug="website", kind="web_form")
    mapping_set = MappingSet.objects.get()

    page = operator.get(f"/admin/ingestion/source/{source.pk}/change/").content.decode()

    assert '<code id="intake-url">http://testserver/api/v1/sources/website/submissions</code>' in page
    assert 'data-copy="intake-url"' in page and "navigator.clipboard" in page
    assert "curl -X POST http://testserver/api/v1/sources/website/submissions" in page
    assert "&lt;input type=&quot;hidden&quot; name=&quot;_idempotency_key&quot;&gt;" in page
    assert "name=&quot;_gotcha&quot; tabindex=&quot;-1&quot;" in page
    assert f'href="/admin/mapping/mappingset/{mapping_set.pk}/change/"' in page
    assert f'href="/admin/mapping/mappingset/?source__id__exact={source.pk}"' in page
    assert "its code is added as ?error=..." in page  # the error URL's help text, shown as text


def test_a_provider_source_page_says_where_to_paste_the_url_instead_of_a_curl(operator):
    source = Source.objects.create(name="Stripe", slug="stripe", kind="stripe")

    page = operator.get(f"/admin/ingestion/source/{source.pk}/change/").content.decode()

    assert "Paste this URL as the webhook endpoint in Stripe" in page
    assert 'id="intake-curl"' not in page and 'id="intake-html"' not in page


def test_every_tabular_inline_labels_its_columns(operator):
    source, _ = source_with_secret(kind="json_webhook", slug="hook")
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    lead = Lead.objects.create(email="a@example.com")
    mapped = source_with_mapping()

    pages = [f"/admin/ingestion/source/{source.pk}/change/", f"/admin/delivery/destination/{destination.pk}/change/",
             f"/admin/leads/lead/{lead.pk}/change/", f"/admin/mapping/mappingset/{MappingSet.objects.get(source=mapped).pk}/change/",
             f"/admin/ingestion/source/{Source.objects.get(slug='website').pk}/change/"]
    for url in pages:
        page = operator.get(url).content.decode()
        heads = [part.split("</thead>")[0] for part in page.split("<thead>")[1:]]
        assert heads, url
        for head in heads:
            # One header per field column (the first and last columns hold each row's title
            # and its delete box).
            columns = [cell for cell in head.split("<th")[1:] if 'class="column-' in cell.split(">", 1)[0]]
            labels = [cell.split(">", 1)[1].split("<")[0].strip() for cell in columns]
            assert labels and all(labels), (url, labels)


def test_read_only_pages_say_view(operator):
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    job = PushJob.objects.create(lead=Lead.objects.create(email="a@example.com"), destination=destination)
    sub = submission(source=source_with_mapping(), payload={})

    for url, name in ((f"/admin/delivery/pushjob/{job.pk}/change/", "push job"),
                      (f"/admin/ingestion/submission/{sub.pk}/change/", "submission"),
                      (f"/admin/leads/lead/{job.lead_id}/change/", "lead")):
        page = operator.get(url).content.decode()
        assert f"<h1>View {name}</h1>" in page, url
        assert 'name="_save"' not in page and "Change " + name not in page, url
    assert operator.post(f"/admin/delivery/pushjob/{job.pk}/change/", {"status": "dead"}).status_code == 403


def test_a_destination_says_which_credentials_are_stored_never_their_value(operator):
    destination = hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot", token="pat-na1-secret")

    page = operator.get(f"/admin/delivery/destination/{destination.pk}/change/").content.decode()

    token_input = page.split('name="token"')[1].split("</div>")[0]
    signing_input = page.split('name="signing_secret"')[1].split("</div>")[0]
    assert '<span class="credential-state credential-set">set</span>' in token_input
    assert '<span class="credential-state credential-not-set">not set</span>' in signing_input
    assert "pat-na1-secret" not in page


def test_sandbox_fault_rules_pick_the_crm_from_a_list(operator):
    form = operator.get("/admin/sandbox/sandboxfaults/add/").content.decode()
    values = {"seed": "0", "error_rate": "0", "rate_limit_rate": "0", "lock_rate": "0", "timeout_rate": "0",
              "timeout_seconds": "30", "lost_reply_rate": "0", "latency_ms": "0"}

    typo = operator.post("/admin/sandbox/sandboxfaults/add/", {**values, "crm": "hubsopt"})
    saved = operator.post("/admin/sandbox/sandboxfaults/add/", {**values, "crm": "salesforce"})

    assert '<select name="crm"' in form and '<option value="hubspot">HubSpot</option>' in form
    assert typo.status_code == 200 and "Select a valid choice." in typo.content.decode()
    assert saved.status_code == 302 and SandboxFaults.objects.get().crm == "salesforce"


def run_snippet(script: str) -> str:
    done = subprocess.run(["bash", "-c", script + " -s -o /dev/null -w '%{http_code}'"], capture_output=True, text=True,
                          timeout=30, check=False)
    return done.stdout.strip() or done.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("auth, fields", [
    ("api_key", {}),
    ("generic_hmac", {"hmac_timestamp_header": "X-Timestamp", "hmac_prefix": "sha256="}),
    ("generic_hmac", {"hmac_encoding": "base64", "hmac_algorithm": "sha512"}),
])
def test_the_curl_snippet_on_the_source_page_sends_a_lead_once_its_placeholders_are_filled(
        live_server, operator, auth, fields):
    source, secret = source_with_secret(kind="json_webhook", auth=auth, secret="s3cret-for-hmac", **fields)
    host = live_server.url.split("://")[1]
    guide = operator.get(f"/admin/ingestion/source/{source.pk}/change/", HTTP_HOST=host).context["intake"]

    script = (guide["curl"].replace("<your API key>", secret).replace("<the signing secret>", secret)
              .replace("<a key unique to this lead, e.g. your record ID>", "crm-42"))

    assert guide["url"] == f"{live_server.url}/api/v1/sources/{source.slug}/submissions"
    assert run_snippet(script) == "202"
    assert Source.objects.get().submissions.get().payload["email"] == "ada@example.com"


@pytest.mark.django_db(transaction=True)
def test_the_web_form_curl_snippet_sends_a_lead(live_server, operator):
    source = Source.objects.create(name="Contact", slug="contact", kind="web_form",
                                   allowed_origins="https://www.example.com")
    host = live_server.url.split("://")[1]
    guide = operator.get(f"/admin/ingestion/source/{source.pk}/change/", HTTP_HOST=host).context["intake"]

    script = guide["curl"].replace("<a key unique to this lead, e.g. your record ID>", "form-1")

    assert "Origin: https://www.example.com" in script
    assert run_snippet(script) == "202"
    assert Source.objects.get().submissions.get().payload["first_name"] == "Ada"


def test_no_read_only_admin_grants_change_so_every_one_says_view(rf, django_user_model):
    request = rf.get("/admin/")
    request.user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    read_only = [model_admin for model_admin in admin.site._registry.values() if isinstance(model_admin, ReadOnlyAdmin)]

    assert len(read_only) > 10
    assert [str(a) for a in read_only if a.has_change_permission(request)] == []
