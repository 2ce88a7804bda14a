"""Each kind's starter mapping turns what its provider really sends into a lead with an email,
a first and a last name, with no edit: posted through the real intake, signed or keyed as the
provider does it, then processed."""

import pytest

from crmsync.pipeline import submission_process
from ingestion.models import Submission
from mapping.starters import STARTERS, mapping_starter_create
from sandbox.meta.graph import meta_lead_create
from tests.mapping.payloads import PAGE_TOKEN, SAMPLES, django_headers, request_for, source_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("kind", sorted(SAMPLES))
def test_a_new_sources_starter_mapping_makes_a_lead_with_email_first_and_last_name(client, request, kind):
    # given a new source of this kind, with the starter mapping it gets when created
    sample = SAMPLES[kind]
    graph = f"{request.getfixturevalue('live_server').url}/sandbox/graph/v19.0" if sample.graph_lead else ""
    source, credential = source_for(kind, graph_base_url=graph)
    mapping_starter_create(source=source)
    if sample.graph_lead:
        meta_lead_create(leadgen_id=sample.leadgen_id, access_token=PAGE_TOKEN, field_data=sample.graph_lead)

    # when the provider sends a lead
    path, headers = request_for(source, sample, credential)
    answer = client.post(path, sample.body, content_type=sample.content_type, **django_headers(headers))
    assert answer.status_code == 202, answer.content
    submission = submission_process(submission_id=answer.json()["id"])

    # then it becomes a lead with the person's email and names
    assert submission.status == Submission.Status.PROCESSED, submission.reasons
    lead = submission.lead
    assert (lead.email, lead.first_name, lead.last_name) == (sample.email, sample.first_name, sample.last_name)


def test_every_source_kind_has_a_starter_mapping():
    assert set(STARTERS) == set(SAMPLES)
