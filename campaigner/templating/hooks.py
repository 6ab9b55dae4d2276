"""The hooks the rewritten template calls: loop turns, output, ``~``, literals, lookups."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jinja2
from jinja2.runtime import Undefined
from jinja2.utils import pass_context

from campaigner.templating.bounds import bound_length
from campaigner.templating.budget import charge
from campaigner.templating.measure import built, text_size

__all__ = ("HOOKS", "HOOK_PREFIX")

HOOK_PREFIX = "campaigner:"  # prefix of the rewrite's filters: no template can spell the name

T = TypeVar("T")


@pass_context
def _hook_loop(context: Any, iterable: Any) -> Iterator[Any]:
    for item in iterable:
        charge(1)
        yield item


@pass_context
def _hook_out(context: Any, value: Any) -> str:
    if type(value) is str:
        charge(1, len(value))
        return value
    text_size(value)
    text = str(value)
    charge(1, len(text))
    return text


@pass_context
def _hook_concat(context: Any, *values: Any) -> str:
    charge(1)
    texts = []
    total = 0
    for value in values:
        if type(value) is not str:
            text_size(value)
            value = str(value)
        total += len(value)
        bound_length(total)
        texts.append(value)
    return built("".join(texts))


@pass_context
def _hook_value(context: Any, value: T) -> T:
    return built(value)


def _named(env: jinja2.Environment, value: Any, obj: Any, name: Any, hint: str) -> Any:
    """An Undefined that says which expression had no such attribute or item."""
    if isinstance(value, Undefined) and value._undefined_hint is None:
        return env.undefined(hint, obj=obj, name=name)
    return value


@pass_context
def _hook_getattr(context: Any, obj: Any, attribute: str, spelled: str) -> Any:
    value = context.environment.getattr(obj, attribute)
    return _named(
        context.environment, value, obj, attribute, f"{spelled} has no attribute {attribute!r}"
    )


@pass_context
def _hook_getitem(context: Any, obj: Any, key: Any, spelled: str) -> Any:
    value = context.environment.getitem(obj, key)
    shown = repr(key) if len(repr(key)) <= 40 else repr(key)[:37] + "..."
    return _named(context.environment, value, obj, key, f"{spelled} has no item {shown}")


HOOKS: dict[str, Callable[..., Any]] = {
    "loop": _hook_loop,
    "out": _hook_out,
    "concat": _hook_concat,
    "value": _hook_value,
    "getattr": _hook_getattr,
    "getitem": _hook_getitem,
}
