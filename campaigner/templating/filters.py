"""Jinja's filters and globals with their steps counted and their input and output bounded."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any

import jinja2
from jinja2.filters import make_attrgetter
from jinja2.utils import generate_lorem_ipsum, pass_environment

from campaigner.templating.bounds import MAX_ITEMS, bound_length, items_error
from campaigner.templating.budget import charge
from campaigner.templating.measure import built, measure, text_size
from campaigner.templating.operators import check_binop, check_percent

__all__ = ("bounded_lipsum", "bounded_sum", "guard_filter")


# Filters that turn their value into text.
_TEXT_FILTERS = frozenset(
    "capitalize center e escape forceescape format indent lower pprint replace safe string"
    " striptags title tojson trim truncate upper urlize wordcount wordwrap xmlattr".split()
)


def _steps(value: Any) -> int:
    """Work a filter does on ``value``, in steps."""
    if isinstance(value, str):
        return 1 + len(value) // 64
    if isinstance(value, list | tuple | dict | set | frozenset):
        return 1 + len(value)
    return 1


def _listed(environment: jinja2.Environment, value: Any, attribute: Any) -> list[Any]:
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    items = list(value)
    if len(items) > MAX_ITEMS:
        raise items_error()
    return items


def _pre_center(a: dict[str, Any]) -> None:
    if isinstance(a["width"], int):
        bound_length(max(text_size(a["value"]), a["width"]))


def _pre_indent(a: dict[str, Any]) -> None:
    text = a["s"]
    width = a["width"]
    step = width if isinstance(width, int) else text_size(width)
    lines = text.count("\n") + 1 if isinstance(text, str) else text_size(text)
    bound_length(text_size(text) + lines * max(step, 0))


def _pre_wordwrap(a: dict[str, Any]) -> None:
    wrap = a["wrapstring"]
    bound_length(text_size(a["s"]) * (1 + (text_size(wrap) if wrap is not None else 1)))


def _pre_replace(a: dict[str, Any]) -> None:
    text, old, new, count = str(a["s"]), a["old"], a["new"], a["count"]
    if isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        bound_length(len(text) + hits * max(len(new) - len(old), 0))


def _pre_join(a: dict[str, Any]) -> None:
    items = _listed(a["eval_ctx"].environment, a["value"], a["attribute"])
    separator = text_size(a["d"])
    bound_length(sum(text_size(i) for i in items) + separator * max(len(items) - 1, 0))
    a["value"], a["attribute"] = items, None


def _pre_format(a: dict[str, Any]) -> None:
    if isinstance(a["value"], str):
        check_percent(a["value"], a["kwargs"] or a["args"])


def _pre_batch(a: dict[str, Any]) -> None:
    count, fill = a["linecount"], a["fill_with"]
    if isinstance(count, int) and fill is not None:
        if count * measure(fill, text=False)[1] > MAX_ITEMS:
            raise items_error()


def _pre_slice(a: dict[str, Any]) -> None:
    count, fill = a["slices"], a["fill_with"]
    if isinstance(count, int):
        per_fill = measure(fill, text=False)[1] if fill is not None else 0
        if count * (1 + per_fill) > MAX_ITEMS:
            raise items_error()


def _pre_tojson(a: dict[str, Any]) -> None:
    chars, _, depth = measure(a["value"], text=True)
    indent = a["indent"]
    step = 0 if indent is None else indent if isinstance(indent, int) else text_size(indent)
    bound_length(chars * (1 + max(step, 0) * depth))


def _pre_pprint(a: dict[str, Any]) -> None:
    chars, _, depth = measure(a["value"], text=True)
    bound_length(chars * (1 + depth))


def _pre_urlencode(a: dict[str, Any]) -> None:
    value = a["value"]
    if not isinstance(value, str | Mapping):
        value = a["value"] = list(value)  # pairs; listed so they can be measured
    bound_length(text_size(value) * 3)  # %XX for every byte


def _pre_urlize(a: dict[str, Any]) -> None:
    chars = text_size(a["value"])
    extra = sum(text_size(a[k]) for k in ("target", "rel") if a[k] is not None)
    bound_length(chars * 3 + (chars // 4 + 1) * (64 + extra))  # a link is at least 4 characters


_PRECHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "replace": _pre_replace,
    "join": _pre_join,
    "format": _pre_format,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "tojson": _pre_tojson,
    "pprint": _pre_pprint,
    "urlize": _pre_urlize,
    "urlencode": _pre_urlencode,
}


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its steps counted, its input and output bounded."""
    if getattr(func, "jinja_async_variant", False):
        func = inspect.unwrap(func)  # the plain function: its own signature, never async here
    passes = hasattr(func, "jinja_pass_arg")  # context/eval_ctx/environment comes first
    pre = _PRECHECKS.get(name)
    signature = inspect.signature(func) if pre is not None else None
    textual = name in _TEXT_FILTERS

    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value = args[1 if passes else 0] if len(args) > passes else None
        charge(_steps(value))
        if textual:
            text_size(value)
        if pre is not None and signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            pre(bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        return built(func(*args, **kwargs))

    return guarded


@pass_environment
def bounded_sum(
    environment: jinja2.Environment, iterable: Any, attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja's ``sum``, one addition at a time, so adding lists or strings is bounded."""
    total = start
    for item in _listed(environment, iterable, attribute):
        charge(1)
        check_binop("+", total, item)
        total = total + item
    return total


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    # Lorem ipsum words are short: 16 characters a word bounds a paragraph.
    bound_length(n * (max * 16 + 16) if isinstance(n, int) and isinstance(max, int) else 0)
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)
