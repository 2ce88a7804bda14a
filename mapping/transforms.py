"""Transform chains: small steps that normalize one lead field, configured as JSON in the admin.

A chain is a list of steps such as [{"op": "trim"}, {"op": "phone_e164", "region": "GB"}].
Every op keeps two promises, which tests/mapping/test_transforms.py checks with hypothesis:

- Total: for any JSON-like input a step returns a value or raises TransformError, whose text is
  a sentence a reviewer can act on. No other exception escapes.
- Idempotent: a chain run on its own output returns that output unchanged, so reprocessing a
  lead never drifts. The one exception is `concat`, which adds text by design.

Conventions shared by all ops:
- None, '' and [] mean "missing" and pass through unchanged, except through `constant`,
  `default` and `concat`. A rule's `required` and `default` handle missing values.
- A list holding exactly one single value is unwrapped, because form fields often arrive that
  way. Other lists and objects are refused, except by `join` and `default`.
- Numbers become text with str(). Booleans become "true"/"false", their JSON spelling, which
  `boolean` reads back.
- Ops that parse (phones, countries, dates, numbers, picklists, names, UTM values) read their
  input trimmed. A blank input becomes ''.
"""

from collections.abc import Callable
from dataclasses import dataclass
import datetime as dt
import decimal
import functools
import math
import re
from typing import Any
import unicodedata
import zoneinfo

import phonenumbers
import pycountry


class TransformError(ValueError):
    """A value that a step cannot normalize. str() gives a plain sentence for a reviewer."""


@dataclass(frozen=True)
class Context:
    """Per-source settings for the steps that need them."""

    default_region: str = ""  # ISO 3166-1 alpha-2 region for phone numbers written without +code
    timezone: str = "UTC"  # IANA zone for dates and times written without an offset


Step = Callable[[Any, dict[str, Any], Context], Any]


@dataclass(frozen=True)
class Option:
    name: str
    kind: str  # a key of KINDS
    help: str
    required: bool = False
    default: Any = None
    check: Callable[[Any], str] | None = None  # '' when the value is fine, else the reason


@dataclass(frozen=True)
class OpSpec:
    name: str
    description: str
    function: Step
    options: tuple[Option, ...] = ()
    takes_missing: bool = False  # also runs on None, '' and []
    single: bool = True  # unwraps a one-item list and refuses other lists and objects
    parses: bool = False  # reads trimmed input, and a blank input becomes ''
    idempotent: bool = True
    check: Callable[[dict[str, Any]], list[str]] | None = None  # checks that span several options


# --- Running a chain ------------------------------------------------------------------------


def validate_chain(chain: object) -> list[str]:
    """Configuration problems as sentences for the admin. Returns [] when the chain is valid."""
    if not isinstance(chain, list):
        return ['The transforms must be a list of steps, such as [{"op": "trim"}].']
    return [problem for number, step in enumerate(chain, 1) for problem in _step_problems(number, step)]


def context_errors(context: Context) -> dict[str, str]:
    """Problems with a mapping's default region or time zone, per setting ({} when both are
    usable): the one check behind MappingSet.clean() and the transform steps that use them."""
    errors = {"default_region": _region_problem(context.default_region) if context.default_region else "",
              "timezone": _zone_problem(context.timezone)}
    return {name: problem for name, problem in errors.items() if problem}


def apply_chain(value: object, chain: list[dict], *, context: Context = Context()) -> object:
    """Run the steps in order. A bad chain is reported as a TransformError, not run."""
    if problems := validate_chain(chain):
        raise TransformError(problems[0])
    for step in chain:
        spec = OPS[step["op"]]
        value = _run_step(value, spec, _options(spec, step), context)
    return value


def _run_step(value: object, spec: OpSpec, options: dict[str, Any], context: Context) -> object:
    if _is_missing(value) and not spec.takes_missing:
        return value
    if spec.single and not _is_missing(value):
        value = _single(value)
    if spec.parses and isinstance(value, str):
        value = value.strip()
    if _is_missing(value) and not spec.takes_missing:
        return value
    return spec.function(value, options, context)


def _options(spec: OpSpec, step: dict) -> dict[str, Any]:
    return {option.name: option.default if step.get(option.name) is None else step[option.name]
            for option in spec.options}


# --- Checking a chain -----------------------------------------------------------------------

KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda v: isinstance(v, str), "text"),
    "whole number": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "true/false": (lambda v: isinstance(v, bool), "true or false"),
    "list of text": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v), "a list of text"),
    "text map": (lambda v: isinstance(v, dict) and all(isinstance(i, str) for i in (*v, *v.values())),
                 "an object whose keys and values are text"),
    "group": (lambda v: isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool)),
              "a group number or name"),
    "value": (lambda v: isinstance(v, (str, int, float)), "text, a number or true/false"),
}


def _step_problems(number: int, step: object) -> list[str]:
    if not isinstance(step, dict) or not isinstance(step.get("op"), str):
        return [f'Step {number} must be an object with an "op", such as {{"op": "trim"}}.']
    spec = OPS.get(step["op"])
    if spec is None:
        return [f"Step {number}: {_show(step['op'])} is not a known op."]
    return [f"Step {number} ({spec.name}): {problem}" for problem in _option_problems(spec, step)]


def _option_problems(spec: OpSpec, step: dict) -> list[str]:
    known = {option.name for option in spec.options}
    problems = [f"{_show(key)} is not an option of this op." for key in step if key != "op" and key not in known]
    for option in spec.options:
        if step.get(option.name) is not None:  # null means "not set", as admin forms send it
            problems += _value_problems(option, step[option.name])
        elif option.required:
            problems.append(f"the option '{option.name}' is required.")
    if not problems and spec.check:
        problems = spec.check(_options(spec, step))
    return problems


def _value_problems(option: Option, value: object) -> list[str]:
    accepts, phrase = KINDS[option.kind]
    if not accepts(value):
        return [f"'{option.name}' must be {phrase}."]
    reason = option.check(value) if option.check else ""
    return [reason] if reason else []


# --- Values -----------------------------------------------------------------------------------


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, (str, list)) and len(value) == 0)


def _is_single(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float))  # bool is an int


def _single(value: object) -> object:
    if isinstance(value, list) and len(value) == 1 and _is_single(value[0]):
        return value[0]
    if isinstance(value, list):
        raise TransformError(f"Expected a single value but got a list of {len(value)}.")
    if isinstance(value, dict):
        raise TransformError("Expected a single value but got an object with fields.")
    return value


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        try:
            return str(value)
        except ValueError:  # Python refuses to print ints of more than 4300 digits
            raise TransformError("The number has too many digits.") from None
    raise TransformError(f"Expected text or a number but got {type(value).__name__}.")


def _show(value: object) -> str:
    """A value quoted for a message, shortened and with control characters escaped."""
    try:
        text = _text(value)
    except TransformError:
        return "the value"
    if not text.isprintable():
        text = repr(text)[1:-1]
    return f"'{text[:40]}…'" if len(text) > 40 else f"'{text}'"


def _settle(change: Callable[[str], str], text: str) -> str:
    """Apply `change` until nothing changes. A few Unicode case mappings (dotted capital I,
    final sigma) shift again on a second pass, and a chain must be idempotent."""
    for _ in range(4):
        changed = change(text)
        if changed == text:
            return text
        text = changed
    raise TransformError(f"The letters in {_show(text)} do not settle on one spelling.")


# --- Text ops ---------------------------------------------------------------------------------


def _trim(value: object, options: dict, context: Context) -> str:
    return _text(value).strip()


def _collapse_whitespace(value: object, options: dict, context: Context) -> str:
    return " ".join(_text(value).split())


def _lower(value: object, options: dict, context: Context) -> str:
    return _settle(str.lower, _text(value))


def _upper(value: object, options: dict, context: Context) -> str:
    return _settle(str.upper, _text(value))


# A word starts the text or follows a space, hyphen, apostrophe, dot or bracket, so that
# "jean-luc o'neil" becomes "Jean-Luc O'Neil" while "3rd" stays "3rd" (str.title gives "3Rd").
_WORD_START = re.compile(r"(^|[\s\-'’.(/])(\w)")


def _name_case(text: str) -> str:
    return _WORD_START.sub(lambda m: m[1] + m[2].title(), text.lower())


def _title(value: object, options: dict, context: Context) -> str:
    return _settle(_name_case, _text(value))


def _truncate(value: object, options: dict, context: Context) -> str:
    text = _text(value)
    return text[: options["length"]].rstrip() if len(text) > options["length"] else text


def _regex_extract(value: object, options: dict, context: Context) -> str:
    text, group = _text(value), options["group"]
    match = re.search(options["pattern"], text)
    if match is None:
        raise TransformError(f"{_show(text)} does not match the pattern {_show(options['pattern'])}.")
    if match.group(group) is None:
        raise TransformError(f"{_show(text)} matches the pattern, but group {_show(group)} is empty.")
    return match.group(group)


def _pattern_problems(options: dict) -> list[str]:
    try:
        compiled = re.compile(options["pattern"])
    except (re.error, OverflowError, RecursionError) as exc:
        return [f"{_show(options['pattern'])} is not a valid regular expression ({exc})."]
    group = options["group"]
    if isinstance(group, str) and group not in compiled.groupindex:
        return [f"the pattern has no group named {_show(group)}."]
    if isinstance(group, int) and not 0 <= group <= compiled.groups:
        return [f"the pattern has no group {group}; it has {compiled.groups}."]
    return []


# --- Lists and fixed values -------------------------------------------------------------------


def _join(value: object, options: dict, context: Context) -> str:
    items = value if isinstance(value, list) else [value]
    if not all(_is_single(item) for item in items):
        raise TransformError("Expected a list of single values to join, but it holds lists or objects.")
    texts = (_text(item).strip() for item in items if item is not None)
    return options["separator"].join(text for text in texts if text)


def _constant(value: object, options: dict, context: Context) -> object:
    return options["value"]


def _default(value: object, options: dict, context: Context) -> object:
    probe = value[0] if isinstance(value, list) and len(value) == 1 and _is_single(value[0]) else value
    blank = _is_missing(probe) or (isinstance(probe, str) and not probe.strip())
    return options["value"] if blank else value


def _concat(value: object, options: dict, context: Context) -> str:
    """Not idempotent on purpose: a second run adds the parts again."""
    text = "" if _is_missing(value) else _text(value)
    # A part that holds the value is left out when the value is missing ("ID-{value}" -> nothing).
    parts = (part.replace("{value}", text) for part in options["parts"] if text or "{value}" not in part)
    return options["separator"].join(part for part in parts if part)


# --- Picklists and UTM values -----------------------------------------------------------------


def _fold(text: str, case_insensitive: bool) -> str:
    text = " ".join(text.split())
    return text.casefold() if case_insensitive else text


def _map_values(value: object, options: dict, context: Context) -> str:
    fold = functools.partial(_fold, case_insensitive=options["case_insensitive"])
    mapping, key = options["mapping"], fold(_text(value))
    results = [*mapping.values(), *([options["default"]] if options["default"] is not None else [])]
    # A value that already is a result stays as it is: that is what makes the op idempotent.
    for result in results:
        if fold(result) == key:
            return result
    for source, result in mapping.items():
        if fold(source) == key:
            return result
    if options["default"] is not None:
        return options["default"]
    raise TransformError(f"{_show(value)} is not one of the allowed values ({_allowed(mapping)}).")


def _allowed(mapping: dict[str, str]) -> str:
    values = list(dict.fromkeys([*mapping, *mapping.values()]))
    shown = ", ".join(values[:12])
    return f"{shown} and {len(values) - 12} more" if len(values) > 12 else shown


def _shadowed(mapping: dict[str, str], results: list[str], fold: Callable[[str], str]) -> list[str]:
    """A source that is also a result would be kept as it is rather than mapped, so a mapping
    like {"b": "c", "a": "b"} is refused instead of silently ignoring its first entry."""
    folded = {fold(result) for result in results}
    return [f"{_show(source)} is mapped to {_show(result)} but is itself a result of the mapping; "
            "map it to itself or remove it."
            for source, result in mapping.items() if fold(source) in folded and fold(source) != fold(result)]


def _map_values_problems(options: dict) -> list[str]:
    fold = functools.partial(_fold, case_insensitive=options["case_insensitive"])
    results = [*options["mapping"].values(), *([options["default"]] if options["default"] is not None else [])]
    return _shadowed(options["mapping"], results, fold)


def _utm_step(text: str) -> str:
    return re.sub("-{2,}", "-", "-".join(text.lower().split()))


def _utm_form(text: str) -> str:
    """' Spring  Launch ' -> 'spring-launch'. Underscores are kept: some teams use them on purpose."""
    return _settle(_utm_step, text)


def _utm_normalize(value: object, options: dict, context: Context) -> str:
    form = _utm_form(_text(value))
    aliases = {_utm_form(alias): _utm_form(canonical) for alias, canonical in (options["mapping"] or {}).items()}
    if form in aliases.values():
        return form
    return aliases.get(form, form)


def _utm_problems(options: dict) -> list[str]:
    mapping = options["mapping"] or {}
    return _shadowed(mapping, list(mapping.values()), _utm_form)


# --- Names ------------------------------------------------------------------------------------

# Lower-case words that belong to the family name that follows them: "Ludwig van Beethoven".
_PARTICLES = frozenset(
    "al bin da das de del della den der des di do dos du el ibn la le st st. ten ter van von zu".split())
_TITLES = frozenset("mr mr. mrs mrs. ms ms. miss dr dr. prof prof. sir".split())
_SUFFIXES = frozenset("jr jr. sr sr. ii iii iv phd ph.d. md m.d. esq esq.".split())


def _name_tokens(text: str) -> tuple[list[str], list[str]]:
    """(given names, family name) tokens. "Lovelace, Ada" is read family-first."""
    before, comma, after = text.partition(",")
    if comma and "," not in after and after.split() and not _only(after.split(), _SUFFIXES):
        return after.split(), _family(_trimmed(before.split()))
    tokens = _trimmed(text.replace(",", " ").split())
    family = _family(tokens)
    return tokens[: len(tokens) - len(family)], family


def _trimmed(tokens: list[str]) -> list[str]:
    """Without leading titles and trailing suffixes, but never down to nothing."""
    while len(tokens) > 1 and tokens[0].casefold() in _TITLES:
        tokens = tokens[1:]
    while len(tokens) > 1 and tokens[-1].casefold() in _SUFFIXES:
        tokens = tokens[:-1]
    return tokens


def _family(tokens: list[str]) -> list[str]:
    start = len(tokens) - 1
    while start > 0 and tokens[start - 1].casefold() in _PARTICLES:
        start -= 1
    return tokens[max(start, 0):]


def _only(tokens: list[str], words: frozenset[str]) -> bool:
    return all(token.casefold() in words for token in tokens)


def _split_name(value: object, options: dict, context: Context) -> str:
    """first: the first given name. last: the final word with any particles before it. Middle
    names are dropped: keeping them would make the op change its own output ("King Lovelace"
    -> "Lovelace"). A single word is both the first and the last name, for the same reason."""
    given, family = _name_tokens(_text(value))
    if options["part"] == "first":
        return (given or family or [""])[0]
    return " ".join(family or given[-1:])


# --- Phones and countries ---------------------------------------------------------------------


def _region_problem(region: str) -> str:
    if region.upper() in phonenumbers.SUPPORTED_REGIONS:
        return ""
    return f"{_show(region)} is not a region code that phone numbers know, such as GB or US."


def phone_region(country: object) -> str:
    """The phone numbering region of a country as a lead gives it ('GB', 'United Kingdom'),
    or '' when it names none: the default region for that lead's phone number."""
    try:
        code = str(apply_chain(country, [{"op": "country_iso2"}]) or "")
    except TransformError:
        return ""
    return code if code in phonenumbers.SUPPORTED_REGIONS else ""


def _phone_e164(value: object, options: dict, context: Context) -> str:
    """Requires is_valid_number, not just is_possible_number (a length check): a typo that
    leaves a plausible length still fails on the number plan, and a wrong number in the CRM
    costs a sales call. Keep phonenumbers current so newly opened ranges are known."""
    text, region = _text(value), (options["region"] or context.default_region).upper()
    if region and (problem := _region_problem(region)):
        raise TransformError(problem)
    try:
        number = phonenumbers.parse(text, region or None)
    except phonenumbers.NumberParseException as exc:
        raise TransformError(_phone_reason(text, exc)) from None
    if not phonenumbers.is_valid_number(number):
        raise TransformError(f"{_show(text)} is not a valid phone number.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone_reason(text: str, exc: phonenumbers.NumberParseException) -> str:
    if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
        return f"{_show(text)} has no country code (such as +44) and no default region applies."
    return f"{_show(text)} is not a phone number."


# Names that people type but ISO 3166 does not list. Keys are folded by _plain().
COUNTRY_ALIASES: dict[str, str] = {
    "uk": "GB", "great britain": "GB", "britain": "GB", "england": "GB", "scotland": "GB",
    "wales": "GB", "northern ireland": "GB", "us": "US", "usa": "US", "america": "US",
    "deutschland": "DE", "holland": "NL", "the netherlands": "NL", "nederland": "NL",
    "russia": "RU", "turkey": "TR", "ivory coast": "CI", "vatican": "VA", "macedonia": "MK",
    "swaziland": "SZ", "burma": "MM", "cape verde": "CV", "brunei": "BN", "palestine": "PS",
    "micronesia": "FM", "uae": "AE", "espana": "ES", "italia": "IT", "brasil": "BR",
    "schweiz": "CH", "suisse": "CH", "svizzera": "CH", "osterreich": "AT", "belgie": "BE",
    "belgique": "BE", "polska": "PL", "sverige": "SE", "norge": "NO", "danmark": "DK",
    "suomi": "FI", "eire": "IE", "czech republic": "CZ",
}


def _plain(text: str) -> str:
    """'  Österreich ' -> 'osterreich', 'U.S.A.' -> 'usa'."""
    bare = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return " ".join(bare.replace(".", "").casefold().split())


def _country_iso2(value: object, options: dict, context: Context) -> str:
    """Exact lookups only (codes and names, any case, accents optional); no fuzzy matching,
    which would turn a typo into the wrong country without anyone noticing."""
    text = _text(value)
    if text.isascii() and text.isdigit() and len(text) <= 3:
        text = text.zfill(3)  # ISO numeric codes are three digits: 8 -> 008 (Albania)
    for candidate in (text, _plain(text)):
        try:
            return pycountry.countries.lookup(candidate).alpha_2
        except LookupError:
            pass
    if code := COUNTRY_ALIASES.get(_plain(text)):
        return code
    raise TransformError(f"{_show(value)} is not a country name or ISO country code.")


# --- Dates and times --------------------------------------------------------------------------

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")
_EPOCH_MS_FROM = 1e11  # as seconds that is the year 5138; as milliseconds, March 1973
_DAY_FIRST = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d.%m.%y")
_MONTH_FIRST = ("%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y", "%m/%d/%y")
_UNAMBIGUOUS = ("%Y/%m/%d", "%Y.%m.%d", "%d %B %Y", "%d %b %Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y")
_DATE_CLOCKS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M%p", "%I:%M:%S %p")
_CLOCKS = (*_DATE_CLOCKS, "%I %p", "%I%p", "%H.%M")


def _date_formats(dayfirst: bool) -> tuple[str, ...]:
    return (*(_DAY_FIRST if dayfirst else _MONTH_FIRST), *_UNAMBIGUOUS)


def _datetime_formats(dayfirst: bool) -> tuple[str, ...]:
    days = _date_formats(dayfirst)
    return (*days, *(f"{day} {clock}" for day in days for clock in _DATE_CLOCKS))


def _attempt(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except (ValueError, OverflowError):
        return None


def _read_formats(text: str, formats: list[str] | tuple[str, ...]) -> dt.datetime | None:
    for format_ in formats:
        if (parsed := _attempt(lambda t: dt.datetime.strptime(t, format_), text)) is not None:
            return parsed
    return None


def _order_hint(dayfirst: bool) -> str:
    return "day first" if dayfirst else "month first; set dayfirst for dates like 23/11/2026"


def _read_date(text: str, options: dict) -> dt.date:
    # ISO 8601 is tried before the configured formats so that this step's own output is always
    # read back unchanged.
    if _ISO_DATE.fullmatch(text) and (day := _attempt(dt.date.fromisoformat, text)):
        return day
    moment = (_read_formats(text, options["input_formats"] or ()) or _attempt(dt.datetime.fromisoformat, text)
              or _read_formats(text, _date_formats(options["dayfirst"])))
    if moment is None:
        raise TransformError(f"{_show(text)} is not a date this step can read ({_order_hint(options['dayfirst'])}).")
    return moment.date()


def _date(value: object, options: dict, context: Context) -> str:
    return _read_date(_text(value), options).isoformat()


def _zone(name: str) -> zoneinfo.ZoneInfo:
    if problem := _zone_problem(name):
        raise TransformError(problem)
    return zoneinfo.ZoneInfo(name)


@functools.cache
def _zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _zone_problem(name: str) -> str:
    return "" if name in _zone_names() else f"{_show(name)} is not an IANA time zone such as Europe/Paris."


def _is_epoch(value: object) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and _EPOCH.fullmatch(value) is not None


def _from_epoch(value: object) -> dt.datetime:
    """Seconds or milliseconds since 1970, told apart by size (Stripe sends seconds, many
    JavaScript widgets milliseconds)."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
        seconds = seconds / 1000 if abs(seconds) >= _EPOCH_MS_FROM else seconds
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise TransformError(f"{_show(value)} is not a timestamp in a year we can store.") from None


def _read_datetime(text: str, options: dict) -> dt.datetime:
    if _ISO_DATE.match(text) and (moment := _attempt(dt.datetime.fromisoformat, text)):
        return moment
    moment = (_read_formats(text, options["input_formats"] or ()) or _attempt(dt.datetime.fromisoformat, text)
              or _read_formats(text, _datetime_formats(options["dayfirst"])))
    if moment is None:
        raise TransformError(
            f"{_show(text)} is not a date and time this step can read ({_order_hint(options['dayfirst'])}).")
    return moment


def _datetime(value: object, options: dict, context: Context) -> str:
    zone = _zone(options["timezone"] or context.timezone)
    moment = _from_epoch(value) if _is_epoch(value) else _read_datetime(_text(value), options)
    try:
        local = moment if moment.tzinfo else moment.replace(tzinfo=zone)
        return local.astimezone(dt.timezone.utc).isoformat()
    except (ValueError, OverflowError):
        raise TransformError(f"{_show(value)} falls outside the years we can store.") from None


def _time(value: object, options: dict, context: Context) -> str:
    text = _text(value)
    moment = _attempt(dt.time.fromisoformat, text)
    if moment is None:
        parsed = _read_formats(text, [*(options["input_formats"] or ()), *_CLOCKS])
        moment = parsed.timetz() if parsed else None
    if moment is None:
        raise TransformError(f"{_show(text)} is not a time of day such as 14:30 or 2:30 pm.")
    if moment.tzinfo is not None:
        # Without a date, an offset cannot be turned into the source's zone (summer time).
        raise TransformError(f"{_show(text)} has a time zone; use the datetime op for moments in time.")
    return moment.replace(microsecond=0).isoformat()


def _format_problems(formats: list[str]) -> str:
    """'' when every format reads back a date it wrote itself."""
    sample = dt.datetime(2001, 2, 3, 4, 5, 6)
    for format_ in formats:
        written = _attempt(sample.strftime, format_)
        if not format_ or written is None or _attempt(lambda t: dt.datetime.strptime(t, format_), written) is None:
            return f"{_show(format_)} is not a strptime format such as %d/%m/%Y."
    return ""


# --- Booleans and numbers ---------------------------------------------------------------------

_TRUE = frozenset({"true", "yes", "y", "on", "1", "checked"})
_FALSE = frozenset({"false", "no", "n", "off", "0", "unchecked"})
_NUMBER = re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?")  # "1,234.50"; not "12,5" or "1e3"
_MAX_WHOLE_DIGITS = 30
_MAX_PLACES = 20
_INT64 = 2**63


def _boolean(value: object, options: dict, context: Context) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return value == 1
    word = _text(value).casefold()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise TransformError(f"{_show(value)} is not a yes/no value (yes, no, true, false, on, off, 1, 0, checked).")


def _number(value: object, noun: str) -> decimal.Decimal:
    """Exact value of an int, a finite float or a plain decimal string."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise TransformError(f"{_show(value)} is not {noun}.")
    if isinstance(value, (int, float)):
        number = decimal.Decimal(value if isinstance(value, int) else repr(value))
    else:
        text = _text(value)
        if not (match := _NUMBER.fullmatch(text)) or not (match[1] or match[3]):
            raise TransformError(f"{_show(value)} is not {noun}.")
        number = decimal.Decimal(text.replace(",", ""))
    if number and number.adjusted() >= _MAX_WHOLE_DIGITS:
        raise TransformError(f"{_show(value)} is too large.")
    return number


def _integer(value: object, options: dict, context: Context) -> int:
    number = _number(value, "a whole number")
    if not -_INT64 <= number < _INT64:
        raise TransformError(f"{_show(value)} is too large for a whole-number field.")
    if number != number.to_integral_value():
        raise TransformError(f"{_show(value)} is not a whole number.")
    return int(number)


def _decimal(value: object, options: dict, context: Context) -> str:
    """A string, not a float, so the exact digits survive JSON ("12.50" stays "12.50")."""
    number = _number(value, "a number")
    if options["places"] is not None:
        step = decimal.Decimal(1).scaleb(-options["places"])
        number = number.quantize(step, rounding=decimal.ROUND_HALF_UP, context=decimal.Context(prec=60))
    elif -number.as_tuple().exponent > _MAX_PLACES:  # type: ignore[operator]
        raise TransformError(f"{_show(value)} has more than {_MAX_PLACES} decimal places.")
    return format(number, "f")


def _places_problem(places: int) -> str:
    return "" if 0 <= places <= _MAX_PLACES else f"'places' must be between 0 and {_MAX_PLACES}."


def _length_problem(length: int) -> str:
    return "" if length >= 1 else "'length' must be 1 or more."


def _part_problem(part: str) -> str:
    return "" if part in ("first", "last") else "'part' must be \"first\" or \"last\"."


def _formats_option() -> Option:
    return Option("input_formats", "list of text", "strptime formats tried before the built-in ones.",
                  check=_format_problems)


def _dayfirst_option() -> Option:
    return Option("dayfirst", "true/false", "Read 01/02/2026 as 1 February rather than January 2.", default=False)


# --- The registry -----------------------------------------------------------------------------

OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("trim", "Remove spaces at both ends.", _trim),
    OpSpec("collapse_whitespace", "Trim, and turn every run of spaces, tabs and newlines into one space.",
           _collapse_whitespace),
    OpSpec("lower", "Lower-case the text.", _lower),
    OpSpec("upper", "Upper-case the text.", _upper),
    OpSpec("title", 'Name casing: "jean-luc o\'neil" becomes "Jean-Luc O\'Neil".', _title),
    OpSpec("truncate", "Cut the text to at most `length` characters.", _truncate, (
        Option("length", "whole number", "The most characters to keep.", required=True, check=_length_problem),)),
    OpSpec("phone_e164", "A valid phone number in E.164 form, such as +442079460958.", _phone_e164, (
        Option("region", "text", "Region for numbers without +code; overrides the source's default region.",
               default="", check=lambda region: _region_problem(region) if region else ""),), parses=True),
    OpSpec("country_iso2", "A country name or ISO code (GB, GBR, 826, 'United Kingdom', 'UK') as ISO alpha-2.",
           _country_iso2, parses=True),
    OpSpec("date", "A date as YYYY-MM-DD; from a date and time, the date as written.", _date,
           (_formats_option(), _dayfirst_option()), parses=True),
    OpSpec("datetime", "A moment as ISO 8601 in UTC; times without an offset are in the source's time zone; "
           "Unix timestamps in seconds or milliseconds are accepted.", _datetime, (
               _formats_option(), _dayfirst_option(),
               Option("timezone", "text", "IANA zone for times without an offset; overrides the source's.",
                      default="", check=lambda name: _zone_problem(name) if name else ""),), parses=True),
    OpSpec("time", "A time of day as HH:MM:SS.", _time, (_formats_option(),), parses=True),
    OpSpec("boolean", "true or false from yes/no, y/n, true/false, on/off, 1/0, checked/unchecked.",
           _boolean, parses=True),
    OpSpec("integer", "A whole number; accepts '1,234' and 42.0, refuses '4.5' and anything beyond 64 bits.",
           _integer, parses=True),
    OpSpec("decimal", "An exact decimal number as text, such as '12.50'.", _decimal, (
        Option("places", "whole number", "Round half up to this many decimal places.", check=_places_problem),),
        parses=True),
    OpSpec("map_values", "Map picklist values; a value that already is a result is kept.", _map_values, (
        Option("mapping", "text map", "Value seen -> value to store.", required=True),
        Option("default", "text", "Stored for values not in the mapping; without it they are refused."),
        Option("case_insensitive", "true/false", "Ignore case when matching.", default=True),),
        parses=True, check=_map_values_problems),
    OpSpec("utm_normalize", "Lower-case, trim and hyphenate a UTM value ('Spring Launch' -> 'spring-launch'), "
           "then apply aliases.", _utm_normalize, (
               Option("mapping", "text map", "Aliases -> canonical value, such as {\"fb\": \"facebook\"}."),),
           parses=True, check=_utm_problems),
    OpSpec("split_name", "The first or last name from a full name ('Dr Ada King Lovelace': Ada / Lovelace; "
           "'Ludwig van Beethoven': Ludwig / van Beethoven).", _split_name, (
               Option("part", "text", "\"first\" or \"last\".", required=True, check=_part_problem),), parses=True),
    OpSpec("join", "Join a list of values into one text, skipping empty ones.", _join, (
        Option("separator", "text", "Put between values.", default=" "),), single=False),
    OpSpec("regex_extract", "Keep the first match of a regular expression (or one of its groups).",
           _regex_extract, (
               Option("pattern", "text", "A Python regular expression.", required=True),
               Option("group", "group", "Group number or name to keep; 0 is the whole match.", default=0),),
           check=_pattern_problems),
    OpSpec("constant", "Always this value, whatever came in.", _constant, (
        Option("value", "value", "The value to store.", required=True),), takes_missing=True, single=False),
    OpSpec("default", "This value when the input is missing or blank; otherwise the input.", _default, (
        Option("value", "value", "The value to store.", required=True),), takes_missing=True, single=False),
    OpSpec("concat", "Build text from parts; '{value}' stands for the input. Not idempotent: a second run "
           "adds the parts again.", _concat, (
               Option("parts", "list of text", "Parts such as [\"{value}\", \"(web)\"].", required=True),
               Option("separator", "text", "Put between parts.", default=" "),), takes_missing=True, idempotent=False),
)}
