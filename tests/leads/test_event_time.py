"""Event time, not processing time: a value carries when it changed at its origin, and an older
submission processed after a newer one changes nothing the newer one set."""

from datetime import timedelta

from django.utils import timezone
import pytest

from crmsync.pipeline import submission_process, submission_reprocess
from ingestion.models import Submission
from leads.models import LeadDecision
from tests.factories import submission
from tests.leads.helpers import submit

pytestmark = pytest.mark.django_db


def iso(minutes_ago: int) -> str:
    return (timezone.now() - timedelta(minutes=minutes_ago)).isoformat()


def test_an_older_submission_processed_later_changes_nothing_the_newer_one_set(crm_import):
    newer = submit(crm_import, email="ada@example.com", phone="+49 30 2222222", company="New GmbH",
                   submitted_at=iso(5))
    lead = submit(crm_import, email="ada@example.com", phone="+49 30 1111111", company="Old GmbH", first_name="Ada",
                  submitted_at=iso(60))
    assert lead.pk == newer.pk
    assert (lead.phone, lead.company) == ("+49302222222", "New GmbH")
    assert lead.first_name == "Ada"  # a blank filled, whatever its age
    decision = LeadDecision.objects.filter(lead=lead, action=LeadDecision.Action.MATCHED).first()
    assert "newer than this submission" in decision.changes["kept"]["phone"]


def test_a_newer_submission_still_wins(crm_import):
    submit(crm_import, email="ada@example.com", phone="+49 30 1111111", submitted_at=iso(60))
    lead = submit(crm_import, email="ada@example.com", phone="+49 30 2222222", submitted_at=iso(5))
    assert lead.phone == "+49302222222"


def test_reprocessing_an_old_rejected_submission_does_not_roll_newer_values_back(crm_import):
    old = submission(source=crm_import, payload={"email": "not-an-email", "company": "Old GmbH", "submitted_at": iso(120)})
    assert submission_process(submission_id=old.pk).status == Submission.Status.REJECTED
    submit(crm_import, email="ada@example.com", company="New GmbH", submitted_at=iso(5))
    Submission.objects.filter(pk=old.pk).update(payload={"email": "ada@example.com", "company": "Old GmbH",
                                                         "submitted_at": iso(120)})
    reprocessed = submission_reprocess(submission_id=old.pk)
    assert reprocessed.status == Submission.Status.PROCESSED
    reprocessed.lead.refresh_from_db()
    assert reprocessed.lead.company == "New GmbH"


def test_without_an_event_time_the_receipt_time_orders_values(web):
    submit(web, email="ada@example.com", company="First")
    lead = submit(web, email="ada@example.com", company="Second")
    assert lead.company == "Second"
    assert lead.field_times["company"] >= lead.field_times["email"]


def test_a_sender_clock_far_in_the_future_is_not_believed(crm_import):
    lead = submit(crm_import, email="ada@example.com", company="Future", submitted_at=(timezone.now() + timedelta(days=3)).isoformat())
    assert lead.field_times["company"] < (timezone.now() + timedelta(minutes=1)).isoformat()
