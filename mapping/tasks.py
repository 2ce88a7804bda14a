"""Old task paths: messages queued before the pipeline moved to `crmsync.tasks` still name these.
The import is inside the functions, and listed in pyproject's import-linter contract, because
it is the one place a stage points at the pipeline: a django-q2 message names its function by
its dotted path, so the path must keep working until such messages are gone."""


def submissions_process(submission_ids: list[int]) -> str:
    from crmsync.tasks import submissions_process  # a task path alias, see the module docstring

    return submissions_process(submission_ids)


def submission_process(submission_id: int) -> str:
    from crmsync.tasks import submission_process  # a task path alias, see the module docstring

    return submission_process(submission_id)
