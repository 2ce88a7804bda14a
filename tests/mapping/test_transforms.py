"""Transform chains: every op is total and idempotent, and normalizes the values RevOps expect."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
import phonenumbers
import pycountry
import pytest

from mapping.transforms import COUNTRY_ALIASES, OPS, Context, TransformError, apply_chain, context_errors, phone_region, validate_chain

# What a form or webhook can send: any JSON-like value, NaN included.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
)
NUMERIC_TEXT = st.from_regex(r"\A[-+ 0-9.,/:]{1,16}\Z")
INPUTS = JSON_VALUES | NUMERIC_TEXT


def written(values: st.SearchStrategy, formats: list[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda value, format_: value.strftime(format_), values, st.sampled_from(formats))


def any_case(words: list[str]) -> st.SearchStrategy[str]:
    cases = st.sampled_from([str.lower, str.upper, str.title, str])
    return st.builds(lambda word, case, pad: pad + case(word) + pad, st.sampled_from(words), cases,
                     st.sampled_from(["", " "]))


EXAMPLE_PHONES = [phonenumbers.format_number(phonenumbers.example_number(region), style)
                  for region in sorted(phonenumbers.SUPPORTED_REGIONS) if phonenumbers.example_number(region)
                  for style in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL)]
COUNTRY_WORDS = [*COUNTRY_ALIASES, *(getattr(c, field) for c in pycountry.countries
                                     for field in ("alpha_2", "alpha_3", "numeric", "name") if hasattr(c, field))]
NAME_WORDS = ["Ada", "King", "Lovelace", "van", "de", "la", "Dr", "Jr.", "PhD", ",", "Mr", "İ", "ß"]
DATES = written(st.dates(), ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d %B %Y", "%b %d, %Y", "%Y-%d-%m", "%d%m%Y"])
DATETIMES = (written(st.datetimes(), ["%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M", "%m/%d/%Y %I:%M %p", "%d/%m/%Y %Hh%M"])
             | st.datetimes(timezones=st.timezones()).map(lambda moment: moment.isoformat())
             | st.integers(-10**13, 10**13) | st.floats(-1e13, 1e13))
# Per op, values that look like the real thing, so the success paths are exercised as well.
PLAUSIBLE = {
    "phone_e164": st.sampled_from([*EXAMPLE_PHONES, " +44 20 7946 0958 ", "020 7946 0958", "(650) 253-0000"]),
    "country_iso2": any_case(COUNTRY_WORDS),
    "date": DATES | DATETIMES,
    "datetime": DATES | DATETIMES,
    "time": written(st.times(), ["%H:%M", "%H:%M:%S", "%I:%M %p", "%I%p"]) | st.times().map(str),
    "boolean": any_case(["yes", "no", "y", "n", "true", "false", "on", "off", "1", "0", "checked", "unchecked"]),
    "integer": st.integers(-2**70, 2**70).map(lambda n: f"{n:,}") | st.decimals(allow_nan=False).map(str),
    "decimal": st.decimals(allow_nan=False, allow_infinity=False).map(str) | st.floats(-1e40, 1e40),
    "map_values": any_case(["y", "yes", "n", "no", "Yes", "No", "a", "b", "Alpha", "Beta", "Other"]),
    "utm_normalize": any_case(["fb", "ig", "Face Book", "facebook", "Spring  Launch", "google_ads", "a - b"]),
    "split_name": st.lists(st.sampled_from(NAME_WORDS) | st.text(max_size=4), max_size=5).map(" ".join),
    "regex_extract": st.from_regex(r"\A.{0,3}\d+.{0,3}\Z") | st.from_regex(r"\A\W{0,2}[A-Za-z]+\W{0,2}\Z"),
    "title": any_case(NAME_WORDS) | st.text(),
}
CONTEXT = Context(default_region="GB", timezone="Europe/Paris")

# Representative options for every op; test_every_op_has_a_property_case keeps this complete.
STEPS = [
    {"op": "trim"},
    {"op": "collapse_whitespace"},
    {"op": "lower"},
    {"op": "upper"},
    {"op": "title"},
    {"op": "truncate", "length": 5},
    {"op": "phone_e164"},
    {"op": "phone_e164", "region": "US"},
    {"op": "country_iso2"},
    {"op": "date"},
    {"op": "date", "dayfirst": True, "input_formats": ["%Y-%d-%m", "%d%m%Y"]},
    {"op": "datetime"},
    {"op": "datetime", "dayfirst": True, "timezone": "America/New_York", "input_formats": ["%d/%m/%Y %Hh%M"]},
    {"op": "time"},
    {"op": "boolean"},
    {"op": "integer"},
    {"op": "decimal"},
    {"op": "decimal", "places": 2},
    {"op": "map_values", "mapping": {"y": "Yes", "yes": "Yes", "n": "No", "no": "No"}},
    {"op": "map_values", "mapping": {"a": "Alpha", "b": "Beta"}, "default": "Other", "case_insensitive": False},
    {"op": "utm_normalize", "mapping": {"fb": "facebook", "ig": "instagram", "Face Book": "facebook"}},
    {"op": "split_name", "part": "first"},
    {"op": "split_name", "part": "last"},
    {"op": "join"},
    {"op": "join", "separator": ", "},
    # Idempotence holds for regex_extract when the pattern matches its own output, as these do.
    {"op": "regex_extract", "pattern": r"\d+"},
    {"op": "regex_extract", "pattern": r"(?P<word>[A-Za-z]+)", "group": "word"},
    {"op": "constant", "value": "web form"},
    {"op": "default", "value": "unknown"},
    {"op": "concat", "parts": ["{value}", "(web)"]},
]


def same(a: object, b: object) -> bool:
    """Equal in value and type, with NaN equal to itself."""
    return repr(a) == repr(b)


def run(value: object, chain: list[dict], context: Context = CONTEXT) -> object:
    return apply_chain(value, chain, context=context)


def error_of(value: object, chain: list[dict], context: Context = CONTEXT) -> str:
    with pytest.raises(TransformError) as caught:
        run(value, chain, context)
    return str(caught.value)


# --- Properties -------------------------------------------------------------------------------


def test_every_op_has_a_property_case():
    assert {step["op"] for step in STEPS} == set(OPS)
    assert validate_chain(STEPS) == []


def step_id(step: dict) -> str:
    return " ".join([step["op"], *(f"{key}={value}" for key, value in step.items() if key != "op")])[:60]


@pytest.mark.parametrize("step", STEPS, ids=step_id)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_each_op_is_total_and_idempotent(step, data):
    value = data.draw(INPUTS | PLAUSIBLE.get(step["op"], st.nothing()), label="value")
    try:
        once = run(value, [step])
    except TransformError as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
        return
    if not OPS[step["op"]].idempotent:  # concat adds its parts again on every run, by design
        return
    assert same(run(once, [step]), once)


@settings(max_examples=200, deadline=None)
@given(value=INPUTS)
def test_a_realistic_chain_is_idempotent(value):
    chain = [{"op": "collapse_whitespace"}, {"op": "title"}, {"op": "truncate", "length": 40},
             {"op": "default", "value": "Unknown"}]
    try:
        once = run(value, chain)
    except TransformError:
        return
    assert same(run(once, chain), once)


OPTION_NAMES = sorted({option.name for spec in OPS.values() for option in spec.options})
# Real op names with any option values, so the option checks themselves are fuzzed.
STEP_CONFIGS = st.fixed_dictionaries({"op": st.sampled_from(sorted(OPS))},
                                     optional={name: JSON_VALUES for name in OPTION_NAMES})


@settings(max_examples=200, deadline=None)
@given(chain=JSON_VALUES | st.lists(STEP_CONFIGS, max_size=3), value=INPUTS)
def test_any_config_gets_sentences_from_validate_chain_and_only_transform_errors_from_apply(chain, value):
    problems = validate_chain(chain)

    assert all(isinstance(p, str) and p.endswith(".") for p in problems)
    try:
        run(value, chain)
    except TransformError as exc:
        assert str(exc) == problems[0] if problems else str(exc).endswith(".")
    else:
        assert not problems


# --- Missing values, lists, text -------------------------------------------------------------


@pytest.mark.parametrize("missing", [None, "", []])
def test_missing_values_pass_through_everything_but_constant_default_and_concat(missing):
    assert run(missing, [{"op": "integer"}, {"op": "phone_e164"}, {"op": "lower"}]) == missing
    assert run(missing, [{"op": "default", "value": "n/a"}]) == "n/a"
    assert run(missing, [{"op": "constant", "value": "web"}]) == "web"
    assert run(missing, [{"op": "concat", "parts": ["ID-{value}", "(web)"]}]) == "(web)"


def test_a_one_item_list_is_unwrapped_and_other_lists_are_refused():
    assert run([" Ada "], [{"op": "trim"}]) == "Ada"
    assert error_of(["a", "b"], [{"op": "trim"}]) == "Expected a single value but got a list of 2."
    assert error_of({"a": 1}, [{"op": "trim"}]) == "Expected a single value but got an object with fields."


def test_numbers_and_booleans_become_text_for_text_ops():
    assert run(42, [{"op": "trim"}]) == "42"
    assert run(True, [{"op": "upper"}]) == "TRUE"
    assert run(True, [{"op": "trim"}, {"op": "boolean"}]) is True


def test_text_ops_trim_collapse_and_case():
    assert run("  Ada \n Lovelace ", [{"op": "trim"}]) == "Ada \n Lovelace"
    assert run("  Ada \n  Lovelace ", [{"op": "collapse_whitespace"}]) == "Ada Lovelace"
    assert run("Ada@Example.COM", [{"op": "lower"}]) == "ada@example.com"
    assert run("gb", [{"op": "upper"}]) == "GB"
    assert run("JEAN-LUC o'neil 3rd", [{"op": "title"}]) == "Jean-Luc O'Neil 3rd"
    assert run("Lovelace Ltd", [{"op": "truncate", "length": 9}]) == "Lovelace"


# --- Phones and countries ---------------------------------------------------------------------


def test_phone_numbers_become_e164():
    assert run(" +44 20 7946 0958 ", [{"op": "phone_e164", "region": "GB"}], Context()) == "+442079460958"
    assert run("020 7946 0958", [{"op": "phone_e164"}], Context(default_region="GB")) == "+442079460958"
    assert run("+442079460958", [{"op": "phone_e164", "region": "US"}]) == "+442079460958"
    assert run("(650) 253-0000", [{"op": "phone_e164", "region": "US"}]) == "+16502530000"


def test_phone_errors_are_plain_sentences():
    assert error_of("not a phone", [{"op": "phone_e164"}]) == "'not a phone' is not a phone number."
    assert error_of("020 7946 0958", [{"op": "phone_e164"}], Context()) == (
        "'020 7946 0958' has no country code (such as +44) and no default region applies.")
    # possible (right length) but not valid (no UK number starts 011): is_valid_number catches it
    assert error_of("+44 11 1111 1111", [{"op": "phone_e164"}]) == "'+44 11 1111 1111' is not a valid phone number."
    assert "'XX' is not a region code" in error_of("0207", [{"op": "phone_e164"}], Context(default_region="XX"))


@pytest.mark.parametrize(("typed", "code"), [
    ("United Kingdom", "GB"), ("uk", "GB"), ("GBR", "GB"), ("826", "GB"), ("germany", "DE"),
    ("Deutschland", "DE"), ("U.S.", "US"), ("usa", "US"), ("Österreich", "AT"), ("méxico", "MX"), (8, "AL"),
])
def test_countries_become_iso_alpha_2(typed, code):
    assert run(typed, [{"op": "country_iso2"}]) == code


def test_an_unknown_country_is_refused():
    assert error_of("Narnia", [{"op": "country_iso2"}]) == "'Narnia' is not a country name or ISO country code."


def test_every_alpha_2_code_and_alias_result_maps_to_itself():
    codes = {country.alpha_2 for country in pycountry.countries}

    assert {code for code in codes if run(code, [{"op": "country_iso2"}]) != code} == set()
    assert set(COUNTRY_ALIASES.values()) <= codes
    assert all(COUNTRY_ALIASES[alias] == alias.upper() for alias in COUNTRY_ALIASES if alias.upper() in codes)


# --- Dates and times --------------------------------------------------------------------------


def test_dates_become_iso_8601():
    assert run("23/11/2026", [{"op": "date", "dayfirst": True}]) == "2026-11-23"
    assert run("11/23/2026", [{"op": "date"}]) == "2026-11-23"
    assert run("23 November 2026", [{"op": "date"}]) == "2026-11-23"
    assert run("2026-11-23T22:00:00", [{"op": "date"}]) == "2026-11-23"
    assert run("23-2026-11", [{"op": "date", "input_formats": ["%d-%Y-%m"]}]) == "2026-11-23"


def test_a_day_first_date_without_dayfirst_says_how_to_fix_it():
    assert error_of("23/11/2026", [{"op": "date"}]) == (
        "'23/11/2026' is not a date this step can read (month first; set dayfirst for dates like 23/11/2026).")


def test_datetimes_become_utc_with_naive_ones_read_in_the_source_zone():
    paris = Context(timezone="Europe/Paris")

    assert run("2026-11-23T10:00:00", [{"op": "datetime"}], paris) == "2026-11-23T09:00:00+00:00"
    assert run("2026-11-23T10:00:00Z", [{"op": "datetime"}], paris) == "2026-11-23T10:00:00+00:00"
    assert run("23/11/2026 10:00", [{"op": "datetime", "dayfirst": True, "timezone": "UTC"}], paris) == (
        "2026-11-23T10:00:00+00:00")


def test_epochs_in_seconds_or_milliseconds_become_utc_datetimes():
    assert run(1763892000000, [{"op": "datetime"}]) == "2025-11-23T10:00:00+00:00"
    assert run(1763892000, [{"op": "datetime"}]) == "2025-11-23T10:00:00+00:00"
    assert run("1763892000000", [{"op": "datetime"}]) == "2025-11-23T10:00:00+00:00"


def test_times_become_hh_mm_ss_and_offsets_are_refused():
    assert run("2:30 pm", [{"op": "time"}]) == "14:30:00"
    assert run("09:05", [{"op": "time"}]) == "09:05:00"
    assert "has a time zone" in error_of("10:00+02:00", [{"op": "time"}])


# --- Booleans and numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "meaning"), [
    ("yes", True), ("Y", True), ("on", True), ("1", True), ("checked", True), (1, True), (True, True),
    ("no", False), ("N", False), ("off", False), ("0", False), ("unchecked", False), (0, False), (False, False),
])
def test_booleans(typed, meaning):
    assert run(typed, [{"op": "boolean"}]) is meaning


def test_a_word_that_is_not_yes_or_no_is_refused():
    assert error_of("maybe", [{"op": "boolean"}]).startswith("'maybe' is not a yes/no value")


def test_integers():
    assert run("1,234", [{"op": "integer"}]) == 1234
    assert run(" 42 ", [{"op": "integer"}]) == 42
    assert run(42.0, [{"op": "integer"}]) == 42


@pytest.mark.parametrize(("typed", "message"), [
    ("about 50", "'about 50' is not a whole number."),
    ("4.5", "'4.5' is not a whole number."),
    ("9223372036854775808", "'9223372036854775808' is too large for a whole-number field."),
    (True, "'true' is not a whole number."),
])
def test_integer_errors(typed, message):
    assert error_of(typed, [{"op": "integer"}]) == message


def test_decimals_are_exact_strings():
    assert run("12.5", [{"op": "decimal", "places": 2}]) == "12.50"
    assert run("1,234.005", [{"op": "decimal", "places": 2}]) == "1234.01"
    assert run(0.1, [{"op": "decimal"}]) == "0.1"
    assert error_of("twelve", [{"op": "decimal"}]) == "'twelve' is not a number."
    assert error_of(float("nan"), [{"op": "decimal"}]) == "'nan' is not a number."
    assert error_of(float("inf"), [{"op": "decimal"}]) == "'inf' is not a number."


# --- Picklists, names, lists, patterns, UTM ---------------------------------------------------

SIZES = {"op": "map_values", "mapping": {"small": "1-10", "medium": "11-50"}}


def test_map_values_maps_case_insensitively_and_keeps_results():
    assert run(" SMALL ", [SIZES]) == "1-10"
    assert run("11-50", [SIZES]) == "11-50"


def test_map_values_refuses_unknown_values_by_listing_the_allowed_ones_or_uses_the_default():
    assert error_of("huge", [SIZES]) == "'huge' is not one of the allowed values (small, medium, 1-10, 11-50)."
    assert run("huge", [{**SIZES, "default": "unknown"}]) == "unknown"
    assert error_of("Small", [{**SIZES, "case_insensitive": False}]).startswith("'Small' is not one of")


@pytest.mark.parametrize(("full", "first", "last"), [
    ("Ada Lovelace", "Ada", "Lovelace"),
    ("Ada King Lovelace", "Ada", "Lovelace"),  # middle names are dropped so that both parts are idempotent
    ("Ada", "Ada", "Ada"),  # one word is both, for the same reason
    ("Ludwig van Beethoven", "Ludwig", "van Beethoven"),
    ("Lovelace, Ada", "Ada", "Lovelace"),
    ("Dr. Ada Lovelace, PhD", "Ada", "Lovelace"),
])
def test_split_name(full, first, last):
    assert run(full, [{"op": "split_name", "part": "first"}]) == first
    assert run(full, [{"op": "split_name", "part": "last"}]) == last


def test_join_skips_empty_values_and_passes_text_through():
    assert run(["Ada", " ", None, "Lovelace"], [{"op": "join"}]) == "Ada Lovelace"
    assert run(["red", "blue"], [{"op": "join", "separator": ", "}]) == "red, blue"
    assert run("Ada Lovelace", [{"op": "join"}]) == "Ada Lovelace"


def test_regex_extract_keeps_the_first_match_or_group():
    assert run("Order #12345 (web)", [{"op": "regex_extract", "pattern": r"\d+"}]) == "12345"
    assert run("ref=AB-12", [{"op": "regex_extract", "pattern": r"ref=(\w+-\d+)", "group": 1}]) == "AB-12"
    assert error_of("no digits", [{"op": "regex_extract", "pattern": r"\d+"}]) == (
        "'no digits' does not match the pattern '\\d+'.")


def test_utm_values_are_lowered_hyphenated_and_aliased():
    aliases = {"op": "utm_normalize", "mapping": {"fb": "facebook", "ig": "instagram"}}

    assert run(" Spring  Launch ", [aliases]) == "spring-launch"
    assert run("FB", [aliases]) == "facebook"
    assert run("facebook", [aliases]) == "facebook"
    assert run("google_ads", [aliases]) == "google_ads"


def test_concat_builds_text_around_the_value():
    assert run("Ada", [{"op": "concat", "parts": ["{value}", "(web)"]}]) == "Ada (web)"
    assert run("42", [{"op": "concat", "parts": ["ID-{value}"], "separator": ""}]) == "ID-42"


# --- Configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(("chain", "problem"), [
    ({"op": "trim"}, 'The transforms must be a list of steps, such as [{"op": "trim"}].'),
    ([{"op": "shout"}], "Step 1: 'shout' is not a known op."),
    ([{"trim": True}], 'Step 1 must be an object with an "op", such as {"op": "trim"}.'),
    ([{"op": "regex_extract", "pattern": "(oops"}],
     "Step 1 (regex_extract): '(oops' is not a valid regular expression "
     "(missing ), unterminated subpattern at position 0)."),
    ([{"op": "regex_extract", "pattern": r"\d+", "group": 2}],
     "Step 1 (regex_extract): the pattern has no group 2; it has 0."),
    ([{"op": "trim"}, {"op": "truncate"}], "Step 2 (truncate): the option 'length' is required."),
    ([{"op": "truncate", "length": "10"}], "Step 1 (truncate): 'length' must be a whole number."),
    ([{"op": "trim", "both": True}], "Step 1 (trim): 'both' is not an option of this op."),
    ([{"op": "phone_e164", "region": "XX"}],
     "Step 1 (phone_e164): 'XX' is not a region code that phone numbers know, such as GB or US."),
    ([{"op": "datetime", "timezone": "Mars/Olympus"}],
     "Step 1 (datetime): 'Mars/Olympus' is not an IANA time zone such as Europe/Paris."),
    ([{"op": "date", "input_formats": ["%d/%m/%Q"]}],
     "Step 1 (date): '%d/%m/%Q' is not a strptime format such as %d/%m/%Y."),
    ([{"op": "map_values", "mapping": {"b": "c", "a": "b"}}],
     "Step 1 (map_values): 'b' is mapped to 'c' but is itself a result of the mapping; "
     "map it to itself or remove it."),
])
def test_a_bad_chain_gets_one_plain_message(chain, problem):
    assert validate_chain(chain) == [problem]


def test_a_valid_chain_has_no_problems_and_survives_json():
    chain = json.loads(json.dumps([{"op": "trim"}, {"op": "phone_e164", "region": "gb"}, {"op": "default", "value": ""}]))

    assert validate_chain(chain) == []
    assert run("020 7946 0958", chain, Context()) == "+442079460958"


def test_applying_a_bad_chain_raises_its_first_problem():
    assert error_of("x", [{"op": "shout"}]) == "Step 1: 'shout' is not a known op."


def test_every_op_describes_itself_for_the_admin():
    assert all(spec.description.endswith(".") for spec in OPS.values())
    assert all(option.help for spec in OPS.values() for option in spec.options)


def test_a_source_context_with_a_bad_region_or_zone_is_reported():
    assert context_errors(Context(default_region="gb", timezone="Europe/Paris")) == {}
    assert context_errors(Context(default_region="XX", timezone="Paris")) == {
        "default_region": "'XX' is not a region code that phone numbers know, such as GB or US.",
        "timezone": "'Paris' is not an IANA time zone such as Europe/Paris."}


@pytest.mark.parametrize("country, region", [("GB", "GB"), ("United Kingdom", "GB"), ("fra", "FR"), ("usa", "US"),
                                             ("", ""), ("Atlantis", ""), (["DE"], "DE"), ({"a": 1}, "")])
def test_phone_region_is_the_numbering_region_of_a_country_as_given(country, region):
    assert phone_region(country) == region
