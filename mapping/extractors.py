"""One flat view of a submission's source fields, whatever the provider's payload shape.

The view maps the names a RevOps person types in a mapping rule to the values as sent: scalars,
or lists for multi-value answers. Nested objects become dotted keys ("utm.source"). Each shape
reads one provider's documented format (docs/wire-contracts.md, "Payload shapes"); a
source kind's default shape is `shape_for_kind`.

Payloads are untrusted. Extractors skip whatever is not the type they expect and never raise,
so odd data gives a partial view or {}. When two parts of a payload give the same key, the part
named first in the shape's description wins: the answers win over the envelope around them.
"""

from collections.abc import Callable, Iterable, Iterator
import json
import re

View = dict[str, object]

SHAPES: dict[str, str] = {
    "flat": "Top-level fields as sent; nested objects as dotted keys (utm.source); lists kept.",
    "fields_array": "A fields (or data.fields) list of {id|key|name, label|title, value}: by id/key, then by "
                    "label, then the rest of the payload.",
    "meta_field_data": "The fetched Meta lead's field_data by name (one value, or a list), then leadgen_id, "
                       "form_id, ad_id, created_time, page_id.",
    "typeform": "Answers by field ref and by field id, then by field type for email, phone_number and website "
                "(the first such answer), then hidden.*, variables.*, calculated.score, token, submitted_at, "
                "landed_at, form_id, event_id.",
    "tally": "data.fields by key, then by label (choice option ids as their text), then by type for email and "
             "phone_number (the first such field), then responseId, submissionId, respondentId, formId, "
             "formName, createdAt, eventId, eventType.",
    "stripe": "data.object as dotted keys (customer_details.email, metadata.utm_source), "
              "custom_fields.<key>, then event.id, event.type, event.created.",
    "gravity_forms": "The entry by field ID (\"1.3\" first name, \"2\" email) with id, form_id, "
                     "source_url, date_created.",
    "jotform": "rawRequest answers by raw key (q3_email, q4_name.first) and without the qN_ prefix "
               "(email, name.first), then submissionID, formID, formTitle.",
    "unbounce": "data.json fields with one-item arrays unwrapped, then page_id, page_name, page_url, variant.",
    "webflow": "payload.data by field name, then id, submittedAt, formId, siteId and form_name.",
    "calendly": "The invitee (email, name, first_name, last_name, timezone, tracking.utm_*...), then "
                "questions_and_answers by question text.",
    "dotted": "The whole payload as dotted paths with list indexes (entry.0.id); lists of scalars also whole.",
}

_DEFAULT_SHAPES = {
    "web_form": "flat",
    "json_webhook": "flat",
    "stripe": "stripe",
    "meta_lead_ads": "meta_field_data",
    "typeform": "typeform",
    "tally": "tally",
    "webflow": "webflow",
    "calendly": "calendly",
    "gravity_forms": "gravity_forms",
    "jotform": "jotform",
    "unbounce": "unbounce",
}

# Deeper nesting than any form sends is dropped rather than risking a RecursionError.
_MAX_DEPTH = 32
_MISSING = object()


def extract(payload: dict, *, shape: str, enrichment: dict | None = None) -> View:
    """The flat view of a payload read as `shape`. An unknown shape is a configuration bug."""
    if shape not in _EXTRACTORS:
        raise ValueError(f"Unknown payload shape {shape!r}; expected one of: {', '.join(SHAPES)}.")
    return _EXTRACTORS[shape](_dict(payload), _dict(enrichment))


def shape_for_kind(kind: str) -> str:
    """The default shape for a source kind (a key of ingestion.presets.PRESETS)."""
    if kind not in _DEFAULT_SHAPES:
        raise ValueError(f"No default payload shape for source kind {kind!r}.")
    return _DEFAULT_SHAPES[kind]


def dotted_get(payload: object, path: str) -> object | None:
    """The value at "a.b.0.c" through dicts and list indexes, None when absent. A key that
    itself contains dots (Gravity's "1.3", Unbounce's "data.json") wins over splitting it."""
    found = _lookup(payload, path.split("."), 0)
    return None if found is _MISSING else found


def _lookup(value: object, parts: list[str], depth: int) -> object:
    if not parts:
        return value
    if depth > _MAX_DEPTH:
        return _MISSING
    if isinstance(value, dict):
        for size in range(len(parts), 0, -1):  # longest key first
            key = ".".join(parts[:size])
            if key in value:
                found = _lookup(value[key], parts[size:], depth + 1)
                if found is not _MISSING:
                    return found
        return _MISSING
    head = parts[0]
    if isinstance(value, list) and head.isascii() and head.isdigit() and int(head) < len(value):
        return _lookup(value[int(head)], parts[1:], depth + 1)
    return _MISSING


# --- Shapes -------------------------------------------------------------------------------


def _flat(payload: dict, enrichment: dict) -> View:
    return _flatten(payload, "", 0)


def _fields_array(payload: dict, enrichment: dict) -> View:
    source = "fields" if "fields" in payload else "data.fields"
    fields = dotted_get(payload, source)
    if isinstance(fields, dict):  # some builders send {id: {label, value}} instead of a list
        fields = list(fields.values())
    entries = _dicts(fields)
    by_id = ((name, f.get("value")) for f in entries if (name := _name_in(f, ("id", "key", "name"))))
    by_label = ((name, f.get("value")) for f in entries if (name := _name_in(f, ("label", "title"))))
    rest = ((key, value) for key, value in _flat(payload, enrichment).items()
            if key != source and not key.startswith(f"{source}."))
    return _merged(by_id, by_label, rest)


def _meta_field_data(payload: dict, enrichment: dict) -> View:
    # The notification carries IDs only; ingestion.meta stores the fetched leads, in the
    # notification's order, as enrichment["leads"] (Graph API lead: id, field_data, ...).
    lead = next(iter(_dicts(enrichment.get("leads"))), {})
    answers = ((name, _one_or_list(item.get("values")))
               for item in _dicts(lead.get("field_data")) if (name := _name(item.get("name"))))
    lead_ids = {"leadgen_id": lead["id"]} if "id" in lead else {}
    changes = (c for e in _dicts(payload.get("entry")) for c in _dicts(e.get("changes")))
    notice = next((value for c in changes if (value := _dict(c.get("value")))), {})
    keys = ("leadgen_id", "form_id", "ad_id", "created_time", "page_id")
    return _merged(answers, lead_ids.items(), _pick(lead, keys).items(), _pick(notice, keys).items())


def _typeform(payload: dict, enrichment: dict) -> View:
    response = _dict(payload.get("form_response"))
    # Older payloads carry the ref only in the form definition, not on each answer's field.
    definition = _dicts(_dict(response.get("definition")).get("fields"))
    refs = {id_: ref for f in definition if (id_ := _name(f.get("id"))) and (ref := _name(f.get("ref")))}
    variables = {key: _typed_value(v) for v in _dicts(response.get("variables")) if (key := _name(v.get("key")))}
    extras = _pick(response, ("hidden", "calculated")) | {"variables": variables}
    envelope = _pick(response, ("token", "submitted_at", "landed_at", "form_id")) | _pick(payload, ("event_id",))
    types = {id_: kind for f in definition if (id_ := _name(f.get("id"))) and (kind := _name(f.get("type")))}
    return _merged(_typeform_answers(response, refs), _typeform_by_type(response, types), extras.items(),
                   envelope.items())


def _typeform_answers(response: dict, refs: dict[str, str]) -> Iterator[tuple[str, object]]:
    for answer in _dicts(response.get("answers")):
        field = _dict(answer.get("field"))
        field_id = _name(field.get("id"))
        value = _typeform_value(answer)
        for key in (_name(field.get("ref")) or refs.get(field_id or ""), field_id):
            if key:
                yield key, value


# Field types that say what an answer is whatever its ref: a form's email question is an
# `email` field even when its ref is a UUID or "work_email".
_TYPEFORM_TYPED = ("email", "phone_number", "website")


def _typeform_by_type(response: dict, types: dict[str, str]) -> Iterator[tuple[str, object]]:
    for answer in _dicts(response.get("answers")):
        field = _dict(answer.get("field"))
        kind = _name(field.get("type")) or types.get(_name(field.get("id")) or "")
        if kind in _TYPEFORM_TYPED:
            yield kind, _typeform_value(answer)


def _typeform_value(answer: dict) -> object:
    # Typeform puts the value under the key named by the answer's type (text, email, number...).
    value = _typed_value(answer)
    if answer.get("type") == "choice" and isinstance(value, dict):
        return value.get("label", value.get("other"))
    if answer.get("type") == "choices" and isinstance(value, dict):
        return _list(value.get("labels")) + ([value["other"]] if "other" in value else [])
    return value


def _tally(payload: dict, enrichment: dict) -> View:
    data = _dict(payload.get("data"))
    fields = [(f, _tally_value(f)) for f in _dicts(data.get("fields"))]
    by_key = ((name, value) for f, value in fields if (name := _name(f.get("key"))))
    by_label = ((name, value) for f, value in fields if (name := _name(f.get("label"))))
    by_type = ((name, value) for f, value in fields if (name := _TALLY_TYPED.get(_name(f.get("type")) or "")))
    envelope = _pick(data, ("responseId", "submissionId", "respondentId", "formId", "formName", "createdAt"))
    return _merged(by_key, by_label, by_type, (envelope | _pick(payload, ("eventId", "eventType"))).items())


# Tally's input types that say what a field is whatever its label ("Your work address?").
_TALLY_TYPED = {"INPUT_EMAIL": "email", "INPUT_PHONE_NUMBER": "phone_number"}


def _tally_value(field: dict) -> object:
    # Choice fields (MULTIPLE_CHOICE, CHECKBOXES, DROPDOWN...) send option ids; a CRM wants text.
    options = _dicts(field.get("options"))
    texts = {id_: o["text"] for o in options if (id_ := _name(o.get("id"))) and isinstance(o.get("text"), str)}
    value = field.get("value")
    if isinstance(value, list):
        return [texts.get(item, item) if isinstance(item, str) else item for item in value]
    return texts.get(value, value) if isinstance(value, str) else value


def _stripe(payload: dict, enrichment: dict) -> View:
    obj = _dict(_dict(payload.get("data")).get("object"))
    event = {"event": _pick(payload, ("id", "type", "created"))}
    return _merged(_flatten(obj, "", 0).items(), _stripe_custom_fields(obj), event.items())


def _stripe_custom_fields(obj: dict) -> Iterator[tuple[str, object]]:
    # Checkout's custom_fields: [{key, type: text|numeric|dropdown, <type>: {value}}].
    for field in _dicts(obj.get("custom_fields")):
        key, kind = _name(field.get("key")), field.get("type")
        if key and isinstance(kind, str):
            yield f"custom_fields.{key}", _dict(field.get(kind)).get("value")


def _jotform(payload: dict, enrichment: dict) -> View:
    answers = _flatten(_parsed(payload.get("rawRequest")), "", 0)
    # Jotform names answers q<question id>_<unique name>; rules read the unique name.
    short = ((match[1], value) for key, value in answers.items() if (match := _JOTFORM_KEY.fullmatch(key)))
    return _merged(answers.items(), short, _pick(payload, ("submissionID", "formID", "formTitle")).items())


_JOTFORM_KEY = re.compile(r"q\d+_(.+)", re.DOTALL)


def _unbounce(payload: dict, enrichment: dict) -> View:
    fields = {key: _one_or_list(value) for key, value in _parsed(payload.get("data.json")).items()}
    return _merged(fields.items(), _pick(payload, ("page_id", "page_name", "page_url", "variant")).items())


def _webflow(payload: dict, enrichment: dict) -> View:
    form = _dict(payload.get("payload"))
    # "form_name", not "name": forms commonly have a field called name.
    envelope = _pick(form, ("id", "submittedAt", "formId", "siteId"))
    form_name = {"form_name": form["name"]} if "name" in form else {}
    return _merged(_flatten(_dict(form.get("data")), "", 0).items(), envelope.items(), form_name.items())


def _calendly(payload: dict, enrichment: dict) -> View:
    invitee = _dict(payload.get("payload"))
    own = _flatten({key: value for key, value in invitee.items() if key != "questions_and_answers"}, "", 0)
    answers = ((question, qa.get("answer"))
               for qa in _dicts(invitee.get("questions_and_answers")) if (question := _name(qa.get("question"))))
    return _merged(own.items(), answers)


def _dotted(payload: dict, enrichment: dict) -> View:
    return _merged(_paths(payload, "", 0))


def _paths(value: object, path: str, depth: int) -> Iterator[tuple[str, object]]:
    if isinstance(value, dict):
        children: Iterable[tuple[object, object]] = value.items()
    elif isinstance(value, list):
        if path and not any(isinstance(item, (dict, list)) for item in value):
            yield path, value
        children = enumerate(value)
    else:
        yield path, value
        return
    if depth < _MAX_DEPTH:
        for key, child in children:
            yield from _paths(child, f"{path}.{key}" if path else str(key), depth + 1)


_EXTRACTORS: dict[str, Callable[[dict, dict], View]] = {
    "flat": _flat,
    "fields_array": _fields_array,
    "meta_field_data": _meta_field_data,
    "typeform": _typeform,
    "tally": _tally,
    "stripe": _stripe,
    "gravity_forms": _flat,  # the Webhooks add-on posts the entry itself, keyed by field ID
    "jotform": _jotform,
    "unbounce": _unbounce,
    "webflow": _webflow,
    "calendly": _calendly,
    "dotted": _dotted,
}


# --- Helpers --------------------------------------------------------------------------------


def _merged(*parts: Iterable[tuple[object, object]]) -> View:
    """One view from (key, value) parts; the first part to give a key wins. Objects become
    dotted keys, so no value in a view is a dict."""
    view: View = {}
    for part in parts:
        for key, value in part:
            entries = _flatten(value, f"{key}.", 1).items() if isinstance(value, dict) else [(str(key), value)]
            for name, item in entries:
                view.setdefault(name, item)
    return view


def _flatten(value: dict, prefix: str, depth: int) -> View:
    if depth > _MAX_DEPTH:
        return {}
    nested: View = {}
    for key, item in value.items():
        if isinstance(item, dict):
            nested.update(_flatten(item, f"{prefix}{key}.", depth + 1))
    # A key sent with dots in it ("utm.source") wins over the same path built from nesting.
    return nested | {f"{prefix}{key}": item for key, item in value.items() if not isinstance(item, dict)}


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _dicts(value: object) -> list[dict]:
    return [item for item in _list(value) if isinstance(item, dict)]


def _name(value: object) -> str | None:
    """A usable key: a non-empty string, or an integer ID as text."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _name_in(item: dict, keys: tuple[str, ...]) -> str | None:
    """The first usable name among `keys` (a field's id, else its key...)."""
    return next((name for key in keys if (name := _name(item.get(key)))), None)


def _pick(source: dict, keys: tuple[str, ...]) -> dict:
    return {key: source[key] for key in keys if key in source}


def _typed_value(item: dict) -> object:
    kind = item.get("type")
    return item.get(kind) if isinstance(kind, str) else None


def _one_or_list(value: object) -> object:
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _parsed(value: object) -> dict:
    """A dict, or a JSON object still in its string form (the intake parser normally decodes
    Jotform's rawRequest and Unbounce's data.json before the payload is stored)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return _dict(value)
