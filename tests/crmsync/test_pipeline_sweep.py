"""Workers find new submissions by polling, and anything a lost queue message left behind."""

from datetime import timedelta

from django.utils import timezone
import pytest

from crmsync.pipeline import pipeline_sweep
from delivery.models import PushJob
from ingestion.models import Submission
from ingestion.services import submissions_claim
from tests.factories import hubspot_destination, source_with_mapping, submission

pytestmark = pytest.mark.django_db


def test_a_new_submission_is_claimed_queued_and_processed(run_tasks_inline, django_capture_on_commit_callbacks):
    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    sub = submission(source=source_with_mapping(), payload={"email": "a@b.co"})

    with django_capture_on_commit_callbacks(execute=True):
        report = pipeline_sweep(stale_seconds=60)

    sub.refresh_from_db()
    assert report.submissions_requeued == 1
    assert sub.status == Submission.Status.PROCESSED
    assert PushJob.objects.filter(lead=sub.lead).exists()


def test_a_claimed_submission_is_claimed_again_only_once_its_claim_is_stale():
    sub = submission(source=source_with_mapping(), payload={"email": "a@b.co"})

    first = submissions_claim(requeue_after_seconds=60)
    again = submissions_claim(requeue_after_seconds=60)  # its message may still be in the queue
    Submission.objects.filter(pk=sub.pk).update(queued_at=timezone.now() - timedelta(seconds=61))
    lost = submissions_claim(requeue_after_seconds=60)  # the message was lost: claim it again

    assert (first, again, lost) == ([sub.pk], [], [sub.pk])


def test_processed_rejected_and_waiting_submissions_are_not_claimed():
    source = source_with_mapping()
    for status in (Submission.Status.PROCESSED, Submission.Status.REJECTED, Submission.Status.SPAM):
        Submission.objects.filter(pk=submission(source=source, payload={}).pk).update(status=status)
    waiting = submission(source=source, payload={})
    Submission.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))

    assert submissions_claim(requeue_after_seconds=0) == []


# --- task paths of messages queued before the restructure ---------------------------------


def test_a_message_queued_under_the_old_mapping_task_path_still_processes_its_submissions(run_tasks_inline):
    from django_q.tasks import async_task

    hubspot_destination(base_url="http://127.0.0.1:9/sandbox/hubspot")
    sub = submission(source=source_with_mapping(), payload={"email": "old-path@b.co"})

    async_task("mapping.tasks.submissions_process", [sub.pk])

    sub.refresh_from_db()
    assert sub.status == Submission.Status.PROCESSED and sub.lead.email == "old-path@b.co"


def test_a_message_queued_under_the_old_dispatch_task_path_still_dispatches(run_tasks_inline, live_server):
    from django_q.tasks import async_task

    hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot", batch_wait_seconds=0)
    sub = submission(source=source_with_mapping(), payload={"email": "old-dispatch@b.co"})
    async_task("crmsync.tasks.submission_process", sub.pk)
    job = PushJob.objects.get(lead__email="old-dispatch@b.co")

    async_task("crmsync.tasks.push_dispatch")

    job.refresh_from_db()
    assert job.status == PushJob.Status.SUCCEEDED and job.crm_record_id
