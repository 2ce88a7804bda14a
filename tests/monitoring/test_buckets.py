"""The hourly counts are kept where the work happens: at the intake (refusals, spam), when a
worker claims a submission (accepted), when the pipeline maps it (processed or rejected,
consent, new leads and their owners), and when the CRM answers a push (outcome, latency)."""

from django.db.models import Sum
import pytest

from audit import buckets
from audit.models import HourlyCount
from crmsync import pipeline
from delivery import services as delivery
from ingestion.services import submissions_claim
from tests.factories import EMAIL_RULE, hubspot_destination, source_with_mapping

pytestmark = pytest.mark.django_db(transaction=True)

CONSENT_RULE = {"source_keys": "newsletter", "target": "marketing_opt_in", "transforms": [{"op": "boolean"}]}


def counted(metric: str, subject_id: int = 0) -> dict[str, int]:
    rows = HourlyCount.objects.filter(metric=metric, subject_id=subject_id).values_list("outcome").annotate(n=Sum("count"))
    return dict(rows)


def test_each_submission_is_counted_once_for_what_became_of_it(client):
    # given a web form whose mapping reads the email and the newsletter tick box
    source = source_with_mapping(slug="website", rules=(EMAIL_RULE, CONSENT_RULE))
    source.allowed_origins = "https://www.example.com"
    source.save()

    # when visitors post: two leads (one with consent), one without an email, a bot, a stranger's site
    for fields in ({"email": "ada@example.com", "newsletter": "yes"}, {"email": "bob@example.com"}, {"name": "no email"}):
        assert client.post(source.intake_path, fields).status_code == 202
    assert client.post(source.intake_path, {"email": "bot@example.com", "_gotcha": "x"}).status_code == 202
    assert client.post(source.intake_path, {"email": "eve@example.com"}, HTTP_ORIGIN="https://evil.example").status_code == 403
    # and the workers claim them (a lost message makes them claim the same rows again) and map them
    claimed = submissions_claim(requeue_after_seconds=60)
    assert submissions_claim(requeue_after_seconds=0) == claimed
    for submission_id in claimed:
        pipeline.submission_process(submission_id=submission_id)

    # then each outcome is counted once, in this hour
    assert counted(buckets.INTAKE, source.pk) == {"accepted": 3, "processed": 2, "rejected": 1, "spam": 1, "bad_origin": 1}
    assert counted(buckets.CONSENT, source.pk) == {"given": 1, "missing": 1}
    assert counted(buckets.NEW_LEAD) == {"unowned": 2}
    assert HourlyCount.objects.filter(metric=buckets.INTAKE, subject_id=source.pk).values("hour").distinct().count() == 1


def test_each_push_outcome_and_its_end_to_end_latency_are_counted(live_server, client):
    destination = hubspot_destination(base_url=f"{live_server.url}/sandbox/hubspot")
    source = source_with_mapping(slug="website")
    client.post(source.intake_path, {"email": "ada@example.com"})
    [submission_id] = submissions_claim(requeue_after_seconds=60)

    pipeline.submission_process(submission_id=submission_id)
    delivery.push_dispatch_due()

    assert counted(buckets.PUSH, destination.pk) == {"create": 1}
    [(label, n)] = counted(buckets.LATENCY, destination.pk).items()
    assert n == 1 and label in {f"le_{bound}" for bound in buckets.LATENCY_BOUNDS[:3]}  # seconds, not minutes


def test_latency_percentiles_are_read_from_the_histogram():
    counts = {"le_1": 50, "le_2": 40, "le_5": 10}

    assert buckets.latency_quantile(counts, 0.5) == 1.0
    assert buckets.latency_quantile(counts, 0.95) == pytest.approx(3.5)
    assert buckets.latency_quantile({}, 0.5) is None
    assert buckets.latency_label(0.2) == "le_1" and buckets.latency_label(10 ** 6) == "le_inf"
