"""Is this webhook really from its provider? Checked on the raw body bytes, before anything
parses them, and always compared in constant time.

Framework-free on purpose: the intake view passes `request.body` and `request.headers`, the
sandbox and the benchmarks call `sign()` to build requests a real provider would send.

Formats follow each provider's public documentation (see docs/wire-contracts.md, "Signature schemes"):
Stripe "Check the webhook signatures / verify manually", Meta Graph API "Webhooks: validate
payloads", Typeform "Secure your webhooks", Tally help "Webhooks: add a signing secret", Webflow
"Verifying requests", Calendly "Webhook signatures".
"""

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import hashlib
import hmac
from secrets import token_urlsafe
import time

_REASONS = {
    "no_secret": "No signing secret is configured for this source.",
    "missing_signature": "The request carries no signature.",
    "malformed_signature": "The signature header cannot be read.",
    "missing_timestamp": "The request carries no signature timestamp.",
    "expired_timestamp": "The signature timestamp is outside the accepted window.",
    "bad_signature": "The signature does not match the body.",
}


class SignatureError(Exception):
    """Refused; .reason is a terse machine code ('missing_signature', 'bad_signature',
    'expired_timestamp', 'malformed_signature', 'missing_timestamp', 'no_secret') and str() a
    short human sentence. Never include the secret or the expected digest in the message."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or _REASONS.get(reason, "The signature was refused."))
        self.reason = reason


@dataclass(frozen=True)
class GenericHmacOptions:
    header: str  # e.g. "X-Signature"
    algorithm: str = "sha256"  # sha1, sha256, sha512
    encoding: str = "hex"  # "hex" or "base64"
    prefix: str = ""  # e.g. "sha256=", stripped before comparing
    timestamp_header: str = ""  # if set, the message is f"{timestamp}.{body}" (unix seconds)
    window_seconds: int = 300

    def __post_init__(self) -> None:
        # A bad configuration is the operator's bug, not the sender's: fail loudly, not as a 401.
        if not self.header.strip():
            raise ValueError("GenericHmacOptions.header must name the signature header.")
        if self.algorithm not in ("sha1", "sha256", "sha512"):
            raise ValueError(f"Unsupported HMAC algorithm {self.algorithm!r}.")
        if self.encoding not in ("hex", "base64"):
            raise ValueError(f"Unsupported signature encoding {self.encoding!r}.")
        if self.window_seconds <= 0:
            raise ValueError("GenericHmacOptions.window_seconds must be positive.")


# --- Signed messages: the one place each format is written, used by both sign() and verify().


def _body_message(timestamp: str, body: bytes) -> bytes:
    # Meta, Typeform, Tally, untimed generic: the raw body alone.
    return body


def _dot_message(timestamp: str, body: bytes) -> bytes:
    # Stripe and Calendly sign "{t}.{raw body}"; timed generic HMAC uses the same shape.
    return timestamp.encode("ascii") + b"." + body


def _colon_message(timestamp: str, body: bytes) -> bytes:
    # Webflow signs "{x-webflow-timestamp}:{raw body}", with a colon, not a dot.
    return timestamp.encode("ascii") + b":" + body


@dataclass(frozen=True)
class _Spec:
    header: str
    message: Callable[[str, bytes], bytes] = _body_message
    algorithm: str = "sha256"
    encoding: str = "hex"
    prefix: str = ""
    composite: bool = False  # "t=<unix>,v1=<hex>[,v1=...]" in one header (Stripe, Calendly)
    timestamp_header: str = ""  # timestamp in its own header (Webflow, timed generic)
    timestamp_per_second: int = 1  # Webflow counts milliseconds
    window_seconds: int = 0

    @property
    def timed(self) -> bool:
        return self.composite or bool(self.timestamp_header)


_SPECS: dict[str, _Spec] = {
    "stripe": _Spec(header="Stripe-Signature", message=_dot_message, composite=True, window_seconds=300),
    "meta": _Spec(header="X-Hub-Signature-256", prefix="sha256="),
    "typeform": _Spec(header="Typeform-Signature", prefix="sha256=", encoding="base64"),
    "tally": _Spec(header="Tally-Signature", encoding="base64"),
    "webflow": _Spec(
        header="x-webflow-signature",
        message=_colon_message,
        timestamp_header="x-webflow-timestamp",
        timestamp_per_second=1000,
        window_seconds=300,
    ),
    # Calendly's own example rejects signatures older than 3 minutes.
    "calendly": _Spec(
        header="Calendly-Webhook-Signature", message=_dot_message, composite=True, window_seconds=180
    ),
}

# Scheme name -> the header it reads, for docs and the admin.
SCHEMES: dict[str, str] = {name: spec.header for name, spec in _SPECS.items()}
SCHEMES["generic_hmac"] = "(configured per source)"


def _spec_for(scheme: str, options: GenericHmacOptions | None) -> _Spec:
    # `options` is only read for generic_hmac: the named schemes' formats are fixed by the provider.
    if scheme == "generic_hmac":
        if options is None:
            raise ValueError("The generic_hmac scheme needs GenericHmacOptions.")
        return _generic_spec(options)
    if scheme not in _SPECS:
        raise ValueError(f"Unknown signature scheme {scheme!r}.")
    return _SPECS[scheme]


def _generic_spec(options: GenericHmacOptions) -> _Spec:
    return _Spec(
        header=options.header,
        message=_dot_message if options.timestamp_header else _body_message,
        algorithm=options.algorithm,
        encoding=options.encoding,
        prefix=options.prefix,
        timestamp_header=options.timestamp_header,
        window_seconds=options.window_seconds,
    )


# --- Verifying


def verify(
    scheme: str,
    *,
    secrets: Sequence[str],
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
    options: GenericHmacOptions | None = None,
) -> None:
    """Return quietly if the request is authentic, raise SignatureError otherwise. `secrets`
    holds the active secrets (two during a rotation): a signature valid for any one is accepted."""
    spec = _spec_for(scheme, options)
    keys = _keys(secrets)
    timestamp, candidates = _read(spec, headers)
    message = spec.message(timestamp, _raw(body))
    if not _matches_any(spec, keys, message, candidates):
        raise SignatureError("bad_signature")
    # Checked after the signature so that 'expired_timestamp' always means an authentic but
    # stale request (a replay or a skewed clock) and a forgery always reads 'bad_signature'.
    if spec.timed:
        _check_window(spec, timestamp, time.time() if now is None else now)


def _keys(secrets: Sequence[str]) -> list[bytes]:
    # A blank secret would make an HMAC anyone can compute: treat it as no secret at all.
    keys = [secret.encode() for secret in secrets if secret]
    if not keys:
        raise SignatureError("no_secret")
    return keys


def _raw(body: bytes) -> bytes:
    # A str body means someone decoded the bytes already; the provider signed the bytes.
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError("verify() and sign() need the raw body bytes, not a decoded string.")
    return bytes(body)


def _header(headers: Mapping[str, str], name: str) -> str:
    # HTTP header names are case-insensitive; a plain dict is not, so look it up by hand.
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value.strip()
    return ""


def _read(spec: _Spec, headers: Mapping[str, str]) -> tuple[str, list[bytes]]:
    """The signed timestamp ("" for untimed schemes) and the candidate digests."""
    value = _header(headers, spec.header)
    if not value:
        raise SignatureError("missing_signature", f"The request has no {spec.header} header.")
    if spec.composite:
        return _read_composite(spec, value)
    timestamp = _read_timestamp_header(spec, headers) if spec.timestamp_header else ""
    if not value.startswith(spec.prefix):
        raise SignatureError("malformed_signature", f"The {spec.header} header lacks the '{spec.prefix}' prefix.")
    return timestamp, [_decode(spec, value[len(spec.prefix):])]


def _read_composite(spec: _Spec, value: str) -> tuple[str, list[bytes]]:
    """Stripe's own reading of "t=<unix>,v1=<hex>[,v1=<hex>...]", rule for rule, so that we
    accept and refuse exactly what Stripe's library does (stripe-python, stripe/_webhook.py,
    WebhookSignature._get_timestamp_and_signatures and verify_header):

    - the header is split on "," and each item on "=" at most twice; an item's value is the text
      between its first and second "=" (`item.split("=", 2)[1]`);
    - keys are compared exactly: nothing is stripped, so in "t=1, v1=..." the second key is
      " v1" and there is no v1 at all; items with other keys (v0 test signatures, the empty item
      after a trailing comma) are ignored, but a bare "t" or "v1" with no "=" is unreadable;
    - the first "t" is the timestamp, read with int() and signed as "%d" (later t's are ignored);
    - every "v1" value is a candidate, compared as text with the lowercase hex digest, so
      uppercase hex, an empty or a non-hex value simply does not match, and one match suffices.
    (Where stripe-python raises TypeError, on a non-ASCII v1 value, we count it as no match.)
    Calendly documents the same format and is read the same way."""
    items = [item.split("=", 2) for item in value.split(",")]
    if not any(len(parts) > 1 for parts in items) or any(len(parts) == 1 and parts[0] in ("t", "v1") for parts in items):
        raise SignatureError("malformed_signature", f"The {spec.header} header is not a list of key=value.")
    stamps = [parts[1] for parts in items if parts[0] == "t"]
    if not stamps:
        raise SignatureError("missing_timestamp", f"The {spec.header} header has no t= timestamp.")
    try:
        timestamp = int(stamps[0])
    except ValueError:
        raise SignatureError("malformed_signature", f"The {spec.header} timestamp is not a whole number.") from None
    candidates = [parts[1].encode() for parts in items if parts[0] == "v1"]
    if not candidates:
        raise SignatureError("missing_signature", f"The {spec.header} header has no v1 signature.")
    return str(timestamp), candidates


def _read_timestamp_header(spec: _Spec, headers: Mapping[str, str]) -> str:
    value = _header(headers, spec.timestamp_header)
    if not value:
        raise SignatureError("missing_timestamp", f"The request has no {spec.timestamp_header} header.")
    return _checked_timestamp(spec, value)


def _checked_timestamp(spec: _Spec, text: str) -> str:
    # Kept as the exact text received, because that text is what the sender signed. Fifteen
    # digits hold any millisecond timestamp for millennia and keep int() cheap.
    if not (text.isascii() and text.isdigit() and len(text) <= 15):
        raise SignatureError("malformed_signature", f"The {spec.header} timestamp is not a whole number.")
    return text


def _decode(spec: _Spec, text: str) -> bytes:
    try:
        digest = bytes.fromhex(text) if spec.encoding == "hex" else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        message = f"The {spec.header} value is not {spec.encoding}."
        raise SignatureError("malformed_signature", message) from None
    # The digest length is public (it follows from the algorithm), so checking it leaks nothing.
    if len(digest) != hashlib.new(spec.algorithm).digest_size:
        raise SignatureError("malformed_signature", f"The {spec.header} value has the wrong length.")
    return digest


def _matches_any(spec: _Spec, keys: list[bytes], message: bytes, candidates: list[bytes]) -> bool:
    matched = False
    for key in keys:
        expected = _digest(spec, key, message)
        if spec.composite:  # compared as the hex text itself (see _read_composite)
            expected = expected.hex().encode()
        for candidate in candidates:
            # No early exit: the time taken must not tell which secret or which value matched.
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def _check_window(spec: _Spec, timestamp: str, now: float) -> None:
    # Symmetric: a timestamp far in the future is as suspicious as an old one (stripe-python
    # itself refuses only old ones; a clock that far off is worth refusing). In whole units, so
    # that any integer Stripe's int() reading accepts compares without a float overflow.
    skew = abs(int(now * spec.timestamp_per_second) - int(timestamp))
    if skew > spec.window_seconds * spec.timestamp_per_second:
        message = f"The signature timestamp is more than {spec.window_seconds} s from now."
        raise SignatureError("expired_timestamp", message)


def _digest(spec: _Spec, key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, spec.algorithm).digest()


# --- Signing, as the provider would (sandbox, demo, tests, benchmarks)


def sign(
    scheme: str,
    *,
    secret: str,
    body: bytes,
    timestamp: float | None = None,
    options: GenericHmacOptions | None = None,
) -> dict[str, str]:
    """The signature headers a provider would send with `body`. `timestamp` is unix seconds
    (default: now); Webflow's header is written in milliseconds from it."""
    spec = _spec_for(scheme, options)
    if not secret:
        raise SignatureError("no_secret")
    stamp = _format_timestamp(spec, time.time() if timestamp is None else timestamp)
    digest = _encode(spec, _digest(spec, secret.encode(), spec.message(stamp, _raw(body))))
    if spec.composite:
        return {spec.header: f"t={stamp},v1={digest}"}
    headers = {spec.header: spec.prefix + digest}
    if spec.timestamp_header:
        headers[spec.timestamp_header] = stamp
    return headers


def _format_timestamp(spec: _Spec, seconds: float) -> str:
    return str(int(seconds * spec.timestamp_per_second)) if spec.timed else ""


def _encode(spec: _Spec, digest: bytes) -> str:
    return digest.hex() if spec.encoding == "hex" else base64.b64encode(digest).decode("ascii")


# --- API keys, for sources that cannot sign


def api_key_hash(key: str) -> str:
    # API keys are random high-entropy tokens (256 bits from new_api_key), not human passwords:
    # there is nothing to guess, so a fast unsalted SHA-256 is right and keeps lookups cheap.
    # Passwords would need a slow, salted KDF instead.
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_matches(key: str, hashes: Sequence[str]) -> bool:
    """Whether `key` hashes to any of `hashes` (two during a rotation), in constant time."""
    if not key:
        return False
    candidate = api_key_hash(key).encode()
    matched = False
    for stored in hashes:
        # No early exit, and bytes so that a stray non-ASCII stored value cannot raise.
        matched |= hmac.compare_digest(candidate, stored.encode())
    return matched


def new_api_key() -> str:
    # The prefix lets secret scanners and people recognise a leaked key; 32 bytes = 256 bits.
    return "csk_" + token_urlsafe(32)
