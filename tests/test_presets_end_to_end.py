"""Every kind of source, out of the box: a source of each preset kind with the starter mapping it
gets when created, its provider's payload sent signed (or keyed, or tokened) the provider's way
to a real web server, a real worker mapping and pushing it, and the sandbox HubSpot holding a
contact with the person's email, first and last name. One stack for all kinds, for speed."""

from django.conf import settings
import pytest
import requests

from ingestion.models import Submission
from mapping.starters import mapping_starter_create
from sandbox.meta.graph import meta_lead_create
from tests.factories import hubspot_destination
from tests.mapping.payloads import PAGE_TOKEN, SAMPLES, request_for, source_for
from tests.stack import wait_for

pytestmark = pytest.mark.e2e

AUTH = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}


@pytest.fixture(autouse=True)
def show_process_logs_on_failure(request, stack):
    yield
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(stack.logs())


def sandbox_people(stack) -> dict[str, tuple[str, str]]:
    """Email -> (first name, last name) of every contact the sandbox HubSpot lists."""
    people, after = {}, None
    while True:
        params = {"limit": 100, "properties": "email,firstname,lastname", **({"after": after} if after else {})}
        page = requests.get(f"{stack.sandbox_url}/crm/v3/objects/contacts", params=params, headers=AUTH, timeout=10).json()
        people.update({c["properties"]["email"]: (c["properties"].get("firstname"), c["properties"].get("lastname"))
                       for c in page["results"]})
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            return people


def test_every_preset_kind_reaches_the_crm_as_a_contact_with_email_first_and_last_name(stack):
    # given a HubSpot destination and one source of each kind, each with its starter mapping
    hubspot_destination(base_url=stack.sandbox_url)
    sources = {}
    for kind, sample in SAMPLES.items():
        graph = f"{stack.base_url}/sandbox/graph/v19.0" if sample.graph_lead else ""
        source, credential = source_for(kind, graph_base_url=graph)
        mapping_starter_create(source=source)
        sources[kind] = (source, credential)
        if sample.graph_lead:
            meta_lead_create(leadgen_id=sample.leadgen_id, access_token=PAGE_TOKEN, field_data=sample.graph_lead)
    stack.start_web()
    stack.start_worker()

    # when each provider sends its lead, signed its own way
    for kind, sample in SAMPLES.items():
        source, credential = sources[kind]
        path, headers = request_for(source, sample, credential)
        answer = requests.post(f"{stack.base_url}{path}", data=sample.body, headers=headers, timeout=10)
        assert answer.status_code == 202, (kind, answer.text)

    # then every one becomes a contact holding the person's email and names
    expected = {sample.email: (sample.first_name, sample.last_name) for sample in SAMPLES.values()}
    wait_for(lambda: Submission.objects.exclude(status=Submission.Status.RECEIVED).count() == len(SAMPLES),
             timeout=60, what="every submission to be mapped")
    rejected = list(Submission.objects.filter(status=Submission.Status.REJECTED).values_list("source__kind", "reasons"))
    assert rejected == []
    wait_for(lambda: len(sandbox_people(stack)) >= len(expected), timeout=60,
             what="a contact per source kind in the sandbox CRM")
    assert sandbox_people(stack) == expected
