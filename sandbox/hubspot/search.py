"""POST /crm/v3/objects/{contacts|companies}/search.

Semantics follow HubSpot's search guide: filters in a group are ANDed, groups are ORed, string
comparisons ignore case, dates compare as epoch milliseconds, `after` is an offset, and no query
reaches past 10,000 results.

Filters and sorts on the columns (hs_object_id, createdate, lastmodifieddate and companies'
hs_lastmodifieddate) run in the database, so a sync poll (`lastmodifieddate GTE <ms>`, ascending)
stays quick over tens of thousands of records: one COUNT and one page of rows. Anything else
(property values in JSON) is filtered and sorted in Python over what the database narrowed.
"""

from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from fnmatch import fnmatchcase
from functools import reduce
import operator
import re
from typing import Any, Callable

from django.db.models import Q, QuerySet

from sandbox.hubspot.errors import validation_error
from sandbox.hubspot.properties import ObjectType, PropertyDef, property_definitions
from sandbox.hubspot.records import record_json, record_values, requested_properties
from sandbox.models import SandboxRecord

MAX_LIMIT = 200
MAX_RESULTS = 10_000
MAX_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
TOKEN_SPLIT = re.compile(r"[\s@.,;:/_\-]+")

Values = dict[str, str]
Test = Callable[[str | None, dict[str, Any]], bool]


@dataclass(frozen=True)
class Filter:
    property_name: str
    test: Test
    spec: dict[str, Any]

    def matches(self, values: Values) -> bool:
        return self.test(values.get(self.property_name), self.spec)


@dataclass(frozen=True)
class SearchPage:
    total: int
    results: list[dict[str, Any]]
    next_after: str | None


def records_search(kind: ObjectType, *, body: dict[str, Any]) -> SearchPage:
    definitions = property_definitions(kind)
    groups = _groups(body.get("filterGroups") or [], definitions)
    limit, offset = _limit(body.get("limit", 10)), _offset(body.get("after"))
    if offset + limit > MAX_RESULTS:
        raise validation_error(f"Search results are limited to {MAX_RESULTS} records per query.")
    query = str(body.get("query") or "").strip().casefold()
    sorts = _sort_keys(body.get("sorts") or [])
    wanted = requested_properties(_names(body.get("properties")), definitions)
    rows, left = _narrowed(kind.model.objects.filter(archived=False, merged_into__isnull=True), groups)
    if not left and not query and all(name in COLUMNS for name, _ in sorts):
        total = rows.count()
        order = [("-" if descending else "") + COLUMNS[name] for name, descending in sorts]
        page_rows = list(rows.order_by(*order, "pk")[offset: offset + limit])
    else:
        candidates = [(row, record_values(row)) for row in rows.order_by("pk")]
        hits = [(row, values) for row, values in candidates
                if _group_match(left, values) and _query_match(query, values, kind.query_properties)]
        total, page_rows = len(hits), [row for row, _ in _sorted(hits, sorts)[offset: offset + limit]]
    page = [record_json(row, wanted=wanted) for row in page_rows]
    more = offset + limit < min(total, MAX_RESULTS)
    return SearchPage(total, page, str(offset + limit) if more else None)


# --- in the database --------------------------------------------------------------------------

# Properties stored as columns: what the database can filter and sort on.
COLUMNS = {"hs_object_id": "pk", "createdate": "created_at", "lastmodifieddate": "updated_at",
           "hs_lastmodifieddate": "updated_at"}
LOOKUPS = {"EQ": "exact", "LT": "lt", "LTE": "lte", "GT": "gt", "GTE": "gte"}


def _narrowed(rows: QuerySet, groups: list[list[Filter]]) -> tuple[QuerySet, list[list[Filter]]]:
    """The rows with every column filter applied in SQL, and the filter groups left for Python
    (none when the database did it all)."""
    pushed = [[_column_q(f) for f in group] for group in groups]
    if all(q is not None for group in pushed for q in group):
        if not groups:
            return rows, []
        return rows.filter(reduce(operator.or_, (reduce(operator.and_, group, Q()) for group in pushed))), []
    if len(groups) == 1:  # AND: the column filters narrow, the others are checked in Python
        narrowed = rows.filter(*(q for q in pushed[0] if q is not None))
        return narrowed, [[f for f, q in zip(groups[0], pushed[0]) if q is None]]
    return rows, groups


def _column_q(spec: Filter) -> Q | None:
    """The filter as a Q on its column, or None when it is not on a column (or its value does not
    read as the column's type, left to the Python comparison as before)."""
    column = COLUMNS.get(spec.property_name)
    operator_name = spec.spec.get("operator")
    if column is None:
        return None
    if operator_name in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):  # computed: every record has them
        return Q() if operator_name == "HAS_PROPERTY" else Q(pk__in=[])
    if operator_name in ("IN", "NOT_IN"):
        raw_values = spec.spec.get("values") or []
    else:
        raw_values = [spec.spec.get(name) for name in NEEDS.get(operator_name, ())]
    values = [_column_value(column, v) for v in raw_values]
    if any(v is None for v in values) or not values:
        return None
    if operator_name in LOOKUPS:
        return Q(**{f"{column}__{LOOKUPS[operator_name]}": values[0]})
    if operator_name == "NEQ":
        return ~Q(**{column: values[0]})
    if operator_name == "BETWEEN":
        return Q(**{f"{column}__gte": values[0], f"{column}__lte": values[1]})
    if operator_name == "IN":
        return Q(**{f"{column}__in": values})
    if operator_name == "NOT_IN":
        return ~Q(**{f"{column}__in": values})
    return None  # CONTAINS_TOKEN and the like: text matching, in Python


def _column_value(column: str, raw: Any) -> int | datetime | None:
    """An ID as an integer; a date from epoch milliseconds (as HubSpot takes them) or ISO text."""
    text = str(raw).strip() if raw is not None else ""
    if column == "pk":
        return int(text) if text.isdecimal() and len(text) <= 18 else None
    if re.fullmatch(r"-?\d{1,15}", text):
        return datetime.fromtimestamp(int(text) / 1000, tz=dt_timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt_timezone.utc)


# --- request ----------------------------------------------------------------------------------

def _groups(raw: Any, definitions: dict[str, PropertyDef]) -> list[list[Filter]]:
    if not isinstance(raw, list) or not all(isinstance(g, dict) for g in raw):
        raise validation_error("Invalid input JSON: filterGroups must be a list of objects.")
    groups = [[_filter(f, definitions) for f in _filters(group)] for group in raw]
    if len(groups) > MAX_GROUPS or any(len(g) > MAX_FILTERS_PER_GROUP for g in groups) \
            or sum(map(len, groups)) > MAX_FILTERS:
        raise validation_error(f"Too many filters: at most {MAX_GROUPS} filterGroups, {MAX_FILTERS_PER_GROUP} "
                               f"filters per group and {MAX_FILTERS} filters in all.")
    return groups


def _filters(group: dict[str, Any]) -> list[Any]:
    filters = group.get("filters") or []
    if not isinstance(filters, list):
        raise validation_error("Invalid input JSON: filters must be a list.")
    return filters


def _filter(raw: Any, definitions: dict[str, PropertyDef]) -> Filter:
    if not isinstance(raw, dict):
        raise validation_error("Invalid input JSON: every filter must be an object.")
    name, operator = raw.get("propertyName"), raw.get("operator")
    if name not in definitions:
        raise validation_error(f'Property "{name}" does not exist', errors=[
            {"message": f'Property "{name}" does not exist', "code": "PROPERTY_DOESNT_EXIST",
             "context": {"propertyName": [str(name)]}}])
    if operator not in OPERATORS:
        raise validation_error(f"Unknown filter operator {operator!r}; one of {', '.join(OPERATORS)}.")
    for field in NEEDS.get(operator, ()):
        if raw.get(field) in (None, "", []) or (field == "values") != isinstance(raw.get(field), list):
            raise validation_error(f"Operator {operator} needs {field!r} in the filter on {name}.")
    return Filter(name, OPERATORS[operator], raw)


def _limit(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_LIMIT:
        raise validation_error(f"limit must be an integer between 1 and {MAX_LIMIT}.")
    return raw


def _offset(raw: Any) -> int:
    text = str(raw or "0")
    if not text.isdecimal():
        raise validation_error(f"after must be the cursor of a previous page, not {raw!r}.")
    return int(text)


def _names(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise validation_error("Invalid input JSON: properties must be a list of property names.")
    return raw


# --- matching ---------------------------------------------------------------------------------

def _group_match(groups: list[list[Filter]], values: Values) -> bool:
    return not groups or any(all(f.matches(values) for f in group) for group in groups)


def _query_match(query: str, values: Values, names: tuple[str, ...]) -> bool:
    return not query or any(query in (values.get(name) or "").casefold() for name in names)


def comparable(value: Any) -> tuple[int, Any]:
    """Numbers and dates compare as numbers (dates as epoch ms, as HubSpot filters take them),
    anything else as case-folded text. The tag keeps the two kinds apart."""
    text = str(value).strip()
    try:
        return 0, float(text)
    except ValueError:
        pass
    try:
        return 0, datetime.fromisoformat(text).timestamp() * 1000
    except ValueError:
        return 1, text.casefold()


def _same(value: str | None, other: Any) -> bool:
    return value not in (None, "") and comparable(value) == comparable(other)


def _order(value: str | None, other: Any, accept: Callable[[Any, Any], bool]) -> bool:
    if value in (None, ""):
        return False
    mine, theirs = comparable(value), comparable(other)
    return mine[0] == theirs[0] and accept(mine[1], theirs[1])


def _contains_token(value: str | None, token: Any) -> bool:
    if value in (None, ""):
        return False
    wanted, text = str(token).casefold(), value.casefold()
    if "*" in wanted:
        return fnmatchcase(text, wanted)
    return wanted == text or wanted in TOKEN_SPLIT.split(text)


OPERATORS: dict[str, Test] = {
    "EQ": lambda v, f: _same(v, f["value"]),
    "NEQ": lambda v, f: not _same(v, f["value"]),
    "LT": lambda v, f: _order(v, f["value"], lambda a, b: a < b),
    "LTE": lambda v, f: _order(v, f["value"], lambda a, b: a <= b),
    "GT": lambda v, f: _order(v, f["value"], lambda a, b: a > b),
    "GTE": lambda v, f: _order(v, f["value"], lambda a, b: a >= b),
    "BETWEEN": lambda v, f: _order(v, f["value"], lambda a, b: a >= b) and _order(v, f["highValue"], lambda a, b: a <= b),
    "IN": lambda v, f: any(_same(v, item) for item in f["values"]),
    "NOT_IN": lambda v, f: v not in (None, "") and not any(_same(v, item) for item in f["values"]),
    "HAS_PROPERTY": lambda v, f: v not in (None, ""),
    "NOT_HAS_PROPERTY": lambda v, f: v in (None, ""),
    "CONTAINS_TOKEN": lambda v, f: _contains_token(v, f["value"]),
    "NOT_CONTAINS_TOKEN": lambda v, f: not _contains_token(v, f["value"]),
}
# The filter fields each operator reads ("values" a list, the others single values).
NEEDS = {"EQ": ("value",), "NEQ": ("value",), "LT": ("value",), "LTE": ("value",), "GT": ("value",),
         "GTE": ("value",), "BETWEEN": ("value", "highValue"), "IN": ("values",), "NOT_IN": ("values",),
         "CONTAINS_TOKEN": ("value",), "NOT_CONTAINS_TOKEN": ("value",)}


# --- order ------------------------------------------------------------------------------------

def _sort_keys(sorts: Any) -> list[tuple[str, bool]]:
    """HubSpot accepts sorts as ["-createdate"] strings or {"propertyName", "direction"} objects."""
    if not isinstance(sorts, list):
        raise validation_error("Invalid input JSON: sorts must be a list.")
    return [_sort_key(s) for s in sorts]


def _sorted(hits: list[tuple[SandboxRecord, Values]], sorts: list[tuple[str, bool]]) -> list[tuple[SandboxRecord, Values]]:
    for name, descending in reversed(sorts):
        hits = sorted(hits, key=lambda hit: _sort_value(hit[1].get(name)), reverse=descending)
    return hits


def _sort_key(raw: Any) -> tuple[str, bool]:
    if isinstance(raw, str):
        return raw.lstrip("-"), raw.startswith("-")
    if isinstance(raw, dict) and isinstance(raw.get("propertyName"), str):
        return raw["propertyName"], str(raw.get("direction", "ASCENDING")).upper() == "DESCENDING"
    raise validation_error("Invalid input JSON: every sort needs a propertyName.")


def _sort_value(value: str | None) -> tuple[int, Any]:
    # Records without the property sort after the others (before them when descending).
    return (2, "") if value in (None, "") else comparable(value)
