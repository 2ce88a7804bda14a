"""What each kind of source sends, as data: content types, how it authenticates, where its
idempotency key lives and how its body is parsed. Formats: docs/wire-contracts.md."""

from dataclasses import dataclass
import hashlib
import json


class Auth:
    NONE = "none"  # public web form: origins, honeypot and throttles instead
    API_KEY = "api_key"  # X-API-Key header, stored hashed
    SIGNATURE = "signature"  # the provider's own HMAC scheme (ingestion.signatures)
    GENERIC_HMAC = "generic_hmac"  # header, algorithm and encoding configured per source
    URL_TOKEN = "url_token"  # ?token=... for senders that cannot sign, stored hashed


META_KIND = "meta_lead_ads"  # the one kind that answers GET (Meta's handshake) and is split per lead
WEB_FORM_KIND = "web_form"  # posted by visitors' browsers: hidden key field, redirects, the form script

HOUR, DAY = 3600, 86_400
CONTENT_HASH_PREFIX = "sha256:"

JSON = ("application/json",)
FORM = ("application/x-www-form-urlencoded",)
MULTIPART = ("multipart/form-data",)


@dataclass(frozen=True)
class Preset:
    kind: str
    label: str
    content_types: tuple[str, ...]
    auth: str
    signature_scheme: str = ""  # a key of ingestion.signatures.SCHEMES when auth is SIGNATURE
    idempotency_paths: tuple[str, ...] = ()  # dotted paths into the parsed payload, first found wins
    parser: str = "standard"  # standard | jotform | unbounce
    note: str = ""
    # For senders that may give no event ID: with none (no header, hidden field or path), the
    # key is a hash of the content, "sha256:<hex>", and a repeat counts as the same event for
    # this many seconds (0: never hashed). See content_hash_key().
    content_hash_seconds: int = 0

    @property
    def replay_window(self) -> str:
        windows = {"stripe": "300 s", "webflow": "5 min", "calendly": "180 s"}
        return windows.get(self.signature_scheme, "none")


PRESETS: dict[str, Preset] = {
    p.kind: p
    for p in (
        # A plain <form> resubmitted (double click, back and submit again) sends the same
        # fields within minutes; the same person sending the same words an hour later is news.
        Preset(WEB_FORM_KIND, "Web form (public)", JSON + FORM + MULTIPART, Auth.NONE, content_hash_seconds=HOUR),
        Preset("json_webhook", "Generic JSON webhook", JSON, Auth.API_KEY),
        Preset("stripe", "Stripe", JSON, Auth.SIGNATURE, "stripe", ("id",)),
        Preset(META_KIND, "Meta Lead Ads", JSON, Auth.SIGNATURE, "meta",
               ("entry.*.changes.*.value.leadgen_id",),
               note="IDs only: the worker fetches each lead from the Graph API."),
        Preset("typeform", "Typeform", JSON, Auth.SIGNATURE, "typeform", ("event_id", "form_response.token")),
        Preset("tally", "Tally", JSON, Auth.SIGNATURE, "tally", ("eventId",)),
        Preset("webflow", "Webflow", JSON, Auth.SIGNATURE, "webflow", ("payload.id",)),
        Preset("calendly", "Calendly", JSON, Auth.SIGNATURE, "calendly", ("payload.uri",)),
        # Gravity Forms and Jotform send their entry's ID unless the request body was customised
        # without it; Unbounce sends none at all and retries a failed delivery.
        Preset("gravity_forms", "Gravity Forms", JSON + FORM, Auth.URL_TOKEN, "", ("id",), content_hash_seconds=DAY),
        Preset("jotform", "Jotform", MULTIPART + FORM, Auth.URL_TOKEN, "", ("submissionID",), parser="jotform",
               content_hash_seconds=DAY),
        Preset("unbounce", "Unbounce", FORM, Auth.URL_TOKEN, "", (), parser="unbounce", content_hash_seconds=DAY),
    )
}

KIND_CHOICES = [(p.kind, p.label) for p in PRESETS.values()]
AUTH_CHOICES = [
    ("", "Preset's default"),
    (Auth.NONE, "None (public web form)"),
    (Auth.API_KEY, "API key header"),
    (Auth.SIGNATURE, "Provider signature"),
    (Auth.GENERIC_HMAC, "Generic HMAC"),
    (Auth.URL_TOKEN, "URL token"),
]


def idempotency_key_from(payload: object, paths: tuple[str, ...]) -> str | None:
    """The first key found. A '*' step collects over a list; several values found are joined
    with commas."""
    for path in paths:
        values = [str(v) for v in _collect(payload, path.split(".")) if v not in (None, "", [], {})]
        if values:
            return ",".join(values)[:255]
    return None


def _collect(value: object, parts: list[str]) -> list:
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if head == "*" and isinstance(value, list):
        return [found for item in value for found in _collect(item, rest)]
    if isinstance(value, dict) and head in value:
        return _collect(value[head], rest)
    return []


def content_hash_key(payload: dict, notes: list[str]) -> str:
    """"sha256:<hex>" of the parsed payload as canonical JSON (sorted keys, no spaces, UTF-8),
    with the intake's notes (the names of dropped uploads). The parsed payload, not the raw
    bytes, because a browser's multipart boundary changes on every send of the same form."""
    canonical = json.dumps([payload, notes], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return CONTENT_HASH_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()
