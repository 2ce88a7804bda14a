"""django-q2 entry points for the mapping stage."""

from mapping import services


def submission_process(submission_id: int) -> str:
    return services.submission_process(submission_id=submission_id).status


def submissions_process(submission_ids: list[int]) -> str:
    statuses = [services.submission_process(submission_id=pk).status for pk in submission_ids]
    return ", ".join(statuses)
