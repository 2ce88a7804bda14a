"""Reading and parsing request bodies: size limits, content types, and provider quirks
(Jotform's rawRequest JSON inside multipart, Unbounce's data.json of arrays).

What a parsed body may hold (README, "Intake limits"): at most MAX_DEPTH levels of nesting and
MAX_VALUES values in all, and form or multipart bodies at most DATA_UPLOAD_MAX_NUMBER_FIELDS
fields (Django's setting, 1,000). Text is made storable everywhere, PostgreSQL included: NUL
characters (U+0000) are removed and unpaired surrogates become U+FFFD, with a note saying how
many; the raw body is always kept as received."""

from dataclasses import dataclass, field
from io import BytesIO
import json
import re
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from ingestion.presets import Preset

# Providers' payloads nest 6 levels at most (tests/fixtures/webhooks/) and hold a few hundred
# values; these limits leave room for far larger forms while bounding the work a body can cause
# downstream (every value is flattened, mapped and checked for drift). json.loads itself gives up
# near 1,000 levels with a RecursionError, which is refused with the same code.
MAX_DEPTH = 32
MAX_VALUES = 10_000


class IntakeError(Exception):
    """A refused request: HTTP status, a stable code clients can branch on, plain words, and
    the per-source counter it bumps. The body is always {"error": code, "detail": text}, plus
    {"fields": {name: message}} when the refusal is about particular form fields (the web-form
    script shows each message beside its field)."""

    def __init__(self, status: int, code: str, detail: str, outcome: str | None = "bad_request", *,
                 headers: dict[str, str] | None = None, reason: str = "", fields: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.outcome = status, code, detail, outcome
        self.headers = headers or {}
        self.reason = reason
        self.fields = fields or {}

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.fields:
            body["fields"] = self.fields
        return body


@dataclass
class Parsed:
    payload: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def read_body(stream: BinaryIO, content_length: str | None, limit: int) -> bytes:
    """Read at most `limit` bytes. A declared length over the limit is refused before reading;
    a chunked body with no length is read until it passes the limit, then refused."""
    too_large = IntakeError(413, "payload_too_large", f"The body exceeds this source's limit of {limit} bytes.", "oversize")
    if content_length:
        try:
            declared = int(content_length)
        except ValueError as exc:
            raise IntakeError(400, "bad_content_length", "Content-Length is not a number.") from exc
        if declared > limit:
            raise too_large
        return stream.read(declared)
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def parse_body(body: bytes, content_type: str, preset: Preset) -> Parsed:
    media_type = content_type.split(";")[0].strip().lower()
    if not body:
        raise IntakeError(400, "empty_body", "The request body is empty.")
    if media_type not in preset.content_types and not (media_type.endswith("+json") and "application/json" in preset.content_types):
        accepted = ", ".join(preset.content_types)
        raise IntakeError(415, "unsupported_media_type",
                          f"Content-Type '{media_type or '(none)'}' is not accepted by this source; send {accepted}.")
    if media_type == "multipart/form-data":
        parsed = _parse_multipart(body, content_type)
    elif media_type == "application/x-www-form-urlencoded":
        parsed = Parsed(_parse_form(body))
    else:
        parsed = Parsed(parse_json_object(body))
    parsed = _PROVIDER_PARSERS.get(preset.parser, _as_is)(parsed)
    return _storable(parsed)


def parse_json_object(body: bytes | str, what: str = "The body") -> dict[str, Any]:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        payload = json.loads(text)
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "bad_encoding", f"{what} is not valid UTF-8: {exc.reason}.") from exc
    except json.JSONDecodeError as exc:
        raise IntakeError(400, "malformed_json", f"{what} is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise _too_deep(what) from exc
    if not isinstance(payload, dict):
        raise IntakeError(400, "invalid_payload", f"{what} must be a JSON object.")
    return payload


def _too_deep(what: str) -> IntakeError:
    return IntakeError(400, "invalid_payload", f"{what} is nested deeper than {MAX_DEPTH} levels.")


def _parse_form(body: bytes) -> dict[str, Any]:
    limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=limit)
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "bad_encoding", f"The body is not valid UTF-8: {exc.reason}.") from exc
    except ValueError as exc:  # parse_qs: "Max number of fields exceeded"
        raise _too_many_fields(limit) from exc
    return _single_values(fields.items())


def _too_many_fields(limit: int) -> IntakeError:
    return IntakeError(400, "invalid_payload", f"The body has more than {limit} fields.")


def _single_values(items) -> dict[str, Any]:
    # One value stays a string; a repeated field (checkboxes) stays a list.
    return {key: values[0] if len(values) == 1 else list(values) for key, values in items}


class _DropFiles(FileUploadHandler):
    """Uploaded files are never stored: we keep their field and file names only."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped: list[str] = []

    def new_file(self, field_name, file_name, *args, **kwargs) -> None:
        self.dropped.append(f"{field_name}={file_name}")
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start) -> None:
        return None

    def file_complete(self, file_size) -> None:
        return None


def _parse_multipart(body: bytes, content_type: str) -> Parsed:
    handler = _DropFiles()
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    try:
        data, _files = MultiPartParser(meta, BytesIO(body), [handler], "utf-8").parse()
    except TooManyFieldsSent as exc:
        raise _too_many_fields(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS) from exc
    except (TooManyFilesSent, RequestDataTooBig) as exc:
        # Django's own guards (DATA_UPLOAD_MAX_NUMBER_FILES, DATA_UPLOAD_MAX_MEMORY_SIZE).
        raise IntakeError(400, "invalid_payload", f"The multipart body is refused: {exc}") from exc
    except (MultiPartParserError, ValueError) as exc:
        raise IntakeError(400, "malformed_multipart", f"The multipart body cannot be read: {exc}.") from exc
    notes = [f"dropped uploaded file {name}" for name in handler.dropped]
    return Parsed(_single_values(data.lists()), notes)


def _jotform(parsed: Parsed) -> Parsed:
    # Jotform posts its answers as a JSON string in the rawRequest form field.
    raw = parsed.payload.get("rawRequest")
    if isinstance(raw, str):
        parsed.payload["rawRequest"] = parse_json_object(raw, "Jotform's rawRequest field")
    return parsed


def _unbounce(parsed: Parsed) -> Parsed:
    # Unbounce posts form-encoded fields; data.json is a JSON string whose values are arrays.
    raw = parsed.payload.get("data.json")
    if isinstance(raw, str):
        parsed.payload["data.json"] = parse_json_object(raw, "Unbounce's data.json field")
    return parsed


def _as_is(parsed: Parsed) -> Parsed:
    return parsed


def meta_leads_split(payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Meta batches leads: one notification may name several leadgen_ids, in several changes of
    several entries. Returns (leadgen_id, payload) per lead, in order, each payload being the
    notification narrowed to that lead's entry and change; an ID named twice counts once."""
    leads: dict[str, dict[str, Any]] = {}
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            leadgen_id = str(value.get("leadgen_id") or "") if isinstance(value, dict) else ""
            if leadgen_id and leadgen_id not in leads:
                leads[leadgen_id] = {**payload, "entry": [{**entry, "changes": [change]}]}
    return list(leads.items())


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


# --- Limits and storable text ---------------------------------------------------------------

# json.loads joins a valid surrogate pair into one character, so any surrogate left is unpaired
# (a JavaScript string cut in the middle of an emoji). UTF-8 cannot encode it and PostgreSQL
# refuses it, as it refuses NUL in text and jsonb.
_UNPAIRED_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _storable(parsed: Parsed) -> Parsed:
    """Enforce the limits, then make the text storable. The payload is only copied when some
    text needs fixing: one scan suffices for almost every request (a quarter of the cost)."""
    if not _scan(parsed.payload):
        return parsed
    fixer = _TextFixer()
    return Parsed(fixer.fixed(parsed.payload), parsed.notes + fixer.notes())


def _scan(payload: dict[str, Any]) -> bool:
    """Raises IntakeError past MAX_DEPTH or MAX_VALUES; returns whether any key or value holds
    a NUL or an unpaired surrogate. Iterative, so no depth a body can reach costs the stack."""
    stack: list[tuple[Any, int, str]] = [(payload, 0, "")]
    values, dirty = 0, False
    while stack:
        value, depth, under = stack.pop()
        if depth >= MAX_DEPTH:
            raise _too_deep(f"The payload (in '{under}')" if under else "The payload")
        values += len(value)
        if values > MAX_VALUES:
            raise IntakeError(400, "invalid_payload", f"The payload holds more than {MAX_VALUES} values.")
        pairs = value.items() if isinstance(value, dict) else ((None, item) for item in value)
        for key, item in pairs:
            dirty = dirty or (key is not None and _unstorable(key))
            if isinstance(item, str):
                dirty = dirty or _unstorable(item)
            elif isinstance(item, dict | list):
                stack.append((item, depth + 1, under or str(key)[:100]))
    return dirty


def _unstorable(text: str) -> bool:
    # ASCII text cannot hold a surrogate: the regex only runs on the rest.
    return "\x00" in text or (not text.isascii() and _UNPAIRED_SURROGATE.search(text) is not None)


class _TextFixer:
    """A copy of the payload whose text PostgreSQL can store, counting what it changed."""

    def __init__(self) -> None:
        self.nul = 0
        self.surrogates = 0

    def fixed(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.fixed(item) for item in value]
        if isinstance(value, dict):
            return {self.text(key): self.fixed(item) for key, item in value.items()}
        return value

    def text(self, value: str) -> str:
        if "\x00" in value:
            self.nul += value.count("\x00")
            value = value.replace("\x00", "")
        if not value.isascii():
            value, replaced = _UNPAIRED_SURROGATE.subn("\ufffd", value)
            self.surrogates += replaced
        return value

    def notes(self) -> list[str]:
        notes = []
        if self.nul:
            notes.append(f"removed {self.nul} NUL character(s) (U+0000) from the payload; the raw body keeps them")
        if self.surrogates:
            notes.append(f"replaced {self.surrogates} unpaired surrogate(s) with U+FFFD in the payload; "
                         "the raw body keeps them")
        return notes


_PROVIDER_PARSERS = {"jotform": _jotform, "unbounce": _unbounce}
