"""The decision for one cell: clean it, choose its country, keep it only if valid
(``normalize_phone``, the reference the column path must match; docs/phone-rules.md)."""

# Rules, in order, numbered as the steps of docs/phone-rules.md (step 1, reading the cell, is the
# input readers'); each failure is a ``PhoneIssue`` with a reason a marketer can act on:
#
# 2. Clean-up (cleanup.py): NFKC (full-width digits), other scripts' digits to ASCII,
#    invisible characters removed, Excel's ``'...`` and ``="..."`` unwrapped, ``tel:`` dropped.
# 3. Whitelist (cleanup.py): digits, spaces, ``- . ( ) /`` and one leading ``+``. Letters,
#    scientific notation (``8.61381E+12``: digits lost in Excel), several numbers in one cell,
#    a leading minus sign (never silently dropped) and dates or times are rejected.
# 4. Country:
#    - ``+`` first: the country code follows.
#    - ``00`` first: dialled from the default region if one is set (it knows e.g. US 011); if
#      that gives no valid number, or without a default region, ``00`` is read as ``+``.
#    - digits without a leading 0 (CAMS style ``8613812345678``): read as ``+digits``. With a
#      default region they are also read as a national number without trunk 0 (US
#      ``4155550123``, CN mobile ``13812345678``): if only one reading is valid it wins; if both
#      are valid and differ (US ``4755551234`` is also Norwegian) the row is rejected as
#      ambiguous rather than risk messaging a stranger, unless the campaign chooses a reading
#      (``ambiguous = "region"`` or ``"country_code"``).
#    - a single leading 0 (trunk prefix): only with a default region.
# 5. The number must be valid (an allocated range; valid implies possible).
# 6. Output: E.164 digits without ``+``.
#
# Parsing uses rphonenumbers (phonenumbers if it is missing); validity is judged by
# phonenumbers' metadata (metadata.py) so that the scalar and the column answers are identical.

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from campaigner.phones.cleanup import clean
from campaigner.phones.metadata import invalid_reason, metadata_tables, valid_nsn
from campaigner.phones.reasons import (
    AMBIGUOUS_HINT,
    BAD_LENGTH,
    LOCAL_ONLY,
    NATIONAL,
    NO_NUMBER,
    NOT_VALID,
    TOO_LONG,
    TOO_SHORT,
    PhoneIssue,
)

__all__ = (
    "AMBIGUITY_CHOICES",
    "Ambiguity",
    "Ambiguous",
    "check_ambiguity",
    "check_region",
    "clear_caches",
    "normalize_cell",
    "normalize_phone",
    "resolve",
)

Ambiguity = Literal["reject", "region", "country_code"]
AMBIGUITY_CHOICES: tuple[Ambiguity, ...] = ("reject", "region", "country_code")


def _import_parser() -> Any:
    # rphonenumbers is a young (0.1.0) Rust port; phonenumbers is the reference fallback.
    try:
        return importlib.import_module("rphonenumbers")
    except ImportError:
        return importlib.import_module("phonenumbers")


_pn: Any = _import_parser()


_PARSE_REASONS = {
    _pn.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    _pn.NumberParseException.NOT_A_NUMBER: "not a phone number",
    _pn.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    _pn.NumberParseException.TOO_SHORT_NSN: "too short",
    _pn.NumberParseException.TOO_LONG: "too long",
}

_POSSIBLE_REASONS = {
    _pn.ValidationResult.TOO_SHORT: TOO_SHORT,
    _pn.ValidationResult.TOO_LONG: TOO_LONG,
    _pn.ValidationResult.INVALID_LENGTH: BAD_LENGTH,
    _pn.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: LOCAL_ONLY,
    _pn.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}


# --- country decision and validation (scalar) ----------------------------------------------


def check_region(default_region: str | None) -> str | None:
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
    tables = metadata_tables()
    if tables is None or code not in tables.countries:  # the parser alone
        label = _label(number)
        if _pn.is_valid_number(number):
            return _Reading(f"{code}{nsn}", code, label)
        possible = _pn.is_possible_number_with_reason(number)
        if possible != _pn.ValidationResult.IS_POSSIBLE:
            return PhoneIssue(_POSSIBLE_REASONS.get(possible, "not a phone number").format(label))
        return PhoneIssue(NOT_VALID.format(label))
    # One source of truth for both paths: phonenumbers' metadata (newer than the copy inside
    # rphonenumbers 0.1.0), replayed.
    if valid_nsn(tables, code, nsn):
        return _Reading(f"{code}{nsn}", code, tables.labels[code])
    return PhoneIssue(invalid_reason(tables, code, len(nsn)))


def _either(
    first: _Reading | PhoneIssue, second: _Reading | PhoneIssue, why: str
) -> str | PhoneIssue:
    if isinstance(first, _Reading):
        return first.e164
    if isinstance(second, _Reading):
        return second.e164
    return PhoneIssue(why.format(first.reason, second.reason))


@dataclass(frozen=True, slots=True)
class Ambiguous:
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
def resolve(core: str, region: str | None) -> str | PhoneIssue | Ambiguous:
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
        return _result(_read(core, region)) if region else PhoneIssue(NATIONAL)
    international_reading = _read("+" + core, None)
    if region is None:
        return _result(international_reading)
    national_reading = _read(core, region)
    if (
        isinstance(international_reading, _Reading)
        and isinstance(national_reading, _Reading)
        and international_reading.e164 != national_reading.e164
    ):
        return Ambiguous(
            region=national_reading.e164,
            country_code=international_reading.e164,
            issue=PhoneIssue(
                f"ambiguous: valid both as a +{international_reading.country_code} "
                f"({international_reading.label}) number and as a {region} national number; "
                f"{AMBIGUOUS_HINT}"
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
    check_ambiguity(ambiguous)
    answer = normalize_cell(raw, check_region(default_region))
    return answer.choose(ambiguous) if isinstance(answer, Ambiguous) else answer


def check_ambiguity(ambiguous: str) -> None:
    if ambiguous not in AMBIGUITY_CHOICES:
        raise ValueError(
            f"unknown ambiguous choice {ambiguous!r}: use one of {', '.join(AMBIGUITY_CHOICES)}"
        )


@lru_cache(maxsize=1 << 14)
def normalize_cell(raw: str, region: str | None) -> str | PhoneIssue | Ambiguous:
    core = clean(raw) if raw else PhoneIssue(NO_NUMBER)
    return core if isinstance(core, PhoneIssue) else resolve(core, region)


def clear_caches() -> None:
    """Forget cached answers (benchmarks time cold runs)."""
    resolve.cache_clear()
    normalize_cell.cache_clear()
