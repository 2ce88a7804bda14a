"""Reading and parsing request bodies: size limits, content types, and provider quirks
(Jotform's rawRequest JSON inside multipart, Unbounce's data.json of arrays)."""

from dataclasses import dataclass, field
from io import BytesIO
import json
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http.multipartparser import MultiPartParser, MultiPartParserError

from ingestion.presets import Preset


class IntakeError(Exception):
    """A refused request: HTTP status, a stable code clients can branch on, plain words, and
    the per-source counter it bumps. The body is always {"error": code, "detail": text}."""

    def __init__(self, status: int, code: str, detail: str, outcome: str | None = "bad_request", *,
                 headers: dict[str, str] | None = None, reason: str = "") -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.outcome = status, code, detail, outcome
        self.headers = headers or {}
        self.reason = reason

    def as_json(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


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
    return _PROVIDER_PARSERS.get(preset.parser, _as_is)(parsed)


def parse_json_object(body: bytes | str, what: str = "The body") -> dict[str, Any]:
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        payload = json.loads(text)
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "bad_encoding", f"{what} is not valid UTF-8: {exc.reason}.") from exc
    except json.JSONDecodeError as exc:
        raise IntakeError(400, "malformed_json", f"{what} is not valid JSON: {exc}.") from exc
    if not isinstance(payload, dict):
        raise IntakeError(400, "invalid_payload", f"{what} must be a JSON object.")
    return payload


def _parse_form(body: bytes) -> dict[str, Any]:
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError as exc:
        raise IntakeError(400, "bad_encoding", f"The body is not valid UTF-8: {exc.reason}.") from exc
    return _single_values(fields.items())


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


_PROVIDER_PARSERS = {"jotform": _jotform, "unbounce": _unbounce}
