"""A REST destination's recipe: which requests create, update, look up and batch records, and
how to read the CRM's answers. RevOps write it as one JSON object on the destination
(README, "Pointing it at any REST endpoint"); `recipe_parse` checks it and says what is wrong
where ("create.url: required"), so a bad recipe is a form error, never a failed push.

Templates are JSON documents whose strings may hold `{{ name }}` placeholders: a string that is
exactly one placeholder takes the value with its JSON type; placeholders inside a longer string
are replaced by the value as text. Names are the field map's CRM fields plus `external_id`,
`crm_record_id` and `email` (the lead's email when the map has no `email` field). A name with no
value leaves its key out, or sends null where the recipe says `"missing": "null"` (`crm_record_id`
is always left out: it is absent exactly when a record is created). Paths into answers are
JSONPath (jsonpath-ng): `id`, `data.lead.id`, `results[*].id`.

This module knows no model: the destination's clean() and the connector both use it.
"""

from dataclasses import dataclass
import json
import re
from typing import Any
from urllib.parse import quote, unquote

from jsonpath_ng import parse as jsonpath_parse
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError

# A string value that is exactly one placeholder takes the field's value with its JSON type.
_WHOLE = re.compile(r"^\{\{\s*([\w.\-]+)\s*\}\}$")
# Placeholders inside longer strings are replaced by the value as text.
_INNER = re.compile(r"\{\{\s*([\w.\-]+)\s*\}\}")
BUILTIN_PLACEHOLDERS = frozenset({"external_id", "crm_record_id", "email"})
METHODS = ("GET", "POST", "PUT", "PATCH")
MAX_BATCH = 100  # the most a batch recipe may ask for: the dispatcher's chunk for REST
_ABSENT = object()  # a template node whose value is left out


class RecipeError(ValueError):
    """The recipe cannot work; `errors` maps each place in it ("create.url") to a sentence."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{where}: {what}" for where, what in errors.items()))
        self.errors = errors


class TemplateError(ValueError):
    """A template could not be filled for this record (e.g. no record ID for an update URL)."""


# --- JSON paths -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonPath:
    text: str

    def find(self, document: Any) -> list[Any]:
        return [match.value for match in _compiled(self.text).find(document)]

    def matches(self, document: Any) -> list[tuple[Any, Any]]:
        """(value, the object holding it) for each match: the found record beside its ID."""
        return [(m.value, m.context.value if m.context else None) for m in _compiled(self.text).find(document)]

    def first(self, document: Any) -> Any:
        found = self.find(document)
        return found[0] if found else None


_PATHS: dict[str, Any] = {}


def _compiled(text: str) -> Any:
    if text not in _PATHS:
        _PATHS[text] = jsonpath_parse(text)
    return _PATHS[text]


def _path(raw: Any, where: str, errors: dict[str, str], default: str = "") -> JsonPath | None:
    text = default if raw is None else raw
    if text == "":
        return None
    if not isinstance(text, str):
        errors[where] = "must be a JSON path as a string, e.g. \"data.id\" or \"results[*].id\"."
        return None
    try:
        _compiled(text)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # noqa: BLE001 - the parser raises bare Exception too
        errors[where] = f"not a JSON path ({exc})."
        return None
    return JsonPath(text)


# --- the recipe -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """An answer's value at `path`, compared; an absent value reads as null."""

    path: JsonPath
    op: str  # equals, not_equals, in, exists
    value: Any

    def holds(self, document: Any) -> bool:
        found = self.path.find(document)
        value = found[0] if found else None
        if self.op == "exists":
            return bool(found) == bool(self.value)
        if self.op == "in":
            return value in self.value
        return (value == self.value) == (self.op == "equals")


@dataclass(frozen=True)
class Request:
    method: str
    url: str  # a template: a path appended to the base URL, or an absolute URL
    body: Any  # a JSON template; None: the fields (and external_id) as one object


@dataclass(frozen=True)
class Lookup(Request):
    id_path: JsonPath  # every match is a found record's ID


@dataclass(frozen=True)
class Batch(Request):
    max: int
    results_path: JsonPath  # the per-record results in the answer
    id_path: JsonPath  # in one result
    index_path: JsonPath | None  # in one result: which record of the call it answers; None: by position
    wrap: str  # "" sends a JSON array; "inputs" sends {"inputs": [...]}


@dataclass(frozen=True)
class Answer:
    success_status: tuple[int, ...]  # empty: any 2xx
    success_when: Condition | None
    on_failure: str  # a 2xx that fails success_when: "review" or "retry"
    id_path: JsonPath | None
    message_path: JsonPath | None
    code_path: JsonPath | None
    exists_status: tuple[int, ...]
    exists_match: re.Pattern | None  # searched in the error's code and message; None: the status says it

    def succeeded(self, status: int, body: Any) -> bool:
        in_status = status in self.success_status if self.success_status else 200 <= status < 300
        return in_status and (self.success_when is None or self.success_when.holds(body))

    def error(self, body: Any) -> tuple[str, str]:
        """(code, message) at the configured paths, "" where the answer has none."""
        code = self.code_path.first(body) if self.code_path and isinstance(body, (dict, list)) else None
        message = self.message_path.first(body) if self.message_path and isinstance(body, (dict, list)) else None
        return _scalar(code), _scalar(message)

    def already_exists(self, status: int, code: str, message: str) -> bool:
        if status not in self.exists_status:
            return False
        # No pattern: the status alone says it (409 Conflict, the usual one).
        return self.exists_match is None or bool(self.exists_match.search(code) or self.exists_match.search(message))


@dataclass(frozen=True)
class Recipe:
    create: Request
    update: Request | None  # None: an update calls the create request again with the full record
    lookup: Lookup | None
    batch: Batch | None
    answer: Answer
    missing: str  # "omit" or "null": a field with no value
    auth_header: str  # custom-header auth: the header's name...
    auth_prefix: str  # ...and what precedes the secret in it ("Token ")
    token_url: str  # OAuth2: the token endpoint, relative to the base URL or absolute
    token_scope: str


_TOP = {"create", "update", "lookup", "batch", "answer", "missing", "auth_header", "auth_prefix", "token_url", "token_scope"}
_REQUEST = {"method", "url", "body"}
_ANSWER = {"success_status", "success_when", "on_failure", "id_path", "error_message_path", "error_code_path",
           "exists_status", "exists_match"}
_CONDITION_OPS = ("equals", "not_equals", "in", "exists")


def recipe_parse(raw: Any, *, http_method: str = "POST", body_template: str = "") -> Recipe:
    """The recipe, with defaults from a destination's simple fields (a create request to the
    base URL with its method and body template); raises RecipeError naming every problem."""
    errors: dict[str, str] = {}
    raw = raw or {}
    if not isinstance(raw, dict):
        raise RecipeError({"recipe": "must be a JSON object, e.g. {\"create\": {\"url\": \"/leads\"}}."})
    _unknown(raw, _TOP, "recipe", errors)
    legacy_body = _legacy_body(body_template, errors)
    create = _request(raw.get("create") or {}, "create", errors, default_method=http_method, default_body=legacy_body)
    # The update's body is the create's unless it says otherwise: the same record, by its ID.
    update = _request(raw["update"], "update", errors, default_method="PATCH",
                      default_body=create.body if create else None) if raw.get("update") else None
    lookup = _lookup(raw["lookup"], errors) if raw.get("lookup") else None
    batch = _batch(raw["batch"], errors) if raw.get("batch") else None
    answer = _answer(raw.get("answer") or {}, errors)
    missing = raw.get("missing", "omit")
    if missing not in ("omit", "null"):
        errors["missing"] = 'must be "omit" (leave the key out) or "null" (send null).'
    texts = {name: raw.get(name, default) for name, default in
             (("auth_header", "X-Api-Key"), ("auth_prefix", ""), ("token_url", ""), ("token_scope", ""))}
    for name, value in texts.items():
        if not isinstance(value, str):
            errors[name] = "must be a string."
    if errors:
        raise RecipeError(errors)
    return Recipe(create=create, update=update, lookup=lookup, batch=batch, answer=answer, missing=missing, **texts)


def _unknown(raw: dict, known: set[str], where: str, errors: dict[str, str]) -> None:
    for key in sorted(set(raw) - known):
        errors[f"{where}.{key}" if where != "recipe" else key] = f"unknown key (known: {', '.join(sorted(known))})."


def _legacy_body(template: str, errors: dict[str, str]) -> Any:
    if not (template or "").strip():
        return None
    try:
        return json.loads(template)
    except ValueError as exc:
        errors["body_template"] = f"not valid JSON: {exc}"
        return None


def _request(raw: Any, where: str, errors: dict[str, str], *, default_method: str = "POST", default_body: Any = None,
             extra: frozenset[str] = frozenset()) -> Request | None:
    if not isinstance(raw, dict):
        errors[where] = 'must be a JSON object, e.g. {"method": "POST", "url": "/leads", "body": {...}}.'
        return None
    _unknown(raw, _REQUEST | extra, where, errors)
    method = str(raw.get("method", default_method)).upper()
    if method not in METHODS:
        errors[f"{where}.method"] = f"must be one of {', '.join(METHODS)}."
    url = raw.get("url", "")
    if not isinstance(url, str):
        errors[f"{where}.url"] = "must be a string: a path after the base URL, or an absolute URL."
        url = ""
    body = raw.get("body", default_body)
    if body is not None and not isinstance(body, (dict, list)):
        errors[f"{where}.body"] = "must be a JSON object or array (a template), or left out."
    return Request(method, url, body)


def _lookup(raw: Any, errors: dict[str, str]) -> Lookup | None:
    request = _request(raw, "lookup", errors, default_method="GET", extra=frozenset({"id_path"}))
    if request is None:
        return None
    id_path = _path(raw.get("id_path"), "lookup.id_path", errors)
    if id_path is None and "lookup.id_path" not in errors:
        errors["lookup.id_path"] = 'required: where the found records\' IDs are, e.g. "results[*].id".'
    if "{{" not in request.url and request.body is None:
        errors["lookup.url"] = "must use the lead, e.g. /leads?email={{ email }}."
    return Lookup(request.method, request.url, request.body, id_path) if id_path else None


def _batch(raw: Any, errors: dict[str, str]) -> Batch | None:
    keys = frozenset({"max", "results_path", "id_path", "index_path", "wrap"})
    request = _request(raw, "batch", errors, extra=keys)
    if request is None:
        return None
    size = raw.get("max", 50)
    if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_BATCH:
        errors["batch.max"] = f"must be a whole number from 1 to {MAX_BATCH}."
    if not isinstance(request.body, dict):
        errors["batch.body"] = "required: the template of one record (an object); the call sends a list of them."
    if "{{" in request.url:
        errors["batch.url"] = "one call carries many records: the URL takes no placeholders."
    results_path = _path(raw.get("results_path"), "batch.results_path", errors, default="results")
    id_path = _path(raw.get("id_path"), "batch.id_path", errors, default="id")
    index_path = _path(raw.get("index_path"), "batch.index_path", errors)
    wrap = raw.get("wrap", "")
    if not isinstance(wrap, str):
        errors["batch.wrap"] = 'must be a key name such as "inputs", or "" to send a bare JSON array.'
    if results_path is None or id_path is None or any(k.startswith("batch.") for k in errors):
        return None
    return Batch(request.method, request.url, request.body, size, results_path, id_path, index_path, wrap)


def _answer(raw: Any, errors: dict[str, str]) -> Answer | None:
    if not isinstance(raw, dict):
        errors["answer"] = "must be a JSON object."
        return None
    _unknown(raw, _ANSWER, "answer", errors)
    success_status = _statuses(raw.get("success_status", []), "answer.success_status", errors)
    exists_status = _statuses(raw.get("exists_status", [409]), "answer.exists_status", errors)
    on_failure = raw.get("on_failure", "review")
    if on_failure not in ("review", "retry"):
        errors["answer.on_failure"] = 'must be "review" or "retry".'
    exists_match = None
    pattern = raw.get("exists_match", "")
    if not isinstance(pattern, str):
        errors["answer.exists_match"] = "must be a regular expression as a string."
    elif pattern:
        try:
            exists_match = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            errors["answer.exists_match"] = f"not a regular expression: {exc}."
    return Answer(
        success_status=success_status, success_when=_condition(raw.get("success_when"), errors), on_failure=on_failure,
        id_path=_path(raw.get("id_path"), "answer.id_path", errors, default="id"),
        message_path=_path(raw.get("error_message_path"), "answer.error_message_path", errors, default="message"),
        code_path=_path(raw.get("error_code_path"), "answer.error_code_path", errors, default="code"),
        exists_status=exists_status, exists_match=exists_match)


def _statuses(raw: Any, where: str, errors: dict[str, str]) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(s, int) and 100 <= s <= 599 for s in raw):
        errors[where] = "must be a list of HTTP status codes, e.g. [400, 409]."
        return ()
    return tuple(raw)


def _condition(raw: Any, errors: dict[str, str]) -> Condition | None:
    if raw is None:
        return None
    where = "answer.success_when"
    ops = [op for op in _CONDITION_OPS if isinstance(raw, dict) and op in raw]
    if not isinstance(raw, dict) or len(ops) != 1 or set(raw) - {"path", *_CONDITION_OPS}:
        errors[where] = 'must be {"path": ..., and one of equals / not_equals / in / exists}, e.g. ' \
                        '{"path": "error", "not_equals": true}.'
        return None
    path = _path(raw.get("path"), f"{where}.path", errors)
    if path is None:
        errors.setdefault(f"{where}.path", "required.")
        return None
    if ops[0] == "in" and not isinstance(raw["in"], list):
        errors[f"{where}.in"] = "must be a list of values."
        return None
    return Condition(path, ops[0], raw[ops[0]])


# --- templates --------------------------------------------------------------------------------


def placeholders(node: Any) -> set[str]:
    """Every placeholder name a template (a URL or a JSON document) uses."""
    if isinstance(node, dict):
        return set().union(*(placeholders(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(placeholders(v) for v in node)) if node else set()
    if isinstance(node, str):
        return set(_INNER.findall(node))
    return set()


def recipe_templates(recipe: Recipe) -> dict[str, Any]:
    """Each template of the recipe by where it is, for checks and the preflight."""
    found: dict[str, Any] = {}
    for name in ("create", "update", "lookup", "batch"):
        request = getattr(recipe, name)
        if request is not None:
            found[f"{name}.url"] = request.url
            # An update without a body of its own uses the create's: reported once, there.
            inherited = name == "update" and request.body is recipe.create.body
            if request.body is not None and not inherited:
                found[f"{name}.body"] = request.body
    return found


def unknown_placeholders(recipe: Recipe, known: set[str] | frozenset[str]) -> dict[str, list[str]]:
    """Placeholders naming nothing the field map sends, by template."""
    names = known | BUILTIN_PLACEHOLDERS
    unknown = {where: sorted(placeholders(t) - names) for where, t in recipe_templates(recipe).items()}
    return {where: names for where, names in unknown.items() if names}


def fill(node: Any, values: dict[str, Any], *, nulls: frozenset[str] = frozenset()) -> Any:
    """The template with its placeholders filled. A name not in `values` leaves its key (or
    list item) out, or is null when it is in `nulls`; a longer string missing one of its names
    counts as missing as a whole (a half-filled "Lead {{ email }}" would be a wrong value)."""
    result = _fill(node, values, nulls)
    return {} if result is _ABSENT else result


def _fill(node: Any, values: dict[str, Any], nulls: frozenset[str]) -> Any:
    if isinstance(node, dict):
        filled = ((key, _fill(value, values, nulls)) for key, value in node.items())
        return {key: value for key, value in filled if value is not _ABSENT}
    if isinstance(node, list):
        return [value for value in (_fill(v, values, nulls) for v in node) if value is not _ABSENT]
    if not isinstance(node, str):
        return node
    names = _INNER.findall(node)
    missing = [name for name in names if name not in values]
    if missing:
        return None if all(name in nulls for name in missing) else _ABSENT
    whole = _WHOLE.match(node)
    if whole:
        return values[whole[1]]
    return _INNER.sub(lambda m: _text(values[m[1]]), node)


def fill_url(template: str, values: dict[str, Any], base_url: str, *, where: str) -> str:
    """The URL for a call: placeholders percent-encoded, relative to the base URL unless absolute."""
    def value(match: re.Match) -> str:
        if match[1] not in values or values[match[1]] in (None, ""):
            raise TemplateError(f"{where}: no value for {{{{ {match[1]} }}}}")
        return quote(_text(values[match[1]]), safe="")
    path = _INNER.sub(value, template)
    if path.startswith(("http://", "https://")):
        return path
    if not path:
        return base_url
    return base_url.rstrip("/") + "/" + path.lstrip("/")


def shown_url(url: str) -> str:
    """The URL as logged: decoded, so the sync log's masking sees an email in a query."""
    return unquote(url)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _scalar(value: Any) -> str:
    if value in (None, "", [], {}):
        return ""
    return value if isinstance(value, str) else json.dumps(value, default=str)
