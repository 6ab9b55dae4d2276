"""Operators (``* + % **``) refused before they would build something over the bounds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from campaigner.templating.bounds import (
    MAX_BITS,
    MAX_ITEMS,
    bound_length,
    items_error,
    number_error,
    string_error,
)
from campaigner.templating.measure import measure, text_size

__all__ = ("check_binop", "check_percent", "field_width")

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def field_width(digits: str) -> int:
    if len(digits) > 7:
        raise string_error()
    return int(digits)


def check_percent(fmt: str | bytes, args: Any) -> None:
    """``fmt % args`` (and the ``format`` filter): widths, and what the fields hold."""
    spelled = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    specs = _PERCENT_SPEC.findall(spelled)
    if not specs:
        return
    if isinstance(args, Mapping):
        values = list(args.values())
    else:
        values = list(args) if isinstance(args, tuple) else [args]
    widest = 0
    for parts in specs:
        for part in parts:
            if part == "*":
                widest = max([widest, *(v for v in values if isinstance(v, int))])
            elif part:
                widest = max(widest, field_width(part))
    bound_length(widest)
    longest = max((text_size(v) for v in values), default=0)
    bound_length(len(spelled) + len(specs) * max(widest, longest))


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be over the bounds, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and not isinstance(seq, int | float):
                size = _size(seq)
                if size is not None:
                    total = size * max(times, 0)
                    if isinstance(seq, str | bytes):
                        bound_length(total)
                    elif total > MAX_ITEMS or measure(seq, text=False)[1] * times > MAX_ITEMS:
                        raise items_error()
                return
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_BITS + 1:
                raise number_error()
    elif operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None:
            if isinstance(left, str | bytes):
                bound_length(a + b)
            elif a + b > MAX_ITEMS:
                raise items_error()
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if (left.bit_length() - 1) * right > MAX_BITS:
                raise number_error()
    elif operator == "%" and isinstance(left, str | bytes):
        check_percent(left, right)
