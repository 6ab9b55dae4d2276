"""The bounded sandbox: Jinja's immutable sandbox with every operator, call, lookup and
filter bounded."""

from __future__ import annotations

from collections.abc import Callable
from functools import update_wrapper
from types import BuiltinMethodType, MethodType
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from campaigner.templating.budget import charge
from campaigner.templating.filters import bounded_lipsum, bounded_sum, guard_filter
from campaigner.templating.hooks import HOOK_PREFIX, HOOKS
from campaigner.templating.measure import built
from campaigner.templating.operators import check_binop
from campaigner.templating.strings import (
    BoundedEscapeFormatter,
    BoundedFormatter,
    check_str_method,
)

__all__ = ("BoundedSandbox",)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every operator, call, lookup and filter bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        filters = {**self.filters, "sum": bounded_sum}
        self.filters = {name: guard_filter(name, f) for name, f in filters.items()}
        self.filters.update({HOOK_PREFIX + name: hook for name, hook in HOOKS.items()})
        self.globals["lipsum"] = bounded_lipsum

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        charge(1)
        check_binop(operator, left, right)
        return built(self.binop_table[operator](left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        charge(1)
        if isinstance(__obj, BuiltinMethodType) and isinstance(__obj.__self__, str | bytes):
            args = check_str_method(__obj.__self__, __obj.__name__, args, kwargs)
        return built(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        charge(1)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        charge(1)
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through a formatter with bounded fields."""
        if not isinstance(value, MethodType | BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            charge(1)
            if is_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            formatter: BoundedFormatter = (
                BoundedEscapeFormatter(self, escape=owner.escape)
                if isinstance(owner, Markup)
                else BoundedFormatter(self)
            )
            return built(type(owner)(formatter.vformat(owner, args, kwargs)))

        return update_wrapper(wrapper, value)
