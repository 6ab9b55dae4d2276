"""Why a cell is not a usable phone number: ``PhoneIssue`` and the reasons, in words a marketer
can act on (docs/phone-rules.md)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = (
    "AMBIGUOUS_HINT",
    "BAD_LENGTH",
    "DATE",
    "DIGITS_LOST",
    "LETTERS",
    "LOCAL_ONLY",
    "MINUS",
    "MORE_THAN_ONE",
    "NATIONAL",
    "NOT_VALID",
    "NO_DIGITS",
    "NO_NUMBER",
    "PLUS_INSIDE",
    "SCIENTIFIC",
    "TIME",
    "TOO_LONG",
    "TOO_SHORT",
    "PhoneIssue",
)


@dataclass(frozen=True, slots=True)
class PhoneIssue:
    """Why a cell is not a usable phone number, in words a marketer can act on."""

    reason: str


NO_NUMBER = "no phone number"
SCIENTIFIC = (
    "scientific notation: digits were lost in Excel; "
    "format the column as Text and re-enter the numbers"
)
DIGITS_LOST = (
    "stored as a number and digits were lost; format the column as Text and re-enter the numbers"
)
LETTERS = "contains letters: keep only the number (digits, spaces, - . ( ) and a leading +)"
MORE_THAN_ONE = "more than one number: put one number per row"
PLUS_INSIDE = "the + sign must come first, right before the country code"
NO_DIGITS = "no digits"
MINUS = "starts with '-': remove the minus sign (a phone number is not a negative number)"
DATE = "looks like a date, not a phone number"
TIME = "looks like a time, not a phone number"
NATIONAL = "national number: add the country code or set default_region"
AMBIGUOUS_HINT = "write it with + and the country code"

# Templates: {} is the region code, or +code for non-geographic numbers.
TOO_SHORT = "too short for {}"
TOO_LONG = "too long for {}"
BAD_LENGTH = "wrong number of digits for {}"
LOCAL_ONLY = "too short for {}: the area code may be missing"
NOT_VALID = "not a valid {} number"
