"""The sweeper finds work a lost queue message left behind."""

import pytest

from crmsync.models import PushJob
from crmsync.services import pipeline_sweep
from ingestion.models import Submission
from tests.factories import hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db


def test_a_submission_whose_message_was_lost_is_processed_by_the_sweep(run_tasks_inline, django_capture_on_commit_callbacks):
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    sub = submission(source=source_with_mapping(), payload={"email": "a@b.co"})  # stored, never enqueued

    with django_capture_on_commit_callbacks(execute=True):
        report = pipeline_sweep(stale_seconds=0)

    sub.refresh_from_db()
    assert report.submissions_requeued == 1
    assert sub.status == Submission.Status.PROCESSED
    assert PushJob.objects.filter(lead=sub.lead).exists()


def test_a_fresh_submission_is_left_to_its_own_message():
    submission(source=source_with_mapping(), payload={"email": "a@b.co"})

    assert pipeline_sweep(stale_seconds=60).submissions_requeued == 0
