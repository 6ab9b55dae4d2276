"""The bounds on what one render may build or spend, and the error for going over one."""

from __future__ import annotations

__all__ = (
    "MAX_BITS",
    "MAX_BUILT",
    "MAX_DEPTH",
    "MAX_DIGITS",
    "MAX_ITEMS",
    "MAX_STEPS",
    "MAX_STRING",
    "TIME_LIMIT_S",
    "LimitExceeded",
    "OutputTooLong",
    "bound_length",
    "items_error",
    "number_error",
    "string_error",
)

MAX_STRING = 100_000  # characters in any one string a template builds
MAX_ITEMS = 100_000  # items any one list/table unfolds to (64 characters of text count one)
MAX_DIGITS = 4_300  # digits of a number (Python's own limit for printing one)
MAX_DEPTH = 64  # nesting of lists and tables
MAX_BUILT = 2_000_000  # characters and items built by one render, in all (memory)
MAX_STEPS = 250_000  # hooks one render may pass: operators, calls, lookups, loop turns...
TIME_LIMIT_S = 2.0  # wall clock for one render, for what is slow in few steps

MAX_BITS = MAX_DIGITS * 10 // 3  # about MAX_DIGITS decimal digits


class LimitExceeded(Exception):
    """A render went over a bound; the message is the reason, in words."""


class OutputTooLong(LimitExceeded):
    """The rendered text went over the caller's limit."""


def string_error() -> LimitExceeded:
    return LimitExceeded(f"the template builds a string over {MAX_STRING} characters")


def items_error() -> LimitExceeded:
    return LimitExceeded(
        f"the template builds a list or table over {MAX_ITEMS} items"
        " (64 characters of text count as one)"
    )


def number_error() -> LimitExceeded:
    return LimitExceeded(f"the template builds a number over {MAX_DIGITS} digits")


def bound_length(length: int) -> None:
    if length > MAX_STRING:
        raise string_error()
