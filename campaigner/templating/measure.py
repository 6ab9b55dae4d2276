"""Measuring values a template builds: text size, items, depth; counting what was built."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any, TypeVar

from jinja2.runtime import Undefined
from jinja2.utils import Namespace

from campaigner.templating.bounds import (
    MAX_BITS,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_STRING,
    LimitExceeded,
    items_error,
    number_error,
    string_error,
)
from campaigner.templating.budget import charge

__all__ = ("built", "measure", "text_size")

T = TypeVar("T")

_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        return itertools.chain.from_iterable(value.items())
    if isinstance(value, Namespace):
        attrs: dict[str, Any] = object.__getattribute__(value, "_Namespace__attrs")
        return itertools.chain.from_iterable(attrs.items())
    return iter(value)


def measure(value: Any, *, text: bool) -> tuple[int, int, int]:
    """(about how many characters ``str(value)`` has, how many items it unfolds to, depth).

    Shared references count each time they occur, as printing or comparing walks them;
    each container is walked once. A text counts one item per 64 characters, as comparing
    two equal texts that are not the same object reads them. With ``text``, ``value`` is
    about to become text: an Undefined anywhere inside raises its error and an object with
    no text form (a function, a generator) is refused, instead of reaching the message as
    'Undefined' or an address.
    """
    if isinstance(value, str):
        return len(value), 1 + len(value) // 64, 0
    memo: dict[int, tuple[int, int, int]] = {}
    walking: set[int] = set()
    visits = 0

    def walk(item: Any, level: int) -> tuple[int, int, int]:
        nonlocal visits
        visits += 1
        if isinstance(item, str | bytes):
            return len(item) + 3, 1 + len(item) // 64, 0  # quotes and a prefix
        if item is None or isinstance(item, bool | float | complex):
            return 24, 1, 0
        if isinstance(item, int):
            if item.bit_length() > MAX_BITS:
                raise number_error()
            return item.bit_length() // 3 + 2, 1, 0
        if isinstance(item, Undefined):
            if text:
                item._fail_with_undefined_error()
            return 9, 1, 0
        if not isinstance(item, _CONTAINERS) or (text and isinstance(item, Namespace)):
            if text:
                raise LimitExceeded(f"a {type(item).__name__} cannot be written as text")
            return 1, 1, 0
        key = id(item)
        if key in memo:
            return memo[key]
        if key in walking:  # a cycle, printed as [...]
            return 5, 1, 0
        if level >= MAX_DEPTH:
            raise LimitExceeded(f"the template builds values nested over {MAX_DEPTH} levels deep")
        walking.add(key)
        chars, items, depth = 2, 0, 0
        for child in _children(item):
            c, i, d = walk(child, level + 1)
            chars, items, depth = chars + c + 2, items + i, max(depth, d)
            if text and chars > MAX_STRING:
                raise string_error()
            if items > MAX_ITEMS:
                raise items_error()
        walking.discard(key)
        memo[key] = (chars, max(items, 1), depth + 1)
        return memo[key]

    result = walk(value, 0)
    charge(visits)
    return result


def text_size(value: Any) -> int:
    """Characters ``str(value)`` has; refuses over MAX_STRING, Undefined and non-data."""
    if type(value) is str:
        return len(value)
    return measure(value, text=True)[0]


def built(value: T) -> T:
    """Count a value the template just made; refuse one over the bounds."""
    if isinstance(value, str | bytes):
        size = len(value)
        if size > MAX_STRING:
            raise string_error()
    elif isinstance(value, _CONTAINERS):
        size = len(value) if not isinstance(value, Namespace) else 1
        if size > MAX_ITEMS:
            raise items_error()
        measure(value, text=False)
    elif isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise number_error()
    else:
        size = 1
    charge(0, size)
    return value
