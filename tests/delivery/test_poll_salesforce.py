"""The Salesforce connector's read side for the reconciliation poller (changes through queryAll
on SystemModstamp, read by Id) against the sandbox org over real HTTP (live_server). Records are
made through its REST API as the integration or as a person (X-Sandbox-Actor), or inserted in
bulk into its table where a test needs thousands."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
import pytest
import requests

from delivery.connectors.base import ChangePage, PollError
from delivery.connectors.salesforce import SalesforceConnector
from delivery.models import Destination
from delivery.session import DestinationSession, RateLimitWait
from sandbox.faults import faults_set
from sandbox.models import SandboxRequestLog, SandboxSalesforceRecord, SandboxSettings
from sandbox.salesforce.oauth import SALESFORCE_USER_ID
from sandbox.salesforce.schema import org_settings

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "Crmsync_External_Id__c"
FIELDS = ["Email", "LastName", "Phone"]
VERSION = "62.0"


@pytest.fixture
def sandbox_url(live_server) -> str:
    return live_server.url


def salesforce_destination(base_url: str, *, secret: str | None = None, **fields) -> Destination:
    destination = Destination(name="Salesforce", kind=Destination.Kind.SALESFORCE, base_url=base_url,
                              auth_method=Destination.Auth.CLIENT_CREDENTIALS, upsert_property=KEY,
                              company_upsert_property="Crmsync_Domain__c", api_version=VERSION,
                              **{"object_model": Destination.ObjectModel.LEAD, **fields})
    destination.set_credentials({"client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
                                 "client_secret": secret or settings.SANDBOX_SALESFORCE_CLIENT_SECRET})
    destination.save()
    return destination


@pytest.fixture
def destination(sandbox_url) -> Destination:
    return salesforce_destination(sandbox_url)


def connector(destination: Destination, **session) -> SalesforceConnector:
    return SalesforceConnector(destination, DestinationSession(destination, **session))


class Org:
    """The sandbox org's REST API, as a person or another app would call it."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.token = requests.post(f"{base}/services/oauth2/token", timeout=30, data={
            "grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
            "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET}).json()["access_token"]

    def call(self, method: str, path: str, body=None, *, person: str = "") -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        if person:
            headers["X-Sandbox-Actor"] = f"person:{person}"
        answer = requests.request(method, f"{self.base}/services/data/v{VERSION}/{path}", json=body, headers=headers,
                                  timeout=30)
        assert answer.status_code < 300, answer.text
        return answer

    def leads(self, count: int, *, person: str = "", prefix: str = "l") -> list[str]:
        records = [{"attributes": {"type": "Lead"}, KEY: f"{prefix}{i}", "LastName": f"N{i}", "Company": "Engines",
                    "Email": f"{prefix}{i}@example.com"} for i in range(count)]
        answer = self.call("PATCH", f"composite/sobjects/Lead/{KEY}", {"allOrNone": True, "records": records},
                           person=person)
        return [r["id"] for r in answer.json()]

    def update(self, lead_id: str, fields: dict, *, person: str = "") -> None:
        self.call("PATCH", "composite/sobjects", {"allOrNone": True,
                                                  "records": [{"attributes": {"type": "Lead"}, "Id": lead_id, **fields}]},
                  person=person)


@pytest.fixture
def org(sandbox_url) -> Org:
    return Org(sandbox_url)


def poll(conn: SalesforceConnector, since: datetime | None, *, object: str = "primary",
         fields: list[str] = FIELDS) -> list[ChangePage]:
    pages, cursor = [], ""
    while True:
        pages.append(conn.changes(object=object, since=since, cursor=cursor, fields=fields))
        cursor = pages[-1].cursor
        if not cursor:
            return pages


def queries() -> int:
    return SandboxRequestLog.objects.filter(crm="salesforce", path__contains="/query").count()


# --- changes ----------------------------------------------------------------------------------


def test_a_poll_reads_every_lead_oldest_first_in_batches_following_next_records_url(destination):
    # given: 4,100 Leads, straight into the org's table, one a second apart
    start = datetime(2026, 11, 30, 9, 0, tzinfo=dt_timezone.utc)
    org_settings()
    SandboxSalesforceRecord.objects.bulk_create([
        SandboxSalesforceRecord(id=f"00Q5g{i:010d}AAA", sobject="Lead",
                                fields={"LastName": f"N{i}", "Company": "Engines", "Email": f"bulk{i}@example.com"},
                                created_at=start, updated_at=start + timedelta(seconds=i),
                                system_modstamp=start + timedelta(seconds=i), last_modified_by_id=SALESFORCE_USER_ID)
        for i in range(4_100)], batch_size=1000)
    conn = connector(destination)

    # when
    pages = poll(conn, start)

    # then: three queries for three batches, each page's watermark its newest change
    assert [len(p.changes) for p in pages] == [2000, 2000, 100]
    assert queries() == 3 and sum(p.calls for p in pages) == conn.session.calls
    assert all("/query" in p.cursor for p in pages[:-1]) and pages[-1].cursor == ""
    changes = [c for p in pages for c in p.changes]
    assert len({c.crm_id for c in changes}) == 4_100
    assert [c.modified_at for c in changes] == [start + timedelta(seconds=i) for i in range(4_100)]
    assert pages[0].watermark == start + timedelta(seconds=1999)
    assert changes[7].values == {"Email": "bulk7@example.com", "LastName": "N7", "Phone": ""}


def test_a_poll_from_a_time_returns_what_changed_since_and_tells_our_writes_from_a_persons(destination, org):
    ours, theirs, untouched = org.leads(3)
    SandboxSalesforceRecord.objects.update(system_modstamp=timezone.now() - timedelta(hours=1))
    since = timezone.now() - timedelta(seconds=1)
    org.update(theirs, {"Phone": "+1 555 0199"}, person="maria")
    org.update(ours, {"Phone": "+1 555 0100"})

    pages = poll(connector(destination), since)

    changes = {c.crm_id: c for p in pages for c in p.changes}
    assert set(changes) == {ours, theirs}
    assert changes[ours].by_us and changes[ours].changed_by == dict.fromkeys(FIELDS, SALESFORCE_USER_ID)
    assert not changes[theirs].by_us
    assert changes[theirs].values["Phone"] == "+1 555 0199"
    person = changes[theirs].changed_by["Phone"]
    assert person.startswith("005") and person != SALESFORCE_USER_ID
    assert changes[ours].external_id == "l0"
    assert changes[theirs].changed_at == dict.fromkeys(FIELDS, changes[theirs].modified_at)


def test_an_unchanged_poll_makes_one_call(destination, org):
    org.leads(3)
    conn = connector(destination)
    poll(conn, None)  # fetches the token
    before = conn.session.calls

    pages = poll(conn, timezone.now() + timedelta(minutes=1))

    assert [(len(p.changes), p.cursor, p.watermark, p.calls) for p in pages] == [(0, "", None, 1)]
    assert conn.session.calls == before + 1


def test_the_integration_user_is_asked_once_when_no_token_answer_named_it(destination, org):
    ours = org.leads(1)[0]
    connector(destination).test_connection()  # the token answer names the user; then it is forgotten
    cache.clear()
    first, second = connector(destination), connector(destination)

    [page] = poll(first, None)
    [again] = poll(second, None)

    assert [c.by_us for c in page.changes + again.changes] == [True, True] and page.changes[0].crm_id == ours
    assert (page.calls, again.calls) == (2, 1)  # the query and /services/oauth2/userinfo, then the query alone


def test_deleted_leads_come_through_query_all_as_archived(destination, org):
    kept, deleted = org.leads(2)
    org.call("DELETE", f"sobjects/Lead/{deleted}")

    changes = {c.crm_id: c for p in poll(connector(destination), None) for c in p.changes}

    assert changes[deleted].archived and not changes[kept].archived
    assert connector(destination).deletions(object="primary", since=None, cursor="").changes == []


def test_leads_merged_away_carry_their_master(destination, org, sandbox_url):
    master, loser = org.leads(2)
    answer = requests.post(f"{sandbox_url}/sandbox/_control/salesforce/merge", timeout=30,
                           json={"sobject": "Lead", "master_id": master, "merged_ids": [loser]})
    assert answer.status_code < 300, answer.text

    changes = {c.crm_id: c for p in poll(connector(destination), None) for c in p.changes}

    assert changes[loser].archived and changes[loser].merged_into == master
    assert changes[master].merged_into == "" and not changes[master].archived


def test_contacts_and_accounts_are_read_from_their_objects(sandbox_url, org):
    destination = salesforce_destination(sandbox_url, object_model=Destination.ObjectModel.CONTACT_ACCOUNT)
    org.leads(1)  # a Lead is not a Contact
    account = org.call("POST", "sobjects/Account", {"Name": "Analytical Engines"}).json()["id"]
    conn = connector(destination)

    assert poll(conn, None, fields=["Email"])[0].changes == []
    [page] = poll(conn, None, object="company", fields=["Name"])
    assert [(c.crm_id, c.values) for c in page.changes] == [(account, {"Name": "Analytical Engines"})]


# --- read by Id ---------------------------------------------------------------------------------


def test_reading_by_id_returns_live_deleted_and_missing_records(destination, org):
    live, deleted = org.leads(2)
    org.call("DELETE", f"sobjects/Lead/{deleted}")
    missing = "00Q5g00000ZZZZZZZZ"

    changes = {c.crm_id: c for c in connector(destination).read(object="primary", ids=[live, deleted, missing],
                                                                 fields=FIELDS)}

    assert changes[live].values["Email"] == "l0@example.com" and not changes[live].archived
    assert changes[deleted].archived and changes[missing].archived
    assert changes[live].by_us


def test_bad_ids_and_field_names_are_refused_before_any_call(destination):
    conn = connector(destination)
    with pytest.raises(ValueError, match="record IDs"):
        conn.read(object="primary", ids=["x' OR Name != '"], fields=FIELDS)
    with pytest.raises(ValueError, match="field names"):
        conn.changes(object="primary", since=None, cursor="", fields=["Email FROM Lead --"])
    with pytest.raises(PollError, match="nextRecordsUrl"):
        conn.changes(object="primary", since=None, cursor="https://elsewhere.example/x", fields=FIELDS)
    assert conn.session.calls == 0


# --- errors, budget, clock ----------------------------------------------------------------------


def test_refused_credentials_are_an_auth_error(sandbox_url):
    destination = salesforce_destination(sandbox_url, secret="wrong")

    with pytest.raises(PollError) as refused:
        connector(destination).changes(object="primary", since=None, cursor="", fields=FIELDS)

    assert refused.value.auth and not refused.value.retryable


@pytest.mark.parametrize("fault", [{"error_rate": 1.0}, {"rate_limit_rate": 1.0}, {"lost_reply_rate": 1.0}])
def test_server_errors_the_api_allocation_and_lost_replies_are_retryable(destination, fault):
    faults_set(crm="salesforce", **fault)

    with pytest.raises(PollError) as failed:
        connector(destination).changes(object="primary", since=None, cursor="", fields=FIELDS)

    assert failed.value.retryable and not failed.value.auth


def test_a_query_salesforce_refuses_is_not_retryable_and_carries_its_message(destination):
    with pytest.raises(PollError) as refused:
        connector(destination).changes(object="primary", since=None, cursor="", fields=["No_Such_Field__c"])

    assert not refused.value.retryable and not refused.value.auth
    assert "No_Such_Field__c" in str(refused.value)


def test_an_exhausted_budget_stops_the_poll_with_rate_limit_wait(destination):
    destination.rate_limit_requests, destination.rate_limit_window_seconds = 2, 60
    destination.save()
    conn = connector(destination, max_wait=0)
    conn.changes(object="primary", since=None, cursor="", fields=FIELDS)  # the token and one query

    with pytest.raises(RateLimitWait):
        conn.changes(object="primary", since=None, cursor="", fields=FIELDS)


@pytest.mark.parametrize("offset", [300, -300])
def test_the_crms_clock_offset_is_read_from_its_date_header(destination, org, offset):
    org_settings()
    SandboxSettings.objects.filter(crm="salesforce").update(clock_offset_seconds=offset)
    org.leads(1)

    [page] = poll(connector(destination), None)

    assert page.clock_offset_seconds == pytest.approx(offset, abs=1.5)
    assert (page.watermark - timezone.now()).total_seconds() == pytest.approx(offset, abs=5)
