"""Text clean-up of one cell: from what a spreadsheet holds to ``+digits`` or ``digits``, or the
reason it is not one number (docs/phone-rules.md steps 2-3)."""

from __future__ import annotations

import re
import unicodedata

from campaigner.phones.reasons import (
    DATE,
    DIGITS_LOST,
    LETTERS,
    MINUS,
    MORE_THAN_ONE,
    NO_DIGITS,
    NO_NUMBER,
    PLUS_INSIDE,
    SCIENTIFIC,
    TIME,
    PhoneIssue,
)

__all__ = ("clean",)

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


def clean(raw: str) -> str | PhoneIssue:
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
        return PhoneIssue(NO_NUMBER)
    if _looks_like_date(text):
        return PhoneIssue(DATE)
    if _TIME_RE.fullmatch(text):
        return PhoneIssue(TIME)
    if text.startswith("-") and any(ch.isdigit() for ch in text):
        return PhoneIssue(MINUS)  # a negative number cell, or a stray sign: never dropped
    if _SCIENTIFIC_RE.fullmatch(text):
        return PhoneIssue(SCIENTIFIC)
    as_float = _FLOAT_RE.fullmatch(text)
    if as_float:  # str() of a float cell: "8613812345678.0"; exact only up to 15 digits
        if len(as_float.group(1)) > 15:
            return PhoneIssue(DIGITS_LOST)
        text = as_float.group(1)
    if _ASCII_LETTER.search(text) if text.isascii() else any(ch.isalpha() for ch in text):
        return PhoneIssue(LETTERS)
    if any(ch in ";,|" for ch in text) or text.count("+") > 1 or _two_numbers_around_slash(text):
        return PhoneIssue(MORE_THAN_ONE)
    other = _NOT_ALLOWED.search(text)
    if other:
        return PhoneIssue(
            f"unexpected character {_describe(other.group())}: "
            "keep only digits, spaces, - . ( ) and a leading +"
        )
    core = _SEPARATORS.sub("", text)
    if "+" in core[1:]:
        return PhoneIssue(PLUS_INSIDE)
    if core in ("", "+"):
        return PhoneIssue(NO_DIGITS)
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
