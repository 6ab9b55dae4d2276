"""Phone numbers: from a spreadsheet cell to the E.164 digits CAMS wants (docs/phone-rules.md).

``normalize_phone`` is the reference for one cell; ``normalize_phones`` gives the same answers
for a column, fast enough to preview a million rows.

Rules, in order (each failure is a ``PhoneIssue`` with a reason a marketer can act on):

1. Clean-up: NFKC (full-width digits), other scripts' digits (Arabic-Indic...) to ASCII,
   zero-width/bidi characters and BOM removed, whitespace and NBSP trimmed, Excel's ``'...``
   and ``="..."`` unwrapped, a leading ``tel:`` dropped.
2. Whitelist: digits, spaces, ``- . ( ) /`` and one leading ``+``. Letters, scientific notation
   (``8.61381E+12``: digits lost in Excel), several numbers in one cell, a leading minus sign
   (never silently dropped) and dates or times (``2024-03-01``, ``01/03/2024``) are rejected.
3. Country:
   - ``+`` first: the country code follows.
   - ``00`` first: dialled from the default region if one is set (it knows e.g. US 011); if
     that gives no valid number, or without a default region, ``00`` is read as ``+``.
   - digits without a leading 0 (CAMS style ``8613812345678``): read as ``+digits``. With a
     default region they are also read as a national number without trunk 0 (US
     ``4155550123``, CN mobile ``13812345678``): if only one reading is valid it wins; if both
     are valid and differ (US ``4755551234`` is also Norwegian) the row is rejected as
     ambiguous rather than risk messaging a stranger, unless the campaign chooses a reading
     (``ambiguous = "region"`` or ``"country_code"``).
   - a single leading 0 (trunk prefix): only with a default region.
4. The number must be valid (an allocated range; valid implies possible).
5. Output: E.164 digits without ``+``.

Parsing uses rphonenumbers (phonenumbers if it is missing). Validity is judged by
phonenumbers' metadata in both paths: rphonenumbers 0.1.0 bundles older metadata (9.0.41)
that disagrees with phonenumbers 9.0.43 on a few ranges (BW, SH, ZW, DK, ...), and one
source of truth keeps the scalar and the column answers identical.

``normalize_phones`` cleans plain ASCII cells with polars string ops and replays, on whole
columns, the steps of ``phonenumbers.parse`` + ``is_valid_number`` that matter for digit
strings (calling code, country code without '+', national prefix, region choice, number
types), rejections with their reasons and ambiguity included. What it cannot settle for
sure (other cell shapes, prefix transform rules, dialling prefixes) goes through the scalar
path, cached. Polars compiles a country's patterns on every call (a few ms each), so
countries with few rows in a call are validated in Python instead (about 1 µs a number):
the larger the call, the cheaper each number.
"""

from __future__ import annotations

import importlib
import re
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

import polars as pl

__all__ = ("AMBIGUITY_CHOICES", "Ambiguity", "PhoneIssue", "normalize_phone", "normalize_phones")

Ambiguity = Literal["reject", "region", "country_code"]
AMBIGUITY_CHOICES: tuple[Ambiguity, ...] = ("reject", "region", "country_code")


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
_MINUS = "starts with '-': remove the minus sign (a phone number is not a negative number)"
_DATE = "looks like a date, not a phone number"
_TIME = "looks like a time, not a phone number"
_NATIONAL = "national number: add the country code or set default_region"
_AMBIGUOUS_HINT = "write it with + and the country code"

_PARSE_REASONS = {
    _pn.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    _pn.NumberParseException.NOT_A_NUMBER: "not a phone number",
    _pn.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    _pn.NumberParseException.TOO_SHORT_NSN: "too short",
    _pn.NumberParseException.TOO_LONG: "too long",
}
_TOO_SHORT = "too short for {}"
_TOO_LONG = "too long for {}"
_BAD_LENGTH = "wrong number of digits for {}"
_LOCAL_ONLY = "too short for {}: the area code may be missing"
_NOT_VALID = "not a valid {} number"
_POSSIBLE_REASONS = {
    _pn.ValidationResult.TOO_SHORT: _TOO_SHORT,
    _pn.ValidationResult.TOO_LONG: _TOO_LONG,
    _pn.ValidationResult.INVALID_LENGTH: _BAD_LENGTH,
    _pn.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: _LOCAL_ONLY,
    _pn.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}

# --- text clean-up (scalar) ----------------------------------------------------------------

# Zero-width, bidi and BOM characters: invisible in the sheet, fatal to a parser.
_INVISIBLE = dict.fromkeys(
    (0x00AD, *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0xFEFF)
)
# Word and web pages turn hyphens into dashes; they are still separators.
_DASHES = dict.fromkeys((*range(0x2010, 0x2016), 0x2212, 0xFE63), "-")
_TRANSLATE = {**_INVISIBLE, **_DASHES}


def _ascii_digits(text: str) -> str:
    # NFKC maps full-width digits but leaves other scripts' digits (Arabic-Indic...) alone.
    return "".join(
        str(unicodedata.decimal(ch)) if not ch.isascii() and ch.isdecimal() else ch for ch in text
    )


_EXCEL_FORMULA = re.compile(r'=\s*"(.*)"', re.DOTALL)
_SCIENTIFIC_RE = re.compile(r"\d([.,]\d+)?[eE]\+?\d+")
_FLOAT_RE = re.compile(r"(\d+)\.0")
_SEPARATORS = re.compile(r"[\s\-.()/]")
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_NOT_ALLOWED = re.compile(r"[^0-9\s\-.()/+]")
_MIN_DIGITS_PER_NUMBER = 7  # a '/' between two runs this long separates two numbers
# Dates and times as spreadsheets and our XLSX reader write them: 2024-03-01, 01/03/2024,
# 3/1/24, 2024-03-01T00:00:00, 10:30. Their digits would otherwise be judged as a number.
_CLOCK = r"\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?: ?[AaPp]\.?[Mm]\.?)?"
_DATE_RE = re.compile(
    r"(?:(?P<y>\d{4})(?P<s1>[-/.])(?P<m>\d{1,2})(?P=s1)(?P<d>\d{1,2})"
    r"|(?P<a>\d{1,2})(?P<s2>[-/.])(?P<b>\d{1,2})(?P=s2)(?P<yy>\d{4}|\d{2}))"
    rf"(?:[ T]{_CLOCK})?(?:Z|[+-]\d{{2}}:?\d{{2}})?"
)
_TIME_RE = re.compile(_CLOCK)


def _describe(ch: str) -> str:
    return f"'{ch}'" if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}"


def _looks_like_date(text: str) -> bool:
    match = _DATE_RE.fullmatch(text)
    if match is None:
        return False
    if match["y"] is not None:
        return (
            1900 <= int(match["y"]) <= 2099
            and 1 <= int(match["m"]) <= 12
            and 1 <= int(match["d"]) <= 31
        )
    first, second = int(match["a"]), int(match["b"])
    if len(match["yy"]) == 4 and not 1900 <= int(match["yy"]) <= 2099:
        return False
    return 1 <= first <= 31 and 1 <= second <= 31 and min(first, second) <= 12


def _clean(raw: str) -> str | PhoneIssue:
    """Return the number as ``+digits`` or ``digits``, or why it is not one
    (docs/phone-rules.md steps 2-3)."""
    text = raw
    if not text.isascii():
        text = _ascii_digits(unicodedata.normalize("NFKC", text).translate(_TRANSLATE))
    text = text.strip()
    if text.startswith("'"):  # Excel's "this is text" prefix
        text = text[1:].strip()
    formula = _EXCEL_FORMULA.fullmatch(text)
    if formula:  # ="..." keeps leading zeros in Excel
        text = formula.group(1).strip()
    if text[:4].lower() == "tel:":
        text = text[4:].strip()
    if not text:
        return PhoneIssue(_NO_NUMBER)
    if _looks_like_date(text):
        return PhoneIssue(_DATE)
    if _TIME_RE.fullmatch(text):
        return PhoneIssue(_TIME)
    if text.startswith("-") and any(ch.isdigit() for ch in text):
        return PhoneIssue(_MINUS)  # a negative number cell, or a stray sign: never dropped
    if _SCIENTIFIC_RE.fullmatch(text):
        return PhoneIssue(_SCIENTIFIC)
    as_float = _FLOAT_RE.fullmatch(text)
    if as_float:  # str() of a float cell: "8613812345678.0"; exact only up to 15 digits
        if len(as_float.group(1)) > 15:
            return PhoneIssue(_DIGITS_LOST)
        text = as_float.group(1)
    if _ASCII_LETTER.search(text) if text.isascii() else any(ch.isalpha() for ch in text):
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
    country_code: int
    label: str  # region code, or +code for non-geographic numbers


def _read(text: str, region: str | None) -> _Reading | PhoneIssue:
    """Parse one reading of the number; keep it only if it is a valid number."""
    try:
        number = _pn.parse(text, region)
    except _pn.NumberParseException as exc:
        return PhoneIssue(_PARSE_REASONS.get(exc.error_type, "not a phone number"))
    code = number.country_code
    nsn = _pn.national_significant_number(number)
    tables = _tables()
    if tables is None or code not in tables.countries:  # the parser alone
        label = _label(number)
        if _pn.is_valid_number(number):
            return _Reading(f"{code}{nsn}", code, label)
        possible = _pn.is_possible_number_with_reason(number)
        if possible != _pn.ValidationResult.IS_POSSIBLE:
            return PhoneIssue(_POSSIBLE_REASONS.get(possible, "not a phone number").format(label))
        return PhoneIssue(_NOT_VALID.format(label))
    # One source of truth for both paths: phonenumbers' metadata (newer than the copy inside
    # rphonenumbers 0.1.0), replayed.
    if _valid_nsn(tables, code, nsn):
        return _Reading(f"{code}{nsn}", code, tables.labels[code])
    return PhoneIssue(_invalid_reason(tables, code, len(nsn)))


def _invalid_reason(tables: _Tables, code: int, length: int) -> str:
    """Why a parsed, invalid number is rejected: its length (is_possible_number's verdict,
    from the main region's lengths), or else its range."""
    template = tables.countries[code][0].length_problem(length) or _NOT_VALID
    return template.format(tables.labels[code])


def _either(
    first: _Reading | PhoneIssue, second: _Reading | PhoneIssue, why: str
) -> str | PhoneIssue:
    if isinstance(first, _Reading):
        return first.e164
    if isinstance(second, _Reading):
        return second.e164
    return PhoneIssue(why.format(first.reason, second.reason))


@dataclass(frozen=True, slots=True)
class _Ambiguous:
    """Digits valid both as a national number of the default region and with a country code."""

    region: str  # E.164 of the national reading
    country_code: str  # E.164 of the +digits reading
    issue: PhoneIssue  # the rejection, when the campaign does not choose

    def choose(self, ambiguous: Ambiguity) -> str | PhoneIssue:
        if ambiguous == "region":
            return self.region
        if ambiguous == "country_code":
            return self.country_code
        return self.issue


@lru_cache(maxsize=1 << 16)
def _resolve(core: str, region: str | None) -> str | PhoneIssue | _Ambiguous:
    """docs/phone-rules.md steps 4-6 for a cleaned number; cached because lists repeat numbers."""
    if core.startswith("+"):
        return _result(_read(core, None))
    if core.startswith("00"):
        international = "+" + core[2:]
        if region is None:
            return _result(_read(international, None))
        return _either(
            _read(core, region),
            _read(international, None),
            f"not a usable number: dialled from {region}, {{}}; with 00 read as +, {{}}",
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
        return _Ambiguous(
            region=national_reading.e164,
            country_code=international_reading.e164,
            issue=PhoneIssue(
                f"ambiguous: valid both as a +{international_reading.country_code} "
                f"({international_reading.label}) number and as a {region} national number; "
                f"{_AMBIGUOUS_HINT}"
            ),
        )
    return _either(
        international_reading,
        national_reading,
        f"not a usable number: with a country code, {{}}; as a {region} number, {{}}",
    )


def _result(reading: _Reading | PhoneIssue) -> str | PhoneIssue:
    return reading.e164 if isinstance(reading, _Reading) else reading


def normalize_phone(
    raw: str, default_region: str | None, ambiguous: Ambiguity = "reject"
) -> str | PhoneIssue:
    """E.164 digits without '+' (``"447911123456"``), or the reason the cell is unusable.

    ``default_region`` (ISO 3166, e.g. ``"GB"``) is used for numbers written without a
    country code; an unknown region raises ``ValueError`` because it is a campaign setting.
    ``ambiguous`` says what digits valid both ways (CN ``15012345678`` is also a +1 number)
    become: rejected, the ``region``'s national number, or read with a ``country_code``.
    """
    _check_ambiguity(ambiguous)
    answer = _normalize(raw, _check_region(default_region))
    return answer.choose(ambiguous) if isinstance(answer, _Ambiguous) else answer


def _check_ambiguity(ambiguous: str) -> None:
    if ambiguous not in AMBIGUITY_CHOICES:
        raise ValueError(
            f"unknown ambiguous choice {ambiguous!r}: use one of {', '.join(AMBIGUITY_CHOICES)}"
        )


@lru_cache(maxsize=1 << 14)
def _normalize(raw: str, region: str | None) -> str | PhoneIssue | _Ambiguous:
    core = _clean(raw) if raw else PhoneIssue(_NO_NUMBER)
    return core if isinstance(core, PhoneIssue) else _resolve(core, region)


# --- vectorized path -----------------------------------------------------------------------

# Cells cleaned by polars; the rest go through _clean. A '+' may only precede the digits;
# "123.0" (a float cell written as text) needs _clean's digits-lost check, a leading '-' and
# anything shaped like a date its own reason (_clean decides exactly).
_FAST_LANE = r"^[ (]*\+?[0-9 ().\-]*[0-9][0-9 ().\-]*$"
_FAST_ASIDE = (
    r"^ *[0-9]+\.0 *$|^[ (]*-"
    r"|^ *[0-9]{4}[-.][0-9]{1,2}[-.][0-9]{1,2} *$|^ *[0-9]{1,2}[-.][0-9]{1,2}[-.][0-9]{2,4} *$"
)
_FAST_SEPARATORS = r"[ ().\-]"


def normalize_phones(
    values: pl.Series, default_region: str | None, ambiguous: Ambiguity = "reject"
) -> pl.DataFrame:
    """``normalize_phone`` for a column: a frame of ``e164`` and ``phone_error`` (one is null),
    and, for ambiguous numbers only, both readings: ``region_reading`` (national number of
    the default region) and ``country_code_reading``, whatever ``ambiguous`` chose.

    Same length and order as ``values``; never raises on cell contents.
    """
    _check_ambiguity(ambiguous)
    region = _check_region(default_region)
    raw = values if values.dtype == pl.String else values.cast(pl.String, strict=False)
    fast = pl.col("raw").str.contains(_FAST_LANE) & ~pl.col("raw").str.contains(_FAST_ASIDE)
    work = (
        pl.DataFrame({"raw": raw}, schema={"raw": pl.String})
        .with_row_index("i")
        .with_columns(key=pl.when(fast).then(pl.col("raw").str.replace_all(_FAST_SEPARATORS, "")))
    )
    tables = _tables()
    if tables is None or (region is not None and region not in tables.regions):
        work = work.with_columns(
            e164=pl.lit(None, pl.String),
            error=pl.lit(None, pl.String),
            region_reading=pl.lit(None, pl.String),
            country_code_reading=pl.lit(None, pl.String),
        )
    else:
        work = _read_fast_lane(work, region, tables)
    work = work.with_columns(
        error=pl.when(pl.col("raw").is_null()).then(pl.lit(_NO_NUMBER)).otherwise("error")
    )
    # Whatever the columns could not settle: one cached call per row.
    todo = work.filter(pl.col("e164").is_null() & pl.col("error").is_null())
    columns = {
        "e164": work.get_column("e164").clone(),
        "phone_error": work.get_column("error").clone(),
        **{name: work.get_column(name).clone() for name in _READINGS},
    }
    if todo.height:
        answers = [
            _resolve(key, region) if key is not None else _normalize(cell, region)
            for key, cell in zip(todo.get_column("key"), todo.get_column("raw"), strict=True)
        ]
        settled = {
            "e164": [a if isinstance(a, str) else None for a in answers],
            "phone_error": [_reason(a) for a in answers],
            "region_reading": [a.region if isinstance(a, _Ambiguous) else None for a in answers],
            "country_code_reading": [
                a.country_code if isinstance(a, _Ambiguous) else None for a in answers
            ],
        }
        index = todo.get_column("i")
        for name, values_ in settled.items():
            columns[name].scatter(index, pl.Series(values_, dtype=pl.String))
    result = pl.DataFrame(columns, schema=_RESULT_SCHEMA)
    if ambiguous != "reject":
        chosen = pl.col(f"{ambiguous}_reading")
        result = result.with_columns(
            e164=pl.coalesce(chosen, "e164"),
            phone_error=pl.when(chosen.is_null()).then(pl.col("phone_error")),
        )
    return result.select(*_RESULT_SCHEMA)


def _reason(answer: str | PhoneIssue | _Ambiguous) -> str | None:
    if isinstance(answer, _Ambiguous):
        return answer.issue.reason
    return answer.reason if isinstance(answer, PhoneIssue) else None


_READINGS = ("region_reading", "country_code_reading")
_RESULT_SCHEMA = {
    "e164": pl.String,
    "phone_error": pl.String,
    "region_reading": pl.String,
    "country_code_reading": pl.String,
}

# Reading states: 0 invalid, 1 valid, 2 still to validate, null unknown (left to _resolve).
_INVALID, _VALID, _CHECK = 0, 1, 2


def _read_fast_lane(work: pl.DataFrame, region: str | None, tables: _Tables) -> pl.DataFrame:
    """Settle cleaned numbers (column key) the way ``_resolve`` would: adds e164 and error.

    Each reading of a number (``+digits``, national) is replayed on whole columns; rows that
    are not certain (rejections need a reason, ambiguity, steps not replayed) stay null.
    """
    key = pl.col("key")
    work = work.with_columns(
        plus=key.str.starts_with("+"),
        idd=key.str.starts_with("00"),
        zero=key.str.starts_with("0"),
    )
    plus, idd = pl.col("plus"), pl.col("idd")
    trunk = pl.col("zero") & ~idd
    if region is None:
        idd_is_plus = idd
    else:
        # Dialled from a region whose international prefix is 00, "00 44..." reads as "+44...".
        prefix = tables.regions[region].international_prefix
        idd_is_plus = (
            (
                idd & (key.str.extract(f"^({prefix})", 1) == "00") & (key.str.slice(2, 1) != "0")
            ).fill_null(False)
            if prefix
            else pl.lit(False)
        )
    national_too = pl.lit(region is not None)
    work = work.with_columns(
        # +digits; 00 read as +; digits without a trunk 0 (first reading)
        intl=pl.when(plus)
        .then(key.str.slice(1))
        .when(idd)
        .then(key.str.slice(2))
        .when(~trunk)
        .then(key),
        # read as dialled in the default region
        national=pl.when(national_too & ~plus & ~idd_is_plus).then(key),
        error=pl.when(trunk & ~national_too).then(pl.lit(_NATIONAL)),
    )
    work = _read_international(work, tables)
    work = _read_national(work, region, tables)
    work = _check_validity(work, tables)
    work = _add_reasons(work, tables)
    a_ok, a_bad = pl.col("a_state") == _VALID, pl.col("a_state") == _INVALID
    b_ok, b_bad = pl.col("b_state") == _VALID, pl.col("b_state") == _INVALID
    has_a, has_b = pl.col("intl").is_not_null(), pl.col("national").is_not_null()
    same = pl.col("a_e164") == pl.col("b_e164")
    a_first = has_a & ~idd  # 00 dialled from a region: its own reading comes first
    label = pl.col("a_code").replace_strict(tables.labels, default=None, return_dtype=pl.String)
    ambiguous = pl.concat_str(
        pl.lit("ambiguous: valid both as a +"),
        pl.col("a_code").cast(pl.String),
        pl.lit(" ("),
        label,
        pl.lit(f") number and as a {region} national number; {_AMBIGUOUS_HINT}"),
    )
    # The same messages as _resolve, for rejections whose reasons are known here.
    a_reason, b_reason = pl.col("a_reason"), pl.col("b_reason")
    neither = pl.concat_str(
        pl.lit("not a usable number: with a country code, "),
        a_reason,
        pl.lit(f"; as a {region} number, "),
        b_reason,
    )
    dialled = pl.concat_str(
        pl.lit(f"not a usable number: dialled from {region}, "),
        pl.when(has_b).then(b_reason).otherwise(a_reason),  # "00" is the IDD: one reading
        pl.lit("; with 00 read as +, "),
        a_reason,
    )
    is_ambiguous = a_first & a_ok & has_b & b_ok & ~same
    rejected = (
        pl.when(is_ambiguous)
        .then(ambiguous)
        .when(a_first & has_b & a_bad & b_bad)
        .then(neither)
        .when(a_first & a_bad & ~has_b)
        .then(a_reason)
        .when(idd & pl.lit(region is not None) & a_bad & (b_bad | ~has_b))
        .then(dialled)
        .when(idd & a_bad & ~has_b)
        .then(a_reason)
        .when(~has_a & has_b & b_bad)
        .then(b_reason)
    )
    return work.with_columns(
        error=pl.coalesce("error", rejected),
        e164=pl.when(a_first & a_ok & (~has_b | b_bad | (b_ok & same)))
        .then(pl.col("a_e164"))
        .when(a_first & a_bad & b_ok)
        .then(pl.col("b_e164"))
        .when(~a_first & has_b & b_ok)
        .then(pl.col("b_e164"))
        .when(~a_first & (~has_b | b_bad) & a_ok)
        .then(pl.col("a_e164")),
        region_reading=pl.when(is_ambiguous).then(pl.col("b_e164")),
        country_code_reading=pl.when(is_ambiguous).then(pl.col("a_e164")),
    )


def _add_reasons(work: pl.DataFrame, tables: _Tables) -> pl.DataFrame:
    """{prefix}_reason: why an invalid reading is rejected, as _read words it.

    Only where parse() cannot have raised (a national number of 2 to 17 digits); the rest is
    left to _resolve. Reasons depend on (calling code, length) only: computed once per pair.
    """
    for prefix in ("a", "b"):
        state, code, nsn = f"{prefix}_state", f"{prefix}_code", f"{prefix}_nsn"
        rows = work.filter(
            (pl.col(state) == _INVALID) & pl.col(nsn).str.len_bytes().is_between(2, 17)
        ).select("i", code=code, length=pl.col(nsn).str.len_bytes().cast(pl.Int32))
        pairs = rows.select("code", "length").unique()
        reasons = [
            _invalid_reason(tables, country, length)
            for country, length in zip(
                pairs.get_column("code").to_list(),
                pairs.get_column("length").to_list(),
                strict=True,
            )
        ]
        pairs = pairs.with_columns(reason=pl.Series(reasons, dtype=pl.String))
        rows = rows.join(pairs, on=["code", "length"], how="left")
        column = pl.Series(f"{prefix}_reason", [None] * work.height, dtype=pl.String)
        column.scatter(rows.get_column("i"), rows.get_column("reason"))
        work = work.with_columns(column)
    return work


def _read_international(work: pl.DataFrame, tables: _Tables) -> pl.DataFrame:
    """Replay ``parse("+" + intl)`` up to validation: a_state, a_code, a_nsn."""
    digits = pl.col("intl")
    # too short after the '+', or no calling code (none starts with 0): parse() raises
    work = work.with_columns(
        head=digits.str.slice(0, 3).cast(pl.Int32, strict=False),
        hopeless=(digits.str.len_bytes() <= 2) | digits.str.starts_with("0"),
    )
    # Calling codes are prefix-free: at most one of the 1-3 digit heads is a code.
    heads = [pl.col("head") // divisor for divisor in (100, 10, 1)]
    work = work.with_columns(
        a_code=pl.when(~pl.col("hopeless")).then(
            pl.coalesce([pl.when(head.is_in(tables.codes)).then(head) for head in heads])
        )
    ).with_columns(
        a_nsn=digits.str.slice(pl.col("a_code").cast(pl.String).str.len_bytes()),
        a_state=pl.when(digits.is_null())
        .then(pl.lit(None, pl.Int8))
        .when(pl.col("a_code").is_null())
        .then(pl.lit(_INVALID, pl.Int8))
        .otherwise(pl.lit(_CHECK, pl.Int8)),
    )
    # Few numbers start with their country's national prefix; replay those per country.
    prefix = pl.col("a_code").replace_strict(
        tables.prefix_patterns, default=None, return_dtype=pl.String
    )
    hits = work.filter(
        (pl.col("a_state") == _CHECK)
        & pl.col("a_nsn").str.contains(prefix, strict=False).fill_null(False)
    )
    for (code_value,), group in hits.group_by("a_code"):
        main = tables.countries[int(str(code_value))][0]
        work = _scatter(work, _strip_national_prefix(group.select("i", nsn="a_nsn"), main), "a")
    return work


def _read_national(work: pl.DataFrame, region: str | None, tables: _Tables) -> pl.DataFrame:
    """Replay ``parse(national, region)`` up to validation: b_state, b_code, b_nsn."""
    if region is None:
        return work.with_columns(
            b_state=pl.lit(None, pl.Int8),
            b_code=pl.lit(None, pl.Int32),
            b_nsn=pl.lit(None, pl.String),
        )
    meta = tables.regions[region]
    main = tables.countries[meta.country_code][0]
    digits = pl.col("national")
    unknown = pl.lit(False)
    if meta.international_prefix:  # dialled with the region's own IDD: not replayed here
        unknown = digits.str.contains(f"^(?:{meta.international_prefix})")
    work = work.with_columns(
        b_code=pl.when(digits.is_not_null()).then(pl.lit(meta.country_code, pl.Int32)),
        b_nsn=digits,
        b_state=pl.when(digits.is_null() | unknown)
        .then(pl.lit(None, pl.Int8))
        .otherwise(pl.lit(_CHECK, pl.Int8)),
    )
    # _maybe_extract_country_code: a leading country code of the region is dropped when the
    # number is not viable (or too long) with it and viable without it.
    code = str(meta.country_code)
    after = pl.col("nsn").str.slice(len(code))
    starting = work.filter((pl.col("b_state") == _CHECK) & digits.str.starts_with(code)).select(
        "i", nsn=digits
    )
    inner = (
        after.str.contains(f"^(?:{meta.national_prefix})")
        if meta.national_prefix
        else pl.lit(False)
    )
    starting = starting.select(
        "i",
        nsn=after,
        state=pl.when(inner).then(pl.lit(None, pl.Int8)).otherwise(pl.lit(_CHECK, pl.Int8)),
        drop=(~meta.general_matches(pl.col("nsn")) & meta.general_matches(after))
        | meta.too_long(pl.col("nsn")),
    ).filter(pl.col("drop") | pl.col("state").is_null())
    work = _scatter(work, starting, "b")
    dropped = starting.filter(pl.col("state") == _CHECK).get_column("i")
    # Once it has read a country code, parse() continues with the main region's metadata.
    todo = work.filter(pl.col("b_state") == _CHECK)
    is_dropped = pl.col("i").is_in(dropped.implode())
    for group, parsing in (
        (todo.filter(is_dropped), main),
        (todo.filter(~is_dropped), meta),
    ):
        stripped = _strip_national_prefix(group.select("i", nsn="b_nsn"), parsing)
        work = _scatter(work, stripped, "b")
    return work


def _strip_national_prefix(frame: pl.DataFrame, meta: _Meta) -> pl.DataFrame:
    """parse()'s national-prefix step for rows (i, nsn) read with ``meta``.

    Returns the rows it concerns: i, nsn, state (null where a transform rule applies).
    """
    empty = pl.DataFrame(schema={"i": pl.UInt32, "nsn": pl.String, "state": pl.Int8})
    if not meta.national_prefix or frame.height == 0:
        return empty
    pattern = f"^({meta.national_prefix})"
    nsn = pl.col("nsn")
    hits = frame.with_columns(matched=nsn.str.extract(pattern, 1)).filter(
        pl.col("matched").is_not_null()
    )
    if not meta.simple_prefix:
        # The transform rule applies only when the pattern's last group took part.
        transformed = nsn.str.extract(pattern, 1 + meta.prefix_groups).is_not_null()
        if meta.prefix_groups == 0:
            transformed = pl.lit(True)
        hits = hits.with_columns(transformed=transformed)
        left = hits.filter(pl.col("transformed")).select("i", "nsn", state=pl.lit(None, pl.Int8))
        hits = hits.filter(~pl.col("transformed"))
    else:
        left = empty
    if hits.height == 0:
        return left
    stripped = nsn.str.slice(pl.col("matched").str.len_bytes())
    # Stripping must not spoil a viable number; parse() then keeps the stripped number only
    # if its length is plausible.
    strip = ~(meta.general_matches(nsn) & ~meta.general_matches(stripped))
    done = hits.select(
        "i",
        nsn=pl.when(strip & meta.length_ok(stripped)).then(stripped).otherwise(nsn),
        state=pl.lit(_CHECK, pl.Int8),
    )
    return pl.concat([left, done])


def _scatter(work: pl.DataFrame, rows: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Write rows (i, nsn, state) into the {prefix}_nsn and {prefix}_state columns."""
    if rows.height == 0:
        return work
    index = rows.get_column("i")
    columns = []
    for name in ("nsn", "state"):
        column = work.get_column(f"{prefix}_{name}").clone()
        column.scatter(index, rows.get_column(name))
        columns.append(column)
    return work.with_columns(columns)


# Below this many rows of one country, validating in Python beats compiling its patterns.
_REGEX_MIN_ROWS = 6000


def _check_validity(work: pl.DataFrame, tables: _Tables) -> pl.DataFrame:
    """Turn reading state 2 into 1 (valid) or 0, and add {prefix}_e164 columns."""
    for prefix in ("a", "b"):
        state, code, nsn = f"{prefix}_state", f"{prefix}_code", f"{prefix}_nsn"
        e164 = (pl.col(code).cast(pl.String) + pl.col(nsn)).alias(f"{prefix}_e164")
        work = work.with_columns(e164)
        if prefix == "b":  # the same number as the first reading (CAMS style in its region)
            copy = (
                (pl.col(state) == _CHECK)
                & (pl.col("a_e164") == pl.col("b_e164"))
                & pl.col("a_state").is_in((_VALID, _INVALID))
            )
            work = work.with_columns(
                pl.when(copy).then(pl.col("a_state")).otherwise(pl.col(state)).alias(state)
            )
        todo = work.filter(pl.col(state) == _CHECK).select("i", code=code, nsn=nsn)
        if todo.height == 0:
            continue
        # Compiling a country's patterns for polars costs milliseconds: worth it only for
        # countries with many rows. The others are checked one by one.
        counts = todo.group_by("code").len()
        many = counts.filter(pl.col("len") >= _REGEX_MIN_ROWS).get_column("code")
        few = todo.filter(~pl.col("code").is_in(many.implode()))
        checked = [
            few.select(
                "i",
                valid=pl.Series(
                    [
                        _valid_nsn(tables, country, number)
                        for country, number in zip(
                            few.get_column("code").to_list(),
                            few.get_column("nsn").to_list(),
                            strict=True,
                        )
                    ],
                    dtype=pl.Boolean,
                ),
            )
        ]
        for (country,), group in todo.filter(pl.col("code").is_in(many.implode())).group_by("code"):
            metas = tables.countries[int(str(country))]
            checked.append(_valid_column(group.select("i", "nsn"), metas, tables))
        done = pl.concat(checked)
        column = work.get_column(state).clone()
        column.scatter(done.get_column("i"), done.get_column("valid").cast(pl.Int8))
        work = work.with_columns(column)
    return work


def _valid_column(frame: pl.DataFrame, metas: tuple[_Meta, ...], tables: _Tables) -> pl.DataFrame:
    """_valid_nsn on a column (i, nsn) of one calling code: columns i, valid."""
    nsn = pl.col("nsn")
    done: list[pl.DataFrame] = []
    rest = frame
    if len(metas) > 1:  # screen before trying region after region
        code = metas[0].country_code
        rest = frame.with_columns(
            valid=nsn.str.len_bytes().is_in(tables.lengths[code])
            & nsn.str.contains(f"^(?:{tables.screens[code].pattern})$")
        )
        done.append(rest.filter(~pl.col("valid")))
        rest = rest.filter(pl.col("valid")).select("i", "nsn")
    for meta in metas:
        if rest.height == 0:
            break
        if meta.leading_digits:  # this region decides for every number it prefixes
            rest = rest.with_columns(chosen=nsn.str.contains(f"^(?:{meta.leading_digits})"))
            done.append(_valid_rows(rest.filter(pl.col("chosen")), meta))
            rest = rest.filter(~pl.col("chosen")).select("i", "nsn")
        else:  # this region decides for the numbers valid in it
            checked = _valid_rows(rest, meta)
            done.append(checked.filter(pl.col("valid")).select("i", "valid"))
            rest = checked.filter(~pl.col("valid")).select("i", "nsn")
    done.append(rest.select("i", valid=pl.lit(False)))
    return pl.concat([part.select("i", "valid") for part in done])


def _valid_rows(frame: pl.DataFrame, meta: _Meta) -> pl.DataFrame:
    """Rows (i, nsn) with valid = the number is valid in ``meta``'s region."""
    if frame.height == 0:
        return frame.select("i", "nsn", valid=pl.lit(False))
    length_ok = pl.col("nsn").str.len_bytes().is_in(meta.possible_lengths)
    frame = frame.select("i", "nsn").with_columns(length_ok=length_ok)
    # Regexes are the costly part: run them only on numbers of a possible length.
    plausible = frame.filter(pl.col("length_ok")).select(
        "i", "nsn", valid=meta.valid(pl.col("nsn"))
    )
    hopeless = frame.filter(~pl.col("length_ok")).select("i", "nsn", valid=pl.lit(False))
    return pl.concat([plausible, hopeless])


def _valid_nsn(tables: _Tables, code: int, nsn: str) -> bool:
    """phonenumbers.is_valid_number for a calling code and a national significant number."""
    metas = tables.countries[code]
    if len(metas) == 1:
        return metas[0].valid_text(nsn)
    if len(nsn) not in tables.lengths[code] or tables.screens[code].fullmatch(nsn) is None:
        return False  # no region of the code has such a number
    # region_code_for_number: the first region whose leading digits match decides, or else
    # the first region the number is valid for.
    for meta in metas:
        if meta.leading_digits:
            if _compiled(meta.leading_digits).match(nsn):
                return meta.valid_text(nsn)
        elif meta.valid_text(nsn):
            return True
    return False


# --- libphonenumber metadata ---------------------------------------------------------------


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True, slots=True)
class _Desc:
    """A PhoneNumberDesc: one of ``lengths`` (None: any length) and a full pattern match."""

    lengths: tuple[int, ...] | None
    pattern: str

    def matches(self, nsn: pl.Expr) -> pl.Expr:
        hit = nsn.str.contains(f"^(?:{self.pattern})$")
        return hit if self.lengths is None else nsn.str.len_bytes().is_in(self.lengths) & hit

    @property
    def lookahead_pattern(self) -> str:
        # Python regex: the whole rest of the text has one of the lengths and matches.
        length = "|".join(rf"\d{{{n}}}" for n in self.lengths or ())
        guard = rf"(?=(?:{length})\Z)" if self.lengths else ""
        return rf"{guard}(?=(?:{self.pattern})\Z)"


@dataclass(frozen=True, slots=True)
class _Meta:
    """What parse() reads from one region's metadata, as polars expressions."""

    region: str
    country_code: int
    general_pattern: str
    possible_lengths: tuple[int, ...]
    local_lengths: tuple[int, ...]
    national_prefix: str | None  # national_prefix_for_parsing
    prefix_groups: int  # capturing groups in national_prefix
    simple_prefix: bool  # no transform rule: stripping just drops the matched prefix
    international_prefix: str | None
    leading_digits: str | None
    general: _Desc
    types: tuple[_Desc, ...]  # number types (mobile, fixed line...), one per length set
    valid_pattern: str  # valid() as one Python regex, for numbers checked one by one

    def valid(self, nsn: pl.Expr) -> pl.Expr:
        # _number_type_helper(...) != UNKNOWN
        typed = pl.lit(False)
        for desc in self.types:
            typed = typed | desc.matches(nsn)
        return self.general.matches(nsn) & typed

    def valid_text(self, nsn: str) -> bool:
        return _compiled(self.valid_pattern).fullmatch(nsn) is not None

    def general_matches(self, nsn: pl.Expr) -> pl.Expr:
        # _match_national_number: the whole number matches the pattern; no length check
        return nsn.str.contains(f"^(?:{self.general_pattern})$")

    def length_ok(self, nsn: pl.Expr) -> pl.Expr:
        # _test_number_length is not TOO_SHORT, IS_POSSIBLE_LOCAL_ONLY or INVALID_LENGTH
        length = nsn.str.len_bytes()
        fits = length.is_in(self.possible_lengths) | (length > max(self.possible_lengths))
        return fits & ~length.is_in(self.local_lengths)

    def length_problem(self, length: int) -> str | None:
        # _test_number_length(..., UNKNOWN) as a reason template; None when possible
        if length in self.local_lengths:
            return _LOCAL_ONLY
        if length == self.possible_lengths[0] or length in self.possible_lengths:
            return None
        if length < self.possible_lengths[0]:
            return _TOO_SHORT
        if length > self.possible_lengths[-1]:
            return _TOO_LONG
        return _BAD_LENGTH

    def too_long(self, nsn: pl.Expr) -> pl.Expr:
        length = nsn.str.len_bytes()
        return (length > max(self.possible_lengths)) & ~length.is_in(self.local_lengths)


@dataclass(frozen=True, slots=True)
class _Tables:
    countries: dict[int, tuple[_Meta, ...]]  # calling code -> its regions, main region first
    regions: dict[str, _Meta]
    codes: tuple[int, ...]
    # calling code -> quick tests every valid number passes: its regions' lengths and patterns
    lengths: dict[int, tuple[int, ...]]
    screens: dict[int, re.Pattern[str]]
    prefix_patterns: dict[int, str]  # calling code -> "^(?:national prefix)" of its main region
    labels: dict[int, str]  # calling code -> main region, or "+code" when not geographic


@lru_cache(maxsize=1)
def _tables() -> _Tables | None:
    """phonenumbers' metadata, read once; None (everything goes to _resolve) if unusable."""
    try:
        ref = importlib.import_module("phonenumbers")
        countries = {
            code: tuple(
                _convert(ref.PhoneMetadata.metadata_for_region_or_calling_code(code, name), name)
                for name in names
            )
            for code, names in ref.COUNTRY_CODE_TO_REGION_CODE.items()
        }
    except (ImportError, AttributeError, TypeError, ValueError, re.error):
        return None
    if not all(countries.values()):
        return None
    return _Tables(
        countries=countries,
        regions={meta.region: meta for metas in countries.values() for meta in metas},
        codes=tuple(countries),
        lengths={
            code: tuple(sorted({n for meta in metas for n in meta.possible_lengths}))
            for code, metas in countries.items()
        },
        screens={
            code: re.compile("|".join(f"(?:{meta.general_pattern})" for meta in metas))
            for code, metas in countries.items()
        },
        prefix_patterns={
            code: f"^(?:{metas[0].national_prefix})"
            for code, metas in countries.items()
            if metas[0].national_prefix
        },
        labels={
            code: f"+{code}" if metas[0].region == "001" else metas[0].region
            for code, metas in countries.items()
        },
    )


def _convert(raw: Any, region: str) -> _Meta:
    general = raw.general_desc
    lengths = tuple(sorted(general.possible_length))
    if not general.national_number_pattern or not lengths or lengths[0] < 0:
        raise ValueError(f"no general description for {region}")
    prefix = raw.national_prefix_for_parsing or None
    by_lengths: dict[tuple[int, ...] | None, list[str]] = {}
    for name in _TYPE_DESCS:
        desc = getattr(raw, name)
        if desc is not None and desc.national_number_pattern:
            lengths_key = tuple(desc.possible_length) if desc.possible_length else None
            by_lengths.setdefault(lengths_key, []).append(desc.national_number_pattern)
    general_desc = _Desc(lengths, general.national_number_pattern)
    types = tuple(
        _Desc(key, "|".join(f"(?:{p})" for p in patterns)) for key, patterns in by_lengths.items()
    )
    # Lookaheads give the AND of the general and the type checks in one Python regex.
    typed = "|".join(desc.lookahead_pattern for desc in types) or "(?!)"
    return _Meta(
        region=region,
        country_code=raw.country_code,
        general_pattern=general.national_number_pattern,
        possible_lengths=lengths,
        local_lengths=tuple(general.possible_length_local_only or ()),
        national_prefix=prefix,
        prefix_groups=re.compile(prefix).groups if prefix else 0,
        simple_prefix=not raw.national_prefix_transform_rule,
        international_prefix=raw.international_prefix or None,
        leading_digits=raw.leading_digits or None,
        general=general_desc,
        types=types,
        valid_pattern=rf"{general_desc.lookahead_pattern}(?:{typed})\d*",
    )


# The number types _number_type_helper tries; a number is valid if it is one of them.
_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
