"""What an operator sees in the admin after leads flowed through."""

import pytest

from ingestion.models import Submission
from mapping.services import submission_process
from tests.factories import hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw-ops-123")
    client.force_login(user)
    return client


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
    for path in ("ingestion/source", "ingestion/submission", "mapping/mappingset", "crmsync/lead",
                 "crmsync/destination", "crmsync/pushjob", "audit/synclog"):
        assert operator.get(f"/admin/{path}/").status_code == 200, path


def test_a_destination_token_is_stored_encrypted_and_never_shown_again(operator):
    from crmsync.models import Destination

    answer = operator.post("/admin/crmsync/destination/add/", {
        "name": "HubSpot prod", "kind": "hubspot", "base_url": "https://api.hubapi.com",
        "upsert_property": "crmsync_external_id", "credentials_env": "", "token": "pat-na1-secret", "is_active": "on",
    })

    assert answer.status_code == 302
    destination = Destination.objects.get()
    assert destination.get_token() == "pat-na1-secret"
    assert "pat-na1-secret" not in destination.credentials_encrypted
    page = operator.get(f"/admin/crmsync/destination/{destination.pk}/change/").content.decode()
    assert "pat-na1-secret" not in page
