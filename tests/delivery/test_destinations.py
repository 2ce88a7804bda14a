"""Setting a destination up: the admin form refuses what cannot work, HubSpot OAuth tokens are
fetched, shared and refreshed once, and the session reads each CRM's rate signals."""

from datetime import timedelta

from django.utils import timezone
import pytest
import requests

from delivery import ratelimit
from delivery.models import Destination, PushJob
from delivery.session import DestinationSession
from sandbox.models import SandboxAccessToken, SandboxContact
from tests.factories import deliver, destination_form, hubspot_destination
from tests.factories import lead as make_lead

pytestmark = pytest.mark.django_db(transaction=True)
ADD = "/admin/delivery/destination/add/"


# --- the admin form refuses what cannot work -----------------------------------------------------


@pytest.mark.parametrize("values, field, message", [
    ({"kind": "salesforce", "auth_method": "private_app"}, "auth_method", "Salesforce destination uses"),
    ({"kind": "hubspot", "object_model": "lead"}, "object_model", "HubSpot destination writes"),
    ({"token": ""}, "token", "Private-app token is required"),
    ({"auth_method": "oauth", "token": "", "client_id": "id"}, "client_secret", "Client secret is required"),
    ({"headers": '{"Authorization": "Bearer x"}'}, "headers", "not in plain headers"),
    ({"headers": '{"X-Count": 3}'}, "headers", "JSON object of strings"),
    ({"body_template": '{"email": '}, "body_template", "Not valid JSON"),
    ({"signature_header": "X-Signature"}, "signing_secret", "needs a signing secret"),
])
def test_the_admin_refuses_a_destination_that_cannot_work_with_a_message_on_the_field(operator, values, field, message):
    answer = operator.post(ADD, destination_form(**{"token": "pat-secret", **values}))

    assert answer.status_code == 200  # the form again, not a redirect
    errors = answer.context["adminform"].form.errors
    assert field in errors and message in " ".join(errors[field]), errors
    assert not Destination.objects.exists()


def test_a_new_destination_gets_its_kinds_field_map_and_keeps_stored_secrets_on_edit(operator):
    operator.post(ADD, destination_form(kind="salesforce", auth_method="client_credentials", object_model="lead",
                                        upsert_property="Crmsync_External_Id__c", token="", client_id="key",
                                        client_secret="secret"))
    destination = Destination.objects.get()
    assert {f.target for f in destination.fields.all()} >= {"Email", "LastName", "Company"}

    edit = destination_form(kind="salesforce", auth_method="client_credentials", object_model="lead", token="",
                            name="renamed", upsert_property="Crmsync_External_Id__c",
                            **{"fields-TOTAL_FORMS": "0", "fields-INITIAL_FORMS": "0"})
    # the existing field-map rows are not posted back here; keep them
    answer = operator.post(f"/admin/delivery/destination/{destination.pk}/change/", edit)

    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    destination.refresh_from_db()
    assert destination.name == "renamed"
    assert destination.credentials() == {"client_id": "key", "client_secret": "secret"}


# --- HubSpot OAuth ------------------------------------------------------------------------------


def oauth_destination(sandbox_url, settings, **credentials) -> Destination:
    destination = hubspot_destination(base_url=sandbox_url, auth_method=Destination.Auth.OAUTH, token="")
    destination.credentials_encrypted = ""
    destination.set_credentials({"client_id": settings.SANDBOX_HUBSPOT_CLIENT_ID,
                                 "client_secret": settings.SANDBOX_HUBSPOT_CLIENT_SECRET,
                                 "refresh_token": settings.SANDBOX_HUBSPOT_REFRESH_TOKEN, **credentials})
    destination.save()
    return destination


def test_an_oauth_destination_fetches_one_token_shares_it_and_refreshes_it_once_when_expired(sandbox_url, settings):
    destination = oauth_destination(sandbox_url, settings)
    lead = make_lead(first_name="Ada")

    assert deliver(lead).status == PushJob.Status.SUCCEEDED
    destination.refresh_from_db()
    first_token = destination.access_token_encrypted
    assert first_token and destination.access_token_expires_at > timezone.now()
    assert SandboxAccessToken.objects.filter(crm="hubspot").count() == 1

    # the CRM expires the token early (revoked, clock skew): the next push refreshes once
    SandboxAccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    lead.first_name = "Augusta"
    lead.save()
    job = deliver(lead)

    assert (job.status, job.attempts) == (PushJob.Status.SUCCEEDED, 1)
    destination.refresh_from_db()
    assert destination.access_token_encrypted != first_token and not destination.is_paused
    assert SandboxContact.objects.get().properties["firstname"] == "Augusta"


def test_a_refused_refresh_token_pauses_the_destination_with_hubspots_reason(sandbox_url, settings):
    destination = oauth_destination(sandbox_url, settings, refresh_token="revoked")

    job = deliver(make_lead())

    destination.refresh_from_db()
    assert destination.is_paused and "BAD_REFRESH_TOKEN" in destination.paused_reason
    assert (job.status, job.attempts) == (PushJob.Status.PENDING, 0)
    assert not SandboxContact.objects.exists()


# --- the session reads the CRM's rate signals -----------------------------------------------------


def answer(status: int, **headers: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


@pytest.mark.parametrize("headers, status, seconds, reason", [
    ({"Retry-After": "7"}, 429, 7, "429"),
    ({"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, 200, 10,
     "HubSpot window"),
    ({"X-HubSpot-RateLimit-Daily-Remaining": "0"}, 200, None, "daily limit"),
    ({"Sforce-Limit-Info": "api-usage=14300/15000"}, 200, 900, "Salesforce API usage 14300/15000"),
])
def test_the_crms_rate_signals_block_every_worker_for_the_time_they_name(headers, status, seconds, reason):
    destination = hubspot_destination(base_url="http://127.0.0.1:9")

    DestinationSession(destination).observe(answer(status, **headers))

    grant = ratelimit.acquire(destination)
    assert not grant.granted and reason in grant.reason
    expected = ratelimit.seconds_to_midnight() if seconds is None else seconds
    assert abs(grant.wait_seconds - expected) < 2  # milliseconds of rounding and of test time


@pytest.mark.parametrize("headers", [
    {"X-HubSpot-RateLimit-Remaining": "5", "X-HubSpot-RateLimit-Daily-Remaining": "1000"},
    {"Sforce-Limit-Info": "api-usage=100/15000"},
])
def test_signals_with_room_left_block_nothing(headers):
    destination = hubspot_destination(base_url="http://127.0.0.1:9")
    DestinationSession(destination).observe(answer(200, **headers))
    assert ratelimit.acquire(destination).granted


def test_an_https_destination_is_never_sent_over_plain_http():
    destination = hubspot_destination(base_url="https://api.hubapi.com")
    destination.instance_url = "http://api.hubapi.com"  # e.g. a tampered token answer
    plain = DestinationSession(destination)
    assert type(plain.get_adapter("https://api.hubapi.com/crm")).__name__ == "HTTPAdapter"

    sandbox = hubspot_destination(base_url="http://127.0.0.1:8000/sandbox/hubspot", name="sandbox")
    assert type(DestinationSession(sandbox).get_adapter("https://127.0.0.1:8000/x")).__name__ == "_PlainHTTPAdapter"
