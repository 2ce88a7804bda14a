"""django-q2 entry points of the pipeline: thin adapters that take IDs, never model instances."""

from django.conf import settings

from crmsync import pipeline
from delivery.tasks import push_dispatch  # noqa: F401 -- messages queued before delivery had its own app name this path


def submissions_process(submission_ids: list[int]) -> str:
    return ", ".join(pipeline.submission_process(submission_id=pk).status for pk in submission_ids)


def submission_process(submission_id: int) -> str:
    return pipeline.submission_process(submission_id=submission_id).status


def pipeline_sweep() -> str:
    report = pipeline.pipeline_sweep(stale_seconds=settings.CRMSYNC["SWEEP_STALE_SECONDS"])
    return f"requeued {report.submissions_requeued} submissions; dispatch rung: {report.dispatch_rung}"
