"""The HubSpot connector's read side for the reconciliation poller (changes, read, deletions)
against the sandbox HubSpot over real HTTP (live_server). Records are made through the sandbox's
API as the integration or as a person (X-Sandbox-Actor), or inserted in bulk into its tables
where a test needs thousands."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
import json

from django.conf import settings
from django.utils import timezone
import pytest
import requests

from delivery.connectors.base import ChangePage, PollError
from delivery.connectors.hubspot import HubSpotConnector
from delivery.session import DestinationSession, RateLimitWait
from sandbox.faults import faults_set
from sandbox.limits import settings_get
from sandbox.models import SandboxContact, SandboxRequestLog, SandboxSettings
from tests.factories import hubspot_destination

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ["email", "firstname", "phone"]


@pytest.fixture
def destination(sandbox_url):
    return hubspot_destination(base_url=sandbox_url)


def connector(destination, **session) -> HubSpotConnector:
    return HubSpotConnector(destination, DestinationSession(destination, **session))


def api(sandbox_url: str, method: str, path: str, body: dict | None = None, *, person: str = "") -> requests.Response:
    headers = {"Authorization": f"Bearer {settings.SANDBOX_HUBSPOT_TOKEN}"}
    if person:
        headers["X-Sandbox-Actor"] = f"person:{person}"
    answer = requests.request(method, sandbox_url + path, json=body, headers=headers, timeout=30)
    assert answer.status_code < 300, answer.text
    return answer


def create(sandbox_url: str, count: int, prefix: str = "c") -> list[str]:
    ids = []
    for start in range(0, count, 100):
        inputs = [{"properties": {"email": f"{prefix}{i}@example.com", "firstname": f"F{i}"}}
                  for i in range(start, min(start + 100, count))]
        ids += [r["id"] for r in api(sandbox_url, "POST", "/crm/v3/objects/contacts/batch/create",
                                     {"inputs": inputs}).json()["results"]]
    return ids


def poll(conn: HubSpotConnector, since: datetime | None, *, object: str = "primary",
         fields: list[str] = FIELDS) -> list[ChangePage]:
    pages, cursor = [], ""
    while True:
        pages.append(conn.changes(object=object, since=since, cursor=cursor, fields=fields))
        cursor = pages[-1].cursor
        if not cursor:
            return pages


def bulk_contacts(count: int, moment_of) -> None:
    """`count` contacts straight into the sandbox's table, the i-th modified at moment_of(i)."""
    rows = [SandboxContact(properties={"email": f"bulk{i}@example.com", "firstname": f"B{i}"},
                           email=f"bulk{i}@example.com", created_at=moment_of(i), updated_at=moment_of(i))
            for i in range(count)]
    SandboxContact.objects.bulk_create(rows, batch_size=2000)


# --- changes ----------------------------------------------------------------------------------


def test_a_poll_pages_through_every_change_oldest_first_with_the_requested_fields(sandbox_url, destination):
    ids = create(sandbox_url, 450)
    api(sandbox_url, "PATCH", f"/crm/v3/objects/contacts/{ids[0]}", {"properties": {"phone": "+44 20 7946 0000"}},
        person="rep")

    pages = poll(connector(destination), None)

    assert [len(p.changes) for p in pages] == [200, 200, 50]
    assert [p.calls for p in pages] == [1, 1, 1]
    changes = [c for p in pages for c in p.changes]
    assert sorted(c.crm_id for c in changes) == sorted(ids)
    times = [c.modified_at for c in changes]
    assert times == sorted(times) and all(t.tzinfo is not None for t in times)
    assert [p.watermark for p in pages] == [max(c.modified_at for c in p.changes) for p in pages]
    # The person's edit is the newest change: it comes last, with its value.
    assert changes[-1].crm_id == ids[0] and changes[-1].values["phone"] == "+44 20 7946 0000"
    first = next(c for c in changes if c.crm_id == ids[1])
    assert first.values == {"email": "c1@example.com", "firstname": "F1", "phone": ""}  # null reads as ""
    assert first.changed_at == dict.fromkeys(FIELDS, first.modified_at)
    assert first.external_id == "" and first.merged_ids == () and not first.archived


def test_a_poll_from_a_time_returns_only_what_changed_at_or_after_it(sandbox_url, destination):
    ids = create(sandbox_url, 5)
    conn = connector(destination)
    [page] = poll(conn, None)
    since = page.watermark + timedelta(milliseconds=1)
    api(sandbox_url, "PATCH", f"/crm/v3/objects/contacts/{ids[3]}", {"properties": {"firstname": "Edited"}},
        person="rep")

    [changed] = poll(conn, since)
    [again] = poll(conn, changed.watermark)  # GTE: the record at the watermark comes again

    assert [(c.crm_id, c.values["firstname"]) for c in changed.changes] == [(ids[3], "Edited")]
    assert changed.watermark > since
    assert [c.crm_id for c in again.changes] == [ids[3]]


def test_an_unchanged_poll_makes_one_call(sandbox_url, destination):
    create(sandbox_url, 3)
    conn = connector(destination)
    before = SandboxRequestLog.objects.filter(path__endswith="/search").count()

    pages = poll(conn, timezone.now() + timedelta(minutes=1))

    assert [(len(p.changes), p.cursor, p.watermark, p.calls) for p in pages] == [(0, "", None, 1)]
    assert SandboxRequestLog.objects.filter(path__endswith="/search").count() == before + 1


def test_12000_changed_contacts_are_all_read_across_the_10000_result_restart(sandbox_url, destination):
    # given: 12,000 contacts changed within a minute, three to a millisecond
    start = datetime(2026, 11, 30, 9, 0, tzinfo=dt_timezone.utc)
    bulk_contacts(12_000, lambda i: start + timedelta(milliseconds=i // 3))
    settings_get(crm="hubspot")
    SandboxSettings.objects.filter(crm="hubspot").update(rate_limit_max=100_000)

    # when
    pages = poll(connector(destination), start)

    # then: every contact, in 61 searches (60 pages and one restart re-reading the records
    # of the restart's millisecond), never a query past HubSpot's 10,000, and never a 429 from
    # the sandbox's five searches a second (the connector paces them)
    seen = {c.crm_id for p in pages for c in p.changes}
    assert seen == {str(pk) for pk in SandboxContact.objects.values_list("pk", flat=True)}
    assert len(pages) == 61 and sum(p.calls for p in pages) == 61
    cursors = [json.loads(p.cursor) for p in pages[:-1]]
    restarts = [c for c in cursors if c["after"] == 0]
    assert len(restarts) == 1 and restarts[0]["since"] > int(start.timestamp() * 1000)
    assert not SandboxRequestLog.objects.filter(crm="hubspot", status__gte=400).exists()
    assert pages[-1].watermark == start + timedelta(milliseconds=3999)


def test_more_than_10000_contacts_changed_in_one_millisecond_are_all_read(sandbox_url, destination):
    # given: a bulk import stamped 10,050 contacts with one time, then 10 more changed later
    moment = datetime(2026, 11, 30, 9, 0, tzinfo=dt_timezone.utc)
    bulk_contacts(10_060, lambda i: moment if i < 10_050 else moment + timedelta(seconds=1 + i - 10_050))
    SandboxSettings.objects.update_or_create(crm="hubspot", defaults={"rate_limit_max": 100_000})

    pages = poll(connector(destination), moment)

    seen = {c.crm_id for p in pages for c in p.changes}
    assert len(seen) == 10_060
    assert not SandboxRequestLog.objects.filter(crm="hubspot", status__gte=400).exists()


def test_companies_are_polled_on_hs_lastmodifieddate(sandbox_url, destination):
    answer = api(sandbox_url, "POST", "/crm/v3/objects/companies", {"properties": {"name": "Analytical Engines"}})
    search_bodies = []
    conn = connector(destination)
    conn.session.hooks["response"].append(lambda r, *a, **k: search_bodies.append(json.loads(r.request.body)))

    [page] = poll(conn, None, object="company", fields=["name", "domain"])

    assert [(c.crm_id, c.values) for c in page.changes] == [(answer.json()["id"], {"name": "Analytical Engines",
                                                                                    "domain": ""})]
    assert search_bodies[0]["sorts"] == [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}]
    assert search_bodies[0]["limit"] == 200


# --- read by ID, merges and deletes -------------------------------------------------------------


def test_reading_by_id_tells_a_persons_edit_from_ours_by_the_property_history(sandbox_url, destination):
    ours, theirs = create(sandbox_url, 2)
    api(sandbox_url, "PATCH", f"/crm/v3/objects/contacts/{ours}", {"properties": {"phone": "+1 555 0100"}})
    api(sandbox_url, "PATCH", f"/crm/v3/objects/contacts/{theirs}", {"properties": {"phone": "+1 555 0199"}},
        person="maria")

    changes = {c.crm_id: c for c in connector(destination).read(object="primary", ids=[ours, theirs],
                                                                 fields=["phone", "firstname"], history=True)}

    assert changes[ours].by_us is True
    assert changes[ours].changed_by["phone"].startswith("INTEGRATION")
    assert changes[theirs].by_us is False
    assert changes[theirs].changed_by == {"phone": "CRM_UI:maria", "firstname": changes[ours].changed_by["firstname"]}
    assert changes[theirs].changed_at["phone"] > changes[theirs].changed_at["firstname"]
    assert changes[theirs].values == {"phone": "+1 555 0199", "firstname": "F1"}


def test_a_merged_away_id_reads_as_its_survivor_and_a_deleted_one_as_archived(sandbox_url, destination):
    survivor, merged, deleted = create(sandbox_url, 3)
    api(sandbox_url, "POST", "/crm/v3/objects/contacts/merge", {"primaryObjectId": survivor, "objectIdToMerge": merged})
    api(sandbox_url, "DELETE", f"/crm/v3/objects/contacts/{deleted}")

    changes = connector(destination).read(object="primary", ids=[merged, deleted, "999999"], fields=FIELDS)

    by_id = {c.crm_id: c for c in changes}
    assert set(by_id) == {survivor, deleted, "999999"}
    assert merged in by_id[survivor].merged_ids and by_id[survivor].merged_into == ""
    assert by_id[survivor].values["email"] == "c0@example.com"
    assert by_id[deleted].archived and by_id["999999"].archived


def test_a_merge_moves_the_survivor_into_the_next_poll_with_the_merged_ids(sandbox_url, destination):
    survivor, merged = create(sandbox_url, 2)
    conn = connector(destination)
    [before] = poll(conn, None)
    api(sandbox_url, "POST", "/crm/v3/objects/contacts/merge", {"primaryObjectId": survivor, "objectIdToMerge": merged})

    [after] = poll(conn, before.watermark + timedelta(milliseconds=1))

    assert [(c.crm_id, c.merged_ids) for c in after.changes] == [(survivor, (merged,))]


def test_deletions_lists_the_contacts_archived_since_a_time(sandbox_url, destination):
    ids = create(sandbox_url, 4)
    api(sandbox_url, "DELETE", f"/crm/v3/objects/contacts/{ids[0]}")
    between = timezone.now()
    api(sandbox_url, "DELETE", f"/crm/v3/objects/contacts/{ids[2]}")
    conn = connector(destination)

    recent = conn.deletions(object="primary", since=between - timedelta(milliseconds=1), cursor="")
    every = conn.deletions(object="primary", since=None, cursor="")

    assert [c.crm_id for c in recent.changes] == [ids[2]] and recent.changes[0].archived
    assert sorted(c.crm_id for c in every.changes) == sorted([ids[0], ids[2]])
    assert recent.watermark == recent.changes[0].modified_at and recent.calls == 1 and recent.cursor == ""


def test_deletions_pages_through_the_archived_list(sandbox_url, destination):
    ids = create(sandbox_url, 105)
    SandboxContact.objects.filter(pk__in=ids).update(archived=True, archived_at=timezone.now())
    conn = connector(destination)

    first = conn.deletions(object="primary", since=None, cursor="")
    second = conn.deletions(object="primary", since=None, cursor=first.cursor)

    assert (len(first.changes), len(second.changes), second.cursor) == (100, 5, "")


# --- errors, budget, clock ----------------------------------------------------------------------


def test_a_refused_token_is_an_auth_error(sandbox_url):
    destination = hubspot_destination(base_url=sandbox_url, token="not-the-token")

    with pytest.raises(PollError) as refused:
        connector(destination).changes(object="primary", since=None, cursor="", fields=FIELDS)

    assert refused.value.auth and not refused.value.retryable


@pytest.mark.parametrize("fault", [{"error_rate": 1.0}, {"rate_limit_rate": 1.0}])
def test_server_errors_and_429s_are_retryable(sandbox_url, destination, fault):
    faults_set(crm="hubspot", **fault)

    with pytest.raises(PollError) as failed:
        connector(destination).changes(object="primary", since=None, cursor="", fields=FIELDS)

    assert failed.value.retryable and not failed.value.auth
    if "rate_limit_rate" in fault:
        assert "429" in str(failed.value) and failed.value.retry_after == 1.0


def test_a_lost_reply_is_retryable(sandbox_url, destination):
    faults_set(crm="hubspot", lost_reply_rate=1.0)

    with pytest.raises(PollError) as failed:
        connector(destination).read(object="primary", ids=["1"], fields=FIELDS)

    assert failed.value.retryable


def test_a_query_hubspot_refuses_is_not_retryable_and_carries_its_message(sandbox_url, destination):
    cursor = json.dumps({"since": 0, "after": 9_900})  # a cursor past the 10,000 cap

    with pytest.raises(PollError) as refused:
        connector(destination).changes(object="primary", since=None, cursor=cursor, fields=FIELDS)

    assert not refused.value.retryable and "10000" in str(refused.value)


def test_a_cursor_it_did_not_write_is_refused(destination):
    with pytest.raises(PollError, match="cursor"):
        connector(destination).changes(object="primary", since=None, cursor="garbage", fields=FIELDS)
    with pytest.raises(ValueError, match="object"):
        connector(destination).changes(object="deals", since=None, cursor="", fields=FIELDS)


def test_an_exhausted_budget_stops_the_poll_with_rate_limit_wait(sandbox_url, destination):
    destination.rate_limit_requests, destination.rate_limit_window_seconds = 1, 60
    destination.save()
    conn = connector(destination, max_wait=0)
    conn.changes(object="primary", since=None, cursor="", fields=FIELDS)

    with pytest.raises(RateLimitWait):
        conn.changes(object="primary", since=None, cursor="", fields=FIELDS)


@pytest.mark.parametrize("offset", [300, -300])
def test_the_crms_clock_offset_is_read_from_its_date_header(sandbox_url, destination, offset):
    settings_get(crm="hubspot")
    SandboxSettings.objects.filter(crm="hubspot").update(clock_offset_seconds=offset)
    create(sandbox_url, 1)

    [page] = poll(connector(destination), None)

    assert page.clock_offset_seconds == pytest.approx(offset, abs=1.5)
    # Modification times are the CRM's: the edit made now reads `offset` seconds from now.
    assert (page.watermark - timezone.now()).total_seconds() == pytest.approx(offset, abs=5)
