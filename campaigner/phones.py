"""Phone numbers: from a spreadsheet cell to the E.164 digits CAMS wants (reliability.md §5.4).

``normalize_phone`` is the reference implementation for one cell. ``normalize_phones`` gives
the same answers for a whole column, fast enough to preview a million rows:

1. Plain ASCII cells (digits, spaces, ``- . ( )``, a leading ``+``) are cleaned with polars
   string ops. Everything else (Unicode digits, Excel tricks, letters...) goes through the
   scalar path, cell by distinct cell.
2. Distinct numbers are checked against libphonenumber's metadata with polars regexes. This
   replays exactly the steps of ``phonenumbers.parse`` + ``is_valid_number`` that matter for
   digit strings; whenever a number needs a step that is not replayed (an international
   prefix, a national-prefix transform rule) it goes to the scalar path instead.
3. Numbers the vectorized check rejects also go to the scalar path, which parses them with
   rphonenumbers (phonenumbers if rphonenumbers is missing) to explain the rejection.

Country rules, in order, for the digits left after clean-up:

- ``+`` first: the country code follows.
- ``00`` first: with a default region, dialled from that region (it knows the region's
  international prefix, e.g. US 011); if that gives no valid number, or without a default
  region, ``00`` is read as ``+`` (the ITU prefix most of the world dials).
- other digits with no leading 0 (the CAMS style ``8613812345678``): read as ``+digits``. With
  a default region, a national number without a trunk 0 (US ``4155550123``, CN mobile
  ``13812345678``) is also tried as a number of that region. When only one reading is valid it
  wins; when both are valid and differ (US ``4755551234`` is also a Norwegian number) the row
  is rejected as ambiguous rather than risk messaging a stranger.
- a single leading 0 (a trunk prefix): only with a default region.

A number must be possible (right length) and valid (an allocated range) for its country.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import polars as pl

__all__ = ("PhoneIssue", "normalize_phone", "normalize_phones")


def _import_parser() -> Any:
    # rphonenumbers is a young (0.1.0) Rust port; phonenumbers is the reference fallback.
    try:
        return importlib.import_module("rphonenumbers")
    except ImportError:
        return importlib.import_module("phonenumbers")


_pn: Any = _import_parser()


@dataclass(frozen=True, slots=True)
class PhoneIssue:
    """Why a cell is not a usable phone number, in words a marketer can act on."""

    reason: str


# --- reasons -------------------------------------------------------------------------------

_NO_NUMBER = "no phone number"
_SCIENTIFIC = (
    "scientific notation: digits were lost in Excel; "
    "format the column as Text and re-enter the numbers"
)
_DIGITS_LOST = (
    "stored as a number and digits were lost; format the column as Text and re-enter the numbers"
)
_LETTERS = "contains letters: keep only the number (digits, spaces, - . ( ) and a leading +)"
_MORE_THAN_ONE = "more than one number: put one number per row"
_PLUS_INSIDE = "the + sign must come first, right before the country code"
_NO_DIGITS = "no digits"
_NATIONAL = "national number: add the country code or set default_region"

_PARSE_REASONS = {
    _pn.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    _pn.NumberParseException.NOT_A_NUMBER: "not a phone number",
    _pn.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    _pn.NumberParseException.TOO_SHORT_NSN: "too short",
    _pn.NumberParseException.TOO_LONG: "too long",
}
_POSSIBLE_REASONS = {
    _pn.ValidationResult.TOO_SHORT: "too short for {}",
    _pn.ValidationResult.TOO_LONG: "too long for {}",
    _pn.ValidationResult.INVALID_LENGTH: "wrong number of digits for {}",
    _pn.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "missing the area code for {}",
    _pn.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}

# --- text clean-up (scalar) ----------------------------------------------------------------

# NFKC maps full-width digits but not other scripts' digits (Arabic-Indic, Devanagari...).
_DIGIT_MAP = {
    cp: str(unicodedata.digit(chr(cp)))
    for cp in range(0x80, 0x110000)
    if unicodedata.category(chr(cp)) == "Nd"
}
# Zero-width, bidi and BOM characters: invisible in the sheet, fatal to a parser.
_INVISIBLE = {
    cp: None
    for cp in (0x00AD, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070))
}
_INVISIBLE[0xFEFF] = None
# Word and web pages turn hyphens into dashes; they are still separators.
_DASHES = {cp: "-" for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2015, 0x2212, 0xFE63)}
_TRANSLATE = {**_DIGIT_MAP, **_INVISIBLE, **_DASHES}

_EXCEL_FORMULA = re.compile(r'=\s*"(.*)"', re.DOTALL)
_SCIENTIFIC_RE = re.compile(r"\d([.,]\d+)?[eE]\+?\d+")
_FLOAT_RE = re.compile(r"(\d+)\.0")
_SEPARATORS = re.compile(r"[\s\-.()/]")
_NOT_ALLOWED = re.compile(r"[^0-9\s\-.()/+]")
_MIN_DIGITS_PER_NUMBER = 7  # a '/' between two runs this long separates two numbers


def _describe(ch: str) -> str:
    return f"'{ch}'" if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"


def _clean(raw: str) -> str | PhoneIssue:
    """Return the number as ``+digits`` or ``digits`` (§5.4 steps 2-3), or why it is not one."""
    text = unicodedata.normalize("NFKC", raw).translate(_TRANSLATE).strip()
    if text.startswith("'"):  # Excel's "this is text" prefix
        text = text[1:].strip()
    formula = _EXCEL_FORMULA.fullmatch(text)
    if formula:  # ="..." keeps leading zeros in Excel
        text = formula.group(1).strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if not text:
        return PhoneIssue(_NO_NUMBER)
    if _SCIENTIFIC_RE.fullmatch(text):
        return PhoneIssue(_SCIENTIFIC)
    as_float = _FLOAT_RE.fullmatch(text)
    if as_float:  # str() of a float cell: "8613812345678.0"; exact only up to 15 digits
        if len(as_float.group(1)) > 15:
            return PhoneIssue(_DIGITS_LOST)
        text = as_float.group(1)
    if any(ch.isalpha() for ch in text):
        return PhoneIssue(_LETTERS)
    if any(ch in ";,|" for ch in text) or text.count("+") > 1 or _two_numbers_around_slash(text):
        return PhoneIssue(_MORE_THAN_ONE)
    other = _NOT_ALLOWED.search(text)
    if other:
        return PhoneIssue(
            f"unexpected character {_describe(other.group())}: "
            "keep only digits, spaces, - . ( ) and a leading +"
        )
    core = _SEPARATORS.sub("", text)
    if "+" in core[1:]:
        return PhoneIssue(_PLUS_INSIDE)
    if core in ("", "+"):
        return PhoneIssue(_NO_DIGITS)
    return core


def _two_numbers_around_slash(text: str) -> bool:
    # "0911/123456" is a German area code; "+44 7911 123456 / +44 7700 900123" is two numbers.
    parts = text.split("/")
    if len(parts) < 2:
        return False
    if any(part.strip().startswith("+") for part in parts[1:]):
        return True
    long_runs = sum(sum(ch.isdigit() for ch in part) >= _MIN_DIGITS_PER_NUMBER for part in parts)
    return long_runs >= 2


# --- country decision and validation (scalar) ----------------------------------------------


def _check_region(default_region: str | None) -> str | None:
    if not default_region:
        return None
    region = default_region.strip().upper()
    if region not in _pn.SUPPORTED_REGIONS:
        raise ValueError(
            f"unknown default_region {default_region!r}: use an ISO 3166 code such as GB or US"
        )
    return region


def _label(number: Any) -> str:
    region = _pn.region_code_for_country_code(number.country_code)
    return f"+{number.country_code}" if region in ("001", "ZZ") else str(region)


@dataclass(frozen=True, slots=True)
class _Reading:
    e164: str
    label: str


def _read(text: str, region: str | None) -> _Reading | PhoneIssue:
    """Parse one reading of the number and keep it only if possible and valid."""
    try:
        number = _pn.parse(text, region)
    except _pn.NumberParseException as exc:
        return PhoneIssue(_PARSE_REASONS.get(exc.error_type, "not a phone number"))
    label = _label(number)
    possible = _pn.is_possible_number_with_reason(number)
    if possible != _pn.ValidationResult.IS_POSSIBLE:
        return PhoneIssue(_POSSIBLE_REASONS.get(possible, "not a phone number").format(label))
    if not _pn.is_valid_number(number):
        return PhoneIssue(f"not a valid {label} number (no such number range)")
    return _Reading(f"{number.country_code}{_pn.national_significant_number(number)}", label)


def _either(
    first: _Reading | PhoneIssue, second: _Reading | PhoneIssue, why: str
) -> str | PhoneIssue:
    if isinstance(first, _Reading):
        return first.e164
    if isinstance(second, _Reading):
        return second.e164
    return PhoneIssue(why.format(first.reason, second.reason))


@lru_cache(maxsize=1 << 16)
def _resolve(core: str, region: str | None) -> str | PhoneIssue:
    """§5.4 steps 4-6 for a cleaned number; cached because lists repeat numbers."""
    if core.startswith("+"):
        return _result(_read(core, None))
    if core.startswith("00"):
        international = "+" + core[2:]
        if region is None:
            return _result(_read(international, None))
        return _either(
            _read(core, region),
            _read(international, None),
            f"not a valid number dialled from {region} ({{}}) nor with 00 as + ({{}})",
        )
    if core.startswith("0"):
        return _result(_read(core, region)) if region else PhoneIssue(_NATIONAL)
    international_reading = _read("+" + core, None)
    if region is None:
        return _result(international_reading)
    national_reading = _read(core, region)
    if (
        isinstance(international_reading, _Reading)
        and isinstance(national_reading, _Reading)
        and international_reading.e164 != national_reading.e164
    ):
        return PhoneIssue(
            f"ambiguous: valid both with country code +{international_reading.e164[:3]}... "
            f"({international_reading.label}) and as a {region} national number; "
            "write it with + and the country code"
        )
    return _either(
        international_reading,
        national_reading,
        f"not a valid number with a country code ({{}}) nor as a {region} national number ({{}})",
    )


def _result(reading: _Reading | PhoneIssue) -> str | PhoneIssue:
    return reading.e164 if isinstance(reading, _Reading) else reading


def normalize_phone(raw: str, default_region: str | None) -> str | PhoneIssue:
    """E.164 digits without '+' (``"447911123456"``), or the reason the cell is unusable.

    ``default_region`` (ISO 3166, e.g. ``"GB"``) is used for numbers written without a
    country code; an unknown region raises ``ValueError`` because it is a campaign setting.
    """
    region = _check_region(default_region)
    if not raw:
        return PhoneIssue(_NO_NUMBER)
    core = _clean(raw)
    if isinstance(core, PhoneIssue):
        return core
    return _resolve(core, region)


def _answers(keys: pl.Series, results: Iterable[str | PhoneIssue]) -> pl.DataFrame:
    e164: list[str | None] = []
    error: list[str | None] = []
    for result in results:
        e164.append(result if isinstance(result, str) else None)
        error.append(result.reason if isinstance(result, PhoneIssue) else None)
    return pl.DataFrame(
        {"key": keys, "e164": e164, "error": error},
        schema={"key": pl.String, "e164": pl.String, "error": pl.String},
    )


# --- vectorized path -----------------------------------------------------------------------

# Cells cleaned by polars; the rest go through _clean. A '+' may only precede the digits, and
# "123.0" (a float cell written as text) needs _clean's digits-lost check.
_FAST_LANE = r"^[ (]*\+?[0-9 ().\-]*[0-9][0-9 ().\-]*$"
_FAST_FLOAT = r"^ *[0-9]+\.0 *$"
_FAST_SEPARATORS = r"[ ().\-]"


def normalize_phones(values: pl.Series, default_region: str | None) -> pl.DataFrame:
    """``normalize_phone`` for a column: a frame of ``e164`` and ``phone_error`` (one is null).

    Same length and order as ``values``; never raises on cell contents.
    """
    region = _check_region(default_region)
    raw = values if values.dtype == pl.String else values.cast(pl.String, strict=False)
    fast = pl.col("raw").str.contains(_FAST_LANE) & ~pl.col("raw").str.contains(_FAST_FLOAT)
    # A cleaned number is itself a fast-lane cell, so it never equals a slow-lane cell and
    # one key column serves both lanes.
    frame = pl.DataFrame({"raw": raw}).select(
        "raw",
        fast=fast.fill_null(False),
        key=pl.when(fast)
        .then(pl.col("raw").str.replace_all(_FAST_SEPARATORS, ""))
        .otherwise(pl.col("raw")),
    )
    keys = frame.select("key", "fast").drop_nulls().unique("key")
    slow_keys = keys.filter(~pl.col("fast")).get_column("key")
    answers = pl.concat(
        [
            _decide(keys.filter(pl.col("fast")).get_column("key"), region),
            _answers(slow_keys, (_normalize(value, region) for value in slow_keys.to_list())),
        ]
    )
    return frame.join(answers, on="key", how="left", maintain_order="left").select(
        "e164",
        phone_error=pl.when(pl.col("raw").is_null())
        .then(pl.lit(_NO_NUMBER))
        .otherwise(pl.col("error")),
    )


def _normalize(raw: str, region: str | None) -> str | PhoneIssue:
    core = _clean(raw) if raw else PhoneIssue(_NO_NUMBER)
    return core if isinstance(core, PhoneIssue) else _resolve(core, region)


# Reading states: 0 invalid, 1 valid, 2 to be checked, null unknown (left to _resolve).
_INVALID, _VALID, _CHECK = 0, 1, 2


def _decide(cores: pl.Series, region: str | None) -> pl.DataFrame:
    """Answers for distinct cleaned numbers (``+digits`` or ``digits``): key, e164, error.

    Mirrors ``_resolve``: the readings of each number are replayed on whole columns, and
    whatever is not certain (rejections, ambiguity, steps not replayed) goes to ``_resolve``.
    """
    key = pl.col("key")
    plus = key.str.starts_with("+")
    idd = key.str.starts_with("00")
    trunk = key.str.starts_with("0") & ~idd
    work = pl.DataFrame({"key": cores}, schema={"key": pl.String}).with_row_index("i")
    work = work.with_columns(
        intl=pl.when(plus)
        .then(key.str.slice(1))
        .when(idd & pl.lit(region is None))
        .then(key.str.slice(2))
        .when(~plus & ~idd & ~trunk)
        .then(key),
        national=pl.when(~plus & ~idd & pl.lit(region is not None)).then(key),
        error=pl.when(trunk & pl.lit(region is None)).then(pl.lit(_NATIONAL)),
    )
    tables = _tables()
    if tables is None:
        work = work.with_columns(e164=pl.lit(None, pl.String))
    else:
        work = _read_international(work, tables)
        work = _read_national(work, region, tables)
        work = _check_validity(work, tables)
        a_ok, a_bad = pl.col("a_state") == _VALID, pl.col("a_state") == _INVALID
        b_ok, b_bad = pl.col("b_state") == _VALID, pl.col("b_state") == _INVALID
        has_a, has_b = pl.col("intl").is_not_null(), pl.col("national").is_not_null()
        same = pl.col("a_e164") == pl.col("b_e164")
        work = work.with_columns(
            a_e164=pl.col("a_code").cast(pl.String) + pl.col("a_nsn"),
            b_e164=pl.col("b_code").cast(pl.String) + pl.col("b_nsn"),
        ).with_columns(
            e164=pl.when(has_a & a_ok & (~has_b | b_bad | (b_ok & same)))
            .then(pl.col("a_e164"))
            .when(has_b & b_ok & (~has_a | a_bad))
            .then(pl.col("b_e164"))
        )
    undecided = pl.col("e164").is_null() & pl.col("error").is_null()
    slow = work.filter(undecided).get_column("key")
    resolved = _answers(slow, (_resolve(core, region) for core in slow.to_list()))
    decided = work.filter(~undecided).select("key", "e164", "error")
    return pl.concat([decided, resolved])


def _read_international(work: pl.DataFrame, tables: _Tables) -> pl.DataFrame:
    """Replay ``parse("+" + intl)`` up to validation: a_state, a_code, a_nsn."""
    digits = pl.col("intl")
    code = pl.lit(None, pl.String)
    for width in (3, 2, 1):  # calling codes are prefix-free; the shortest match wins
        head = digits.str.slice(0, width)
        code = pl.when(head.is_in(tables.code_texts)).then(head).otherwise(code)
    work = work.with_columns(a_code=code).with_columns(
        a_nsn=digits.str.slice(pl.col("a_code").str.len_bytes()),
        # too short after the '+', or an unknown calling code: parse() raises
        a_state=pl.when(digits.is_null())
        .then(pl.lit(None, pl.Int8))
        .when((digits.str.len_bytes() <= 2) | pl.col("a_code").is_null())
        .then(pl.lit(_INVALID, pl.Int8))
        .otherwise(pl.lit(_CHECK, pl.Int8)),
        a_prefix=pl.col("a_code").replace_strict(
            tables.prefix_patterns, default=None, return_dtype=pl.String
        ),
    )
    # Few numbers start with their country's national prefix; replay those per country.
    hits = work.filter(
        (pl.col("a_state") == _CHECK)
        & pl.col("a_nsn").str.contains(pl.col("a_prefix"), strict=False).fill_null(False)
    )
    for (code_text,), group in hits.group_by("a_code"):
        main = tables.countries[int(str(code_text))][0]
        stripped = _strip_national_prefix(group.select("i", nsn="a_nsn"), main)
        work = _scatter(work, stripped, "a")
    return work.with_columns(a_code=pl.col("a_code").cast(pl.Int32))


def _read_national(work: pl.DataFrame, region: str | None, tables: _Tables) -> pl.DataFrame:
    """Replay ``parse(national, region)`` up to validation: b_state, b_code, b_nsn."""
    if region is None or region not in tables.regions:
        return work.with_columns(
            b_state=pl.lit(None, pl.Int8),
            b_code=pl.lit(None, pl.Int32),
            b_nsn=pl.lit(None, pl.String),
        )
    meta = tables.regions[region]
    main = tables.countries[meta.country_code][0]
    digits = pl.col("national")
    code = str(meta.country_code)
    after_code = digits.str.slice(len(code))
    unknown = pl.lit(False)
    if meta.international_prefix:  # dialled with the region's own IDD: not replayed
        unknown = unknown | digits.str.contains(f"^(?:{meta.international_prefix})")
    starts = digits.str.starts_with(code)
    if meta.national_prefix:
        unknown = unknown | (starts & after_code.str.contains(f"^(?:{meta.national_prefix})"))
    # _maybe_extract_country_code: a leading country code is dropped when that helps
    drop_code = starts & (
        (~meta.general_matches(digits) & meta.general_matches(after_code))
        | meta.too_long(digits)
    )
    work = work.with_columns(
        b_code=pl.when(digits.is_not_null()).then(pl.lit(meta.country_code, pl.Int32)),
        b_nsn=pl.when(drop_code).then(after_code).otherwise(digits),
        b_state=pl.when(digits.is_null() | unknown)
        .then(pl.lit(None, pl.Int8))
        .otherwise(pl.lit(_CHECK, pl.Int8)),
        b_dropped=drop_code,
    )
    # After reading a country code, parse() switches to the main region's metadata.
    todo = work.filter(pl.col("b_state") == _CHECK)
    for dropped in (False, True):
        group = todo.filter(pl.col("b_dropped") == dropped).select("i", nsn="b_nsn")
        parsing = main if dropped and main.region != region else meta
        work = _scatter(work, _strip_national_prefix(group, parsing), "b")
    return work


def _strip_national_prefix(frame: pl.DataFrame, meta: _Meta) -> pl.DataFrame:
    """parse()'s national-prefix step for rows (i, nsn) parsed with ``meta``.

    Returns the rows it changes: i, nsn, state (null when a transform rule would apply).
    """
    empty = pl.DataFrame(schema={"i": pl.UInt32, "nsn": pl.String, "state": pl.Int8})
    if not meta.national_prefix or frame.height == 0:
        return empty
    nsn = pl.col("nsn")
    matched = nsn.str.extract(f"^({meta.national_prefix})", 1)
    hits = frame.with_columns(matched=matched).filter(pl.col("matched").is_not_null())
    if hits.height == 0:
        return empty
    if not meta.simple_prefix:
        return hits.select("i", "nsn", state=pl.lit(None, pl.Int8))
    stripped = nsn.str.slice(pl.col("matched").str.len_bytes())
    # _maybe_strip_national_prefix_carrier_code keeps a viable number that stripping would
    # spoil; parse() then keeps the stripped number only if its length is plausible.
    strip = ~(meta.general_matches(nsn) & ~meta.general_matches(stripped))
    return hits.select(
        "i",
        nsn=pl.when(strip & meta.length_ok(stripped)).then(stripped).otherwise(nsn),
        state=pl.lit(_CHECK, pl.Int8),
    )


def _scatter(work: pl.DataFrame, rows: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Write rows (i, nsn, state) into the {prefix}_nsn / {prefix}_state columns of work."""
    if rows.height == 0:
        return work
    index = rows.get_column("i")
    columns = []
    for name in ("nsn", "state"):
        column = work.get_column(f"{prefix}_{name}").clone()
        column.scatter(index, rows.get_column(name))
        columns.append(column)
    return work.with_columns(columns)


class _Number:
    """The attributes is_valid_number reads, reused so no PhoneNumber is built per row."""

    __slots__ = (
        "country_code",
        "national_number",
        "extension",
        "italian_leading_zero",
        "number_of_leading_zeros",
        "raw_input",
        "country_code_source",
        "preferred_domestic_carrier_code",
    )

    def __init__(self) -> None:
        self.country_code = 0
        self.national_number = 0
        self.extension: str | None = None
        self.italian_leading_zero: bool | None = None
        self.number_of_leading_zeros: int | None = None
        self.raw_input: str | None = None
        self.country_code_source = 0
        self.preferred_domestic_carrier_code: str | None = None


def _valid_many(codes: list[int], nsns: list[str], lengths: dict[int, frozenset[int]]) -> list[int]:
    """is_valid_number for each (calling code, national significant number)."""
    number = _Number()
    is_valid = _pn.is_valid_number
    out: list[int] = []
    for code, nsn in zip(codes, nsns, strict=True):
        # A valid number has one of its region's possible lengths: skip the call otherwise.
        if len(nsn) not in lengths[code]:
            out.append(_INVALID)
            continue
        number.country_code = code
        number.national_number = int(nsn)
        if nsn[0] == "0":  # parse() keeps leading zeros (Italy) as two extra fields
            zeros = min(len(nsn) - len(nsn.lstrip("0")), len(nsn) - 1)
            number.italian_leading_zero = True
            number.number_of_leading_zeros = zeros if zeros > 1 else None
        else:
            number.italian_leading_zero = None
            number.number_of_leading_zeros = None
        out.append(_VALID if is_valid(number) else _INVALID)
    return out


def _check_validity(work: pl.DataFrame, tables: _Tables) -> pl.DataFrame:
    """Turn reading states 2 into 1 (valid) or 0, calling the parser once per distinct pair."""
    for prefix in ("a", "b"):
        state, code, nsn = f"{prefix}_state", f"{prefix}_code", f"{prefix}_nsn"
        if prefix == "b":  # same reading twice (a CAMS-style number in its own region)
            work = work.with_columns(
                pl.when(
                    (pl.col(state) == _CHECK)
                    & (pl.col("a_code") == pl.col(code))
                    & (pl.col("a_nsn") == pl.col(nsn))
                    & pl.col("a_state").is_in((_VALID, _INVALID))
                )
                .then(pl.col("a_state"))
                .otherwise(pl.col(state))
                .alias(state)
            )
        todo = work.filter(pl.col(state) == _CHECK)
        if todo.height == 0:
            continue
        states = _valid_many(
            todo.get_column(code).to_list(), todo.get_column(nsn).to_list(), tables.lengths
        )
        column = work.get_column(state).clone()
        column.scatter(todo.get_column("i"), pl.Series(states, dtype=pl.Int8))
        work = work.with_columns(column)
    return work


# --- libphonenumber metadata ---------------------------------------------------------------


@lru_cache(maxsize=1 << 10)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class _Meta:
    """What parse() reads from one region's metadata, as polars expressions."""

    region: str
    country_code: int
    general_pattern: str
    possible_lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]
    national_prefix: str | None  # national_prefix_for_parsing
    simple_prefix: bool  # no transform rule: stripping just drops the matched prefix
    international_prefix: str | None

    def general_matches(self, nsn: pl.Expr) -> pl.Expr:
        # _match_national_number: the whole number matches the pattern; no length check
        return nsn.str.contains(f"^(?:{self.general_pattern})$")

    def length_ok(self, nsn: pl.Expr) -> pl.Expr:
        # _test_number_length is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH
        length = nsn.str.len_bytes()
        fits = length.is_in(self.possible_lengths) | (length > max(self.possible_lengths))
        return fits & ~length.is_in(self.local_lengths)

    def too_long(self, nsn: pl.Expr) -> pl.Expr:
        length = nsn.str.len_bytes()
        return (length > max(self.possible_lengths)) & ~length.is_in(self.local_lengths)


@dataclass(frozen=True, slots=True)
class _Tables:
    countries: dict[int, tuple[_Meta, ...]]  # calling code -> its regions, main region first
    regions: dict[str, _Meta]
    code_texts: tuple[str, ...]
    lengths: dict[int, frozenset[int]]  # calling code -> possible lengths of all its regions
    prefix_patterns: dict[str, str]  # calling code -> "^(?:national prefix)" of its main region


@lru_cache(maxsize=1)
def _tables() -> _Tables | None:
    """phonenumbers' metadata, read once; None (everything goes to _resolve) if unusable."""
    try:
        ref = importlib.import_module("phonenumbers")
        countries: dict[int, tuple[_Meta, ...]] = {}
        for code, names in ref.COUNTRY_CODE_TO_REGION_CODE.items():
            metas = tuple(
                _convert(ref.PhoneMetadata.metadata_for_region_or_calling_code(code, name), name)
                for name in names
            )
            if not metas:
                return None
            countries[code] = metas
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return _Tables(
        countries=countries,
        regions={meta.region: meta for metas in countries.values() for meta in metas},
        code_texts=tuple(str(code) for code in countries),
        lengths={
            code: frozenset(n for meta in metas for n in meta.possible_lengths)
            for code, metas in countries.items()
        },
        prefix_patterns={
            str(code): f"^(?:{metas[0].national_prefix})"
            for code, metas in countries.items()
            if metas[0].national_prefix
        },
    )


def _convert(raw: Any, region: str) -> _Meta:
    general = raw.general_desc
    lengths = tuple(sorted(general.possible_length))
    if not general.national_number_pattern or not lengths or lengths[0] < 0:
        raise ValueError(f"no general description for {region}")
    return _Meta(
        region=region,
        country_code=raw.country_code,
        general_pattern=general.national_number_pattern,
        possible_lengths=lengths,
        local_lengths=tuple(general.possible_length_local_only or ()),
        national_prefix=raw.national_prefix_for_parsing or None,
        simple_prefix=not raw.national_prefix_transform_rule,
        international_prefix=raw.international_prefix or None,
    )
