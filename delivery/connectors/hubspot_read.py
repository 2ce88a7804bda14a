"""Reading HubSpot back for the reconciliation poller (docs/wire-contracts.md, "Reading changes back").

HubSpot has no change feed for plain API clients, so changes are found by search: one filter
`lastmodifieddate GTE <ms>` (companies: `hs_lastmodifieddate`), sorted ascending on it, 200 a
page, `after` paging. One query reaches at most 10,000 results (an `after` past that is a 400),
so before the cursor would pass it the next page restarts the query from the last modification
time seen. Records sharing that time are read again; the caller's comparison is idempotent.

Search is limited to about five requests a second per account on top of the ten-second budget:
each process spaces its search calls per destination (SEARCH_INTERVAL), and a 429 that still
comes is a retryable PollError.

This module knows the wire format only. The connector (hubspot.py) hands it a `call` that
authenticates, goes through the destination's session and turns every failure into a PollError.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
import json
import threading
import time
from typing import Any
from urllib.parse import quote

from django.utils import timezone

from core import outbound
from delivery.connectors.base import ChangePage, CrmChange, PollError
from delivery.connectors.clock import clock_offset

SEARCH_LIMIT = 200  # HubSpot's most results per search page
SEARCH_CAP = 10_000  # and per query: `after` + `limit` must stay within it
BATCH_READ = 100
BATCH_READ_WITH_HISTORY = 50  # HubSpot halves the batch when propertiesWithHistory is asked
ARCHIVED_PAGE = 100
# Seconds between two search calls of one destination from this process: HubSpot allows five a
# second per account, and the sandbox counts them in fixed one-second windows; a little more
# than 0.2 s keeps a request that arrives early from making a sixth.
SEARCH_INTERVAL = 0.22
MERGED = "hs_merged_object_ids"
# object -> (object type in the URL, the modification-date property search filters and sorts on)
OBJECTS = {"primary": ("contacts", "lastmodifieddate"), "company": ("companies", "hs_lastmodifieddate")}

Call = Callable[[str, str, Any], outbound.Response]  # (method, path, JSON body) -> 200/207 answer, or PollError

_pace_lock = threading.Lock()
_next_search: dict[str, float] = {}


@dataclass(frozen=True)
class _Cursor:
    """Where a poll stands. `since` is the query's GTE bound (ms epoch, None: no bound). `tie`
    is set when 10,000 records share the time `since`: they are then read in ID order past
    this ID, where the 10,000 cap cannot stop them."""

    since: int | None
    after: int = 0
    tie: str | None = None

    def dump(self) -> str:
        return json.dumps({"since": self.since, "after": self.after, **({"tie": self.tie} if self.tie is not None else {})})

    @classmethod
    def load(cls, text: str, since: datetime | None) -> "_Cursor":
        if since is not None and since.tzinfo is None:
            raise ValueError("since must be an aware datetime")
        if not text:
            return cls(_ms(since) if since is not None else None)
        try:
            raw = json.loads(text)
            cursor = cls(raw["since"], int(raw.get("after", 0)), raw.get("tie"))
            if not (cursor.since is None or isinstance(cursor.since, int)) or cursor.after < 0 \
                    or not (cursor.tie is None or (isinstance(cursor.tie, str) and cursor.tie.isdecimal()
                                                   and cursor.since is not None)):
                raise ValueError
        except (ValueError, TypeError, KeyError, AttributeError):
            raise PollError(f"The HubSpot poll cursor {text[:100]!r} is not one this connector wrote.", retryable=False) from None
        return cursor


class HubSpotReader:
    def __init__(self, call: Call, *, calls: Callable[[], int], pace_key: str, keys: dict[str, str]) -> None:
        self.call = call
        self.calls = calls  # the session's call counter
        self.pace_key = pace_key
        self.keys = keys  # object -> its upsert property, read along to name the lead
        self.offset: float | None = None

    # --- changes: search on the modification date ----------------------------------------

    def changes(self, *, object: str, since: datetime | None, cursor: str, fields: list[str]) -> ChangePage:
        object_type, date_property = _object(object)
        position = _Cursor.load(cursor, since)
        before = self.calls()
        body = self._search_body(position, date_property, self._properties(object, fields, date_property))
        answer = self._timed("POST", f"/crm/v3/objects/{object_type}/search", body, search=True)
        results = [r for r in answer.body.get("results") or [] if isinstance(r, dict) and r.get("id") is not None]
        changes = [self._change(r, object, fields, date_property) for r in results]
        next_after = str(((answer.body.get("paging") or {}).get("next") or {}).get("after") or "")
        total = answer.body.get("total")
        capped = position.after + len(results) >= SEARCH_CAP and not (isinstance(total, int) and total <= SEARCH_CAP)
        return ChangePage(changes, _next(position, next_after, results, date_property, capped),
                          max((c.modified_at for c in changes), default=None), self.calls() - before, self.offset)

    @staticmethod
    def _search_body(position: _Cursor, date_property: str, properties: list[str]) -> dict[str, Any]:
        if position.tie is not None:
            filters = [{"propertyName": date_property, "operator": "EQ", "value": str(position.since)},
                       {"propertyName": "hs_object_id", "operator": "GT", "value": position.tie}]
            sort = "hs_object_id"
        else:
            bound = [] if position.since is None else [str(position.since)]
            filters = [{"propertyName": date_property, "operator": "GTE", "value": value} for value in bound]
            sort = date_property
        body = {"filterGroups": [{"filters": filters}] if filters else [],
                "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
                "properties": properties, "limit": SEARCH_LIMIT}
        if position.after:
            body["after"] = str(position.after)
        return body

    # --- read: batch read by ID ---------------------------------------------------------------

    def read(self, *, object: str, ids: list[str], fields: list[str], history: bool = False) -> list[CrmChange]:
        object_type, date_property = _object(object)
        wanted = list(dict.fromkeys(str(i) for i in ids))
        size = BATCH_READ_WITH_HISTORY if history else BATCH_READ
        found: dict[str, CrmChange] = {}
        for start in range(0, len(wanted), size):
            chunk = wanted[start:start + size]
            body: dict[str, Any] = {"properties": self._properties(object, fields, date_property),
                                    "inputs": [{"id": i} for i in chunk]}
            if history:
                body["propertiesWithHistory"] = list(dict.fromkeys(fields))
            # A merged-away ID answers with its survivor, under the survivor's own ID.
            answer = self._timed("POST", f"/crm/v3/objects/{object_type}/batch/read", body)
            for result in answer.body.get("results") or []:
                if isinstance(result, dict) and result.get("id") is not None:
                    change = self._change(result, object, fields, date_property)
                    if history:
                        _with_history(change, result.get("propertiesWithHistory") or {}, fields)
                    found[change.crm_id] = change
        answered = set(found) | {i for change in found.values() for i in change.merged_ids}
        now = timezone.now()
        # Archived or never there: HubSpot lists them in the answer's errors (207).
        gone = [CrmChange(crm_id=i, modified_at=now, archived=True) for i in wanted if i not in answered]
        return [*found.values(), *gone]

    # --- deletions: the archived list -------------------------------------------------------

    def deletions(self, *, object: str, since: datetime | None, cursor: str) -> ChangePage:
        object_type, _ = _object(object)
        before = self.calls()
        key = self.keys.get(object, "")
        path = f"/crm/v3/objects/{object_type}?archived=true&limit={ARCHIVED_PAGE}"
        path += f"&properties={quote(key)}" if key else ""
        path += f"&after={quote(cursor)}" if cursor else ""
        answer = self._timed("GET", path, None)
        changes = []
        for result in answer.body.get("results") or []:
            archived_at = _time((result or {}).get("archivedAt")) if isinstance(result, dict) else None
            # The list is in ID order, not by date: every page is read, and older deletes skipped.
            if archived_at is None or (since is not None and archived_at < since):
                continue
            changes.append(CrmChange(crm_id=str(result["id"]), modified_at=archived_at, archived=True,
                                     external_id=str((result.get("properties") or {}).get(key) or "")))
        next_after = str(((answer.body.get("paging") or {}).get("next") or {}).get("after") or "")
        return ChangePage(changes, next_after, max((c.modified_at for c in changes), default=None),
                          self.calls() - before, self.offset)

    # --- shared ---------------------------------------------------------------------------

    def _properties(self, object: str, fields: list[str], date_property: str) -> list[str]:
        key = self.keys.get(object, "")
        return list(dict.fromkeys([*fields, date_property, MERGED, *([key] if key else [])]))

    def _change(self, result: dict[str, Any], object: str, fields: list[str], date_property: str) -> CrmChange:
        properties = result.get("properties") or {}
        modified = _time(result.get("updatedAt")) or _time(properties.get(date_property))
        if modified is None:
            raise PollError(f"HubSpot returned record {result.get('id')} without a modification time.", retryable=False)
        values = {name: "" if properties.get(name) is None else str(properties[name]) for name in fields}
        merged = tuple(part.strip() for part in str(properties.get(MERGED) or "").split(";") if part.strip())
        key = self.keys.get(object, "")
        return CrmChange(crm_id=str(result["id"]), modified_at=modified, values=values,
                         changed_at={name: modified for name in fields}, archived=bool(result.get("archived")),
                         merged_ids=merged, external_id=str(properties.get(key) or "") if key else "")

    def _timed(self, method: str, path: str, body: Any, *, search: bool = False) -> outbound.Response:
        if search:
            _pace(self.pace_key)
        answer = self.call(method, path, body)
        returned = time.time()
        offset = clock_offset(answer.headers.get("Date"), returned - answer.duration_ms / 2000)
        if offset is not None:
            self.offset = offset
        if not isinstance(answer.body, dict):
            raise PollError(f"HubSpot answered {answer.status} with a body that is not a JSON object.")
        return answer


def _next(position: _Cursor, next_after: str, results: list[dict[str, Any]], date_property: str, capped: bool) -> str:
    """The cursor after this page: "" when the query is done; the next `after` while it stays
    within the 10,000 cap; else the query again from the newest modification time seen.
    `capped`: this page reached the 10,000th result of a query that has more (HubSpot then
    offers no next page, or one it would refuse)."""
    if position.tie is not None:
        if next_after and results:
            return _Cursor(position.since, tie=max((str(r["id"]) for r in results), key=_id_order)).dump()
        # Every record of that millisecond is read: go on after it.
        return _Cursor(position.since + 1).dump()
    if not next_after and not capped:
        return ""
    if next_after and not next_after.isdecimal():
        raise PollError(f"HubSpot's search paging cursor {next_after[:50]!r} is not an offset.", retryable=False)
    if next_after and int(next_after) + SEARCH_LIMIT <= SEARCH_CAP:
        return _Cursor(position.since, int(next_after)).dump()
    times = [_ms(t) for t in (_record_time(r, date_property) for r in results) if t is not None]
    newest = max(times, default=position.since)
    if newest is None or position.since is None or newest > position.since:
        return _Cursor(newest).dump()
    # 10,000 records at one millisecond (a bulk import): restarting at it would read the same
    # ones again for ever, so read that millisecond by ID.
    return _Cursor(position.since, tie="0").dump()


def _record_time(result: dict[str, Any], date_property: str) -> datetime | None:
    return _time((result.get("properties") or {}).get(date_property)) or _time(result.get("updatedAt"))


def _id_order(record_id: str) -> tuple[int, str]:
    return (len(record_id), record_id)  # numeric IDs, compared as numbers


def _with_history(change: CrmChange, history: dict[str, Any], fields: list[str]) -> None:
    """Per field, when its current value was set and by what (sourceType[:sourceId]). `by_us`
    when every requested field's newest change came from an integration."""
    sources = []
    for name in fields:
        entries = [e for e in history.get(name) or [] if isinstance(e, dict) and _time(e.get("timestamp"))]
        if not entries:
            continue
        newest = max(entries, key=lambda e: _time(e.get("timestamp")))
        change.changed_at[name] = _time(newest["timestamp"])
        source = str(newest.get("sourceType") or "")
        change.changed_by[name] = f"{source}:{newest['sourceId']}" if newest.get("sourceId") else source
        sources.append(source)
    change.by_us = bool(sources) and all(source == "INTEGRATION" for source in sources)


def _object(object: str) -> tuple[str, str]:
    try:
        return OBJECTS[object]
    except KeyError:
        raise ValueError(f"object must be one of {', '.join(OBJECTS)}, not {object!r}") from None


def _pace(key: str) -> None:
    with _pace_lock:
        now = time.monotonic()
        start = max(now, _next_search.get(key, 0.0))
        _next_search[key] = start + SEARCH_INTERVAL
    if start > now:
        time.sleep(start - now)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(value: Any) -> datetime | None:
    """HubSpot's ISO 8601 timestamps (`2026-11-30T10:00:00.123Z`), or epoch milliseconds."""
    if value in (None, ""):
        return None
    text = str(value).strip()
    try:
        if text.isdecimal():
            return datetime.fromtimestamp(int(text) / 1000, dt_timezone.utc)
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt_timezone.utc)
