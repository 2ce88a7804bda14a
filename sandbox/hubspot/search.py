"""POST /crm/v3/objects/{contacts|companies}/search, filtered in Python over the stored values.

Semantics follow HubSpot's search guide: filters in a group are ANDed, groups are ORed, string
comparisons ignore case, dates compare as epoch milliseconds, `after` is an offset, and no query
reaches past 10,000 results.
"""

from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
import re
from typing import Any, Callable

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
    rows = [(row, record_values(row)) for row in kind.model.objects.filter(archived=False).order_by("pk")]
    hits = [(row, values) for row, values in rows
            if _group_match(groups, values) and _query_match(query, values, kind.query_properties)]
    hits = _sorted(hits, body.get("sorts") or [])
    wanted = requested_properties(_names(body.get("properties")), definitions)
    page = [record_json(row, wanted=wanted) for row, _ in hits[offset: offset + limit]]
    more = offset + limit < min(len(hits), MAX_RESULTS)
    return SearchPage(len(hits), page, str(offset + limit) if more else None)


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

def _sorted(hits: list[tuple[SandboxRecord, Values]], sorts: Any) -> list[tuple[SandboxRecord, Values]]:
    """HubSpot accepts sorts as ["-createdate"] strings or {"propertyName", "direction"} objects."""
    if not isinstance(sorts, list):
        raise validation_error("Invalid input JSON: sorts must be a list.")
    for name, descending in reversed([_sort_key(s) for s in sorts]):
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
