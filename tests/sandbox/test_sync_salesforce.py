"""The sandbox Salesforce as a two-way sync poller sees it, over real HTTP: SystemModstamp and
LastModifiedById, SOQL with datetime filters, ORDER BY and paging, soft deletes and queryAll,
getUpdated/getDeleted, merges, the integration user, faults on reads."""

from datetime import datetime, timedelta, timezone

from django.conf import settings
import pytest
import requests

from sandbox.salesforce.soql import soql_datetime
from tests import sandbox_control as sandbox

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "Crmsync_External_Id__c"
FIELDS = "Id, Email, Phone, SystemModstamp, LastModifiedById, IsDeleted, MasterRecordId"


@pytest.fixture
def base_url(live_server) -> str:
    return live_server.url


@pytest.fixture
def token(base_url) -> str:
    return sandbox.salesforce_token(base_url)


def api(base_url: str, path: str) -> str:
    return f"{base_url}/services/data/{sandbox.SALESFORCE_VERSION}/{path}"


def get(base_url: str, token: str, path: str, **params) -> requests.Response:
    return requests.get(api(base_url, path), params=params, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def upsert_leads(base_url: str, token: str, count: int, *, prefix: str = "lead") -> list[str]:
    """Leads pushed by the integration, 200 per sObject Collection call."""
    ids = []
    for start in range(0, count, 200):
        records = [{"attributes": {"type": "Lead"}, KEY: f"{prefix}-{i}", "LastName": f"Person {i}",
                    "Company": "Analytical Engines", "Email": f"{prefix}{i}@example.com"}
                   for i in range(start, min(count, start + 200))]
        answer = requests.patch(api(base_url, f"composite/sobjects/Lead/{KEY}"), json={"records": records},
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert answer.status_code == 200, answer.text
        ids += [r["id"] for r in answer.json()]
    return ids


def soql_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# --- who changed what -------------------------------------------------------------------------

def test_a_person_edit_moves_systemmodstamp_and_names_the_person_not_the_integration_user(base_url, token):
    [lead_id] = upsert_leads(base_url, token, 1)
    before = sandbox.salesforce_query(base_url, f"SELECT {FIELDS} FROM Lead")["records"][0]

    sandbox.salesforce_person_edit(base_url, "Lead", lead_id, {"Phone": "+442"}, person="ann")
    sandbox.salesforce_person_edit(base_url, "Lead", lead_id, {"Phone": "+443"}, person="ann")
    after = sandbox.salesforce_query(base_url, f"SELECT {FIELDS} FROM Lead")["records"][0]

    me = requests.get(f"{base_url}/services/oauth2/userinfo", headers={"Authorization": f"Bearer {token}"},
                      timeout=30).json()
    grant = requests.post(f"{base_url}/services/oauth2/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": settings.SANDBOX_SALESFORCE_CLIENT_ID,
        "client_secret": settings.SANDBOX_SALESFORCE_CLIENT_SECRET}).json()
    assert before["LastModifiedById"] == me["user_id"] and grant["id"].endswith("/" + me["user_id"])
    assert after["LastModifiedById"] != me["user_id"]
    assert after["LastModifiedById"].startswith("005") and len(after["LastModifiedById"]) == 18
    assert soql_datetime(after["SystemModstamp"]) >= soql_datetime(before["SystemModstamp"])
    assert after["Phone"] == "+443" and after["IsDeleted"] is False and after["MasterRecordId"] is None
    # the same person is the same user every time; another person is another user
    sandbox.salesforce_person_edit(base_url, "Lead", lead_id, {"Phone": "+444"}, person="bob")
    bob = sandbox.salesforce_query(base_url, "SELECT LastModifiedById FROM Lead")["records"][0]["LastModifiedById"]
    assert bob not in (after["LastModifiedById"], me["user_id"])


def test_userinfo_refuses_a_session_it_never_issued(base_url):
    answer = requests.get(f"{base_url}/services/oauth2/userinfo", headers={"Authorization": "Bearer nope"}, timeout=30)
    assert answer.status_code == 403


# --- SOQL for polls ---------------------------------------------------------------------------

def test_soql_filters_on_systemmodstamp_orders_limits_and_pages_with_next_records_url(base_url, token):
    ids = upsert_leads(base_url, token, 450)
    rows = sandbox.salesforce_query(base_url, "SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp ASC")
    first_stamp = soql_datetime(rows["records"][0]["SystemModstamp"])
    since = soql_time(first_stamp - timedelta(milliseconds=1))

    # a page of 200 (batchSize), then the rest through nextRecordsUrl
    query = f"SELECT Id, SystemModstamp FROM Lead WHERE SystemModstamp > {since} ORDER BY SystemModstamp ASC, Id"
    headers = {"Authorization": f"Bearer {token}", "Sforce-Query-Options": "batchSize=200"}
    page = requests.get(api(base_url, "queryAll"), params={"q": query}, headers=headers, timeout=30).json()
    seen = [r["Id"] for r in page["records"]]
    while not page["done"]:
        page = requests.get(f"{base_url}{page['nextRecordsUrl']}", headers=headers, timeout=30).json()
        seen += [r["Id"] for r in page["records"]]

    assert page["totalSize"] == 450 and sorted(seen) == sorted(ids) and len(seen) == 450
    stamps = [soql_datetime(r["SystemModstamp"]) for r in sandbox.salesforce_query(base_url, query)["records"]]
    assert stamps == sorted(stamps)
    limited = sandbox.salesforce_query(base_url, f"SELECT Id, Email FROM Lead WHERE SystemModstamp >= {since} "
                                                 f"AND Email != 'LEAD99@example.com' ORDER BY Email DESC LIMIT 3")
    assert [r["Email"] for r in limited["records"]] == ["lead9@example.com", "lead98@example.com", "lead97@example.com"]
    later = sandbox.salesforce_query(base_url, f"SELECT Id FROM Lead WHERE SystemModstamp > "
                                               f"{soql_time(datetime.now(timezone.utc) + timedelta(hours=1))}")
    assert later["totalSize"] == 0 and later["done"] is True


def test_a_quoted_datetime_or_an_unknown_operator_is_refused_as_salesforce_does(base_url, token):
    quoted = get(base_url, token, "query", q="SELECT Id FROM Lead WHERE SystemModstamp > '2026-11-30T10:00:00Z'")
    garbled = get(base_url, token, "query", q="SELECT Id FROM Lead WHERE SystemModstamp >> 2026-11-30T10:00:00Z")
    assert quoted.status_code == 400 and quoted.json()[0]["errorCode"] == "INVALID_FIELD"
    assert garbled.status_code == 400 and garbled.json()[0]["errorCode"] == "MALFORMED_QUERY"


# --- deletes and merges -----------------------------------------------------------------------

def test_a_deleted_lead_leaves_query_shows_in_query_all_and_in_get_deleted_and_frees_its_key(base_url, token):
    [lead_id, other_id] = upsert_leads(base_url, token, 2)
    start = soql_time(datetime.now(timezone.utc) - timedelta(minutes=5))

    sandbox.salesforce_delete(base_url, "Lead", lead_id, person="ann")

    assert [r["Id"] for r in sandbox.salesforce_query(base_url, f"SELECT {FIELDS} FROM Lead")["records"]] == [other_id]
    every = {r["Id"]: r for r in sandbox.salesforce_query(base_url, f"SELECT {FIELDS} FROM Lead", all_rows=True)["records"]}
    assert every[lead_id]["IsDeleted"] is True and every[other_id]["IsDeleted"] is False
    assert soql_datetime(every[lead_id]["SystemModstamp"]) >= soql_datetime(every[other_id]["SystemModstamp"])
    end = soql_time(datetime.now(timezone.utc) + timedelta(minutes=1))
    deleted = get(base_url, token, "sobjects/Lead/deleted/", start=start, end=end).json()
    updated = get(base_url, token, "sobjects/Lead/updated/", start=start, end=end).json()
    assert [r["id"] for r in deleted["deletedRecords"]] == [lead_id] and updated["ids"] == [other_id]
    assert get(base_url, token, f"sobjects/Lead/{lead_id}").json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    # a push keyed on the deleted Lead's external ID makes a new Lead (the engine must hold it)
    [again] = upsert_leads(base_url, token, 1)
    assert again not in (lead_id, other_id)


def test_get_deleted_refuses_a_window_that_runs_backwards_or_starts_over_30_days_ago(base_url, token):
    now = datetime.now(timezone.utc)
    backwards = get(base_url, token, "sobjects/Lead/deleted/", start=soql_time(now), end=soql_time(now - timedelta(hours=1)))
    too_old = get(base_url, token, "sobjects/Lead/updated/", start=soql_time(now - timedelta(days=31)), end=soql_time(now))
    missing = get(base_url, token, "sobjects/Lead/updated/")
    assert [a.status_code for a in (backwards, too_old, missing)] == [400, 400, 400]
    assert backwards.json()[0]["errorCode"] == too_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"


def test_a_merge_deletes_the_losers_with_their_master_and_moves_the_masters_stamp(base_url, token):
    master, loser, other = upsert_leads(base_url, token, 3)
    sandbox.salesforce_person_edit(base_url, "Lead", loser, {"Phone": "+441"}, person="ann")

    sandbox.salesforce_merge(base_url, master, [loser], person="ann")

    every = {r["Id"]: r for r in sandbox.salesforce_query(base_url, f"SELECT {FIELDS} FROM Lead", all_rows=True)["records"]}
    assert (every[loser]["IsDeleted"], every[loser]["MasterRecordId"]) == (True, master)
    assert every[master]["IsDeleted"] is False and every[master]["Phone"] == "+441"
    assert soql_datetime(every[master]["SystemModstamp"]) >= soql_datetime(every[other]["SystemModstamp"])
    with pytest.raises(requests.HTTPError):
        sandbox.salesforce_merge(base_url, master, [loser])  # already merged away


def test_a_record_is_read_updated_and_deleted_by_its_id(base_url, token):
    lead_id = sandbox.salesforce_create(base_url, "Lead", {"LastName": "Lovelace", "Company": "AE"}, person="ann")
    headers = {"Authorization": f"Bearer {token}"}

    read = get(base_url, token, f"sobjects/Lead/{lead_id}", fields="LastName,LastModifiedById,IsDeleted").json()
    bad = requests.patch(api(base_url, f"sobjects/Lead/{lead_id}"), json={"Email": "not an email"}, headers=headers,
                         timeout=30)
    gone = requests.delete(api(base_url, f"sobjects/Lead/{lead_id}"), headers=headers, timeout=30)
    twice = requests.delete(api(base_url, f"sobjects/Lead/{lead_id}"), headers=headers, timeout=30)

    assert read["LastName"] == "Lovelace" and read["IsDeleted"] is False and read["LastModifiedById"].startswith("005")
    assert bad.status_code == 400 and bad.json()[0]["errorCode"] == "INVALID_EMAIL_ADDRESS"
    assert gone.status_code == 204 and twice.status_code == 404


# --- faults on reads --------------------------------------------------------------------------

def test_faults_apply_to_queries(base_url, token):
    upsert_leads(base_url, token, 1)
    sandbox.faults_set(base_url, "salesforce", error_rate=1.0)
    refused = get(base_url, token, "queryAll", q="SELECT Id FROM Lead")
    sandbox.faults_reset(base_url, "salesforce")
    assert refused.status_code in (500, 502, 503)
    assert get(base_url, token, "queryAll", q="SELECT Id FROM Lead").status_code == 200
