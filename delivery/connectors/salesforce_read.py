"""Reading Salesforce back for the reconciliation poller (docs/wire-contracts.md, "Reading changes back").

One SOQL query through `queryAll` (so deleted rows come too, `IsDeleted` true, and rows merged
away carry `MasterRecordId`) on `SystemModstamp`, which moves on every change including
system ones, ascending; Salesforce answers 2,000 rows at a time and names the next batch in
`nextRecordsUrl`, which is the cursor. `LastModifiedById` says whose change it was: the
integration user's own writes are echoes.

This module knows the wire format only. The connector (salesforce.py) hands it a `call` that
authenticates, goes through the destination's session and turns every failure into a PollError.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
import re
from typing import Any
from urllib.parse import quote

from django.utils import timezone

from delivery.connectors.base import ChangePage, CrmChange, PollError

SYSTEM_FIELDS = ("Id", "SystemModstamp", "LastModifiedById", "IsDeleted", "MasterRecordId")
READ_CHUNK = 100  # IDs per `Id IN (...)` query: 18 characters each keep the URL near 2,500 bytes
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")
RECORD_ID = re.compile(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?")
# A query's next batch: /services/data/vNN.N/query/<locator> (or queryAll/...).
NEXT_RECORDS = re.compile(r"/services/data/v\d+\.\d+/((?:query|queryAll)/[A-Za-z0-9-]+)")
QUERY_SAFE = "@',()*"  # what SOQL keeps readable in the URL (quotes, lists)


@dataclass(frozen=True)
class Answer:
    body: Any
    clock_offset: float | None  # the CRM's clock minus ours, from this answer's Date header


Call = Callable[[str], Answer]  # a GET below /services/data/vNN.N/, or PollError


class SalesforceReader:
    def __init__(self, call: Call, *, calls: Callable[[], int], user_id: Callable[[], str],
                 sobjects: dict[str, str], key: dict[str, str]) -> None:
        self.call = call
        self.calls = calls  # the session's call counter
        self.user_id = user_id  # the integration user's ID, "" when it cannot be learnt
        self.sobjects = sobjects  # "primary" -> Lead or Contact, "company" -> Account
        self.key = key  # object -> its upsert field, read along to name the lead
        self.offset: float | None = None

    def changes(self, *, object: str, since: datetime | None, cursor: str, fields: list[str]) -> ChangePage:
        sobject = self._sobject(object)
        before = self.calls()
        if cursor:
            path = _next_batch(cursor)
        else:
            # `>=` on the second: records changed at `since` come too (duplicates are harmless).
            where = f" WHERE SystemModstamp >= {soql_datetime(since)}" if since is not None else ""
            path = self._soql(f"SELECT {', '.join(self._columns(object, fields))} FROM {sobject}{where} "
                              "ORDER BY SystemModstamp ASC")
        body = self._get(path)
        changes = self._changes(body, object, fields)
        following = str(body.get("nextRecordsUrl") or "") if not body.get("done", True) else ""
        return ChangePage(changes, following, max((c.modified_at for c in changes), default=None),
                          self.calls() - before, self.offset)

    def read(self, *, object: str, ids: list[str], fields: list[str], history: bool = False) -> list[CrmChange]:
        """Salesforce keeps no per-field times a plain API client can read cheaply: `history`
        changes nothing, every field carries the record's SystemModstamp and LastModifiedById."""
        sobject = self._sobject(object)
        wanted = list(dict.fromkeys(str(i) for i in ids))
        bad = [i for i in wanted if not RECORD_ID.fullmatch(i)]
        if bad:
            raise ValueError(f"Not Salesforce record IDs: {', '.join(bad[:5])}")
        found: dict[str, CrmChange] = {}
        for start in range(0, len(wanted), READ_CHUNK):
            listed = ", ".join(f"'{i}'" for i in wanted[start:start + READ_CHUNK])
            body = self._get(self._soql(f"SELECT {', '.join(self._columns(object, fields))} FROM {sobject} "
                                        f"WHERE Id IN ({listed})"))
            while True:
                for change in self._changes(body, object, fields):
                    found[change.crm_id[:15]] = change
                if body.get("done", True) or not body.get("nextRecordsUrl"):
                    break
                body = self._get(_next_batch(str(body["nextRecordsUrl"])))
        now = timezone.now()
        # Gone even from the recycle bin (or never there).
        gone = [CrmChange(crm_id=i, modified_at=now, archived=True) for i in wanted if i[:15] not in found]
        return [*found.values(), *gone]

    def deletions(self, *, object: str, since: datetime | None, cursor: str) -> ChangePage:
        """Deleted rows come through `changes` (queryAll): nothing to read here."""
        self._sobject(object)
        return ChangePage([], "", None, 0, None)

    # --- shared ---------------------------------------------------------------------------

    def _sobject(self, object: str) -> str:
        try:
            return self.sobjects[object]
        except KeyError:
            raise ValueError(f"object must be one of {', '.join(self.sobjects)}, not {object!r}") from None

    def _columns(self, object: str, fields: list[str]) -> list[str]:
        bad = [name for name in fields if not FIELD_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"Not Salesforce field names: {', '.join(bad[:5])}")
        key = self.key.get(object, "")
        columns: dict[str, str] = {}  # lower-cased -> as given: SOQL refuses a field selected twice
        for name in (*SYSTEM_FIELDS, *fields, *([key] if key else [])):
            columns.setdefault(name.lower(), name)
        return list(columns.values())

    @staticmethod
    def _soql(soql: str) -> str:
        return "queryAll?q=" + quote(soql, safe=QUERY_SAFE)

    def _get(self, path: str) -> dict[str, Any]:
        answer = self.call(path)
        if answer.clock_offset is not None:
            self.offset = answer.clock_offset
        if not isinstance(answer.body, dict):
            raise PollError("Salesforce answered a query with a body that is not a JSON object.")
        return answer.body

    def _changes(self, body: dict[str, Any], object: str, fields: list[str]) -> list[CrmChange]:
        rows = [row for row in body.get("records") or [] if isinstance(row, dict) and row.get("Id")]
        ours = self.user_id() if rows else ""
        return [self._change(row, object, fields, ours) for row in rows]

    def _change(self, row: dict[str, Any], object: str, fields: list[str], ours: str) -> CrmChange:
        # Salesforce answers with each field's own spelling, whatever case the query used.
        values = {name.lower(): value for name, value in row.items() if name != "attributes"}
        modified = sf_datetime(values.get("systemmodstamp"))
        if modified is None:
            raise PollError(f"Salesforce returned {row.get('Id')} without a SystemModstamp.", retryable=False)
        by = str(values.get("lastmodifiedbyid") or "")
        key = self.key.get(object, "")
        return CrmChange(
            crm_id=str(row["Id"]), modified_at=modified,
            values={name: "" if values.get(name.lower()) is None else values[name.lower()] for name in fields},
            changed_at={name: modified for name in fields}, changed_by={name: by for name in fields},
            by_us=bool(ours and by) and by[:15] == ours[:15],  # 15- and 18-character forms name one user
            archived=bool(values.get("isdeleted")), merged_into=str(values.get("masterrecordid") or ""),
            external_id=str(values.get(key.lower()) or "") if key else "")


def _next_batch(cursor: str) -> str:
    match = NEXT_RECORDS.fullmatch(cursor)
    if not match:
        raise PollError(f"The Salesforce poll cursor {cursor[:100]!r} is not a nextRecordsUrl.", retryable=False)
    return match.group(1)


def soql_datetime(moment: datetime) -> str:
    """A SOQL datetime literal (unquoted, UTC), cut to the second."""
    if moment.tzinfo is None:
        raise ValueError("since must be an aware datetime")
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sf_datetime(value: Any) -> datetime | None:
    """Salesforce's `2026-11-30T10:00:00.000+0000`."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt_timezone.utc)
