from crmsync.pipeline import submission_process
from ingestion.models import Source, Submission
from leads.models import Lead
from tests.factories import submission


def submit(source: Source, **payload) -> Lead:
    """Store a submission as the intake would and process it; returns its lead."""
    processed = submission_process(submission_id=submission(source=source, payload=payload).pk)
    assert processed.status == Submission.Status.PROCESSED, processed.reasons
    return processed.lead
