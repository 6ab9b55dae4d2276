"""str/bytes methods and ``str.format``: what they would build, bounded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedFormatter
from markupsafe import EscapeFormatter

from campaigner.templating.bounds import MAX_ITEMS, bound_length, items_error
from campaigner.templating.measure import text_size
from campaigner.templating.operators import field_width

__all__ = ("BoundedEscapeFormatter", "BoundedFormatter", "check_str_method")

_DIGITS = re.compile(r"\d+")


def check_str_method(
    owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Any
) -> tuple[Any, ...]:
    """Bound what a str/bytes method would build; may return args with an iterable listed."""
    try:
        if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
            bound_length(max(len(owner), args[0]))
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                tab = "\t" if isinstance(owner, str) else b"\t"
                bound_length(len(owner) + owner.count(tab) * max(size, 0))  # type: ignore[arg-type]
        elif name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            hits = owner.count(old) if old else len(owner) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            bound_length(len(owner) + hits * max(len(new) - len(old), 0))
        elif name == "join" and args:
            items = list(args[0])
            if len(items) > MAX_ITEMS:
                raise items_error()
            texts = sum(len(i) for i in items if isinstance(i, str | bytes))
            bound_length(texts + len(owner) * max(len(items) - 1, 0))
            return (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            widest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            bound_length(len(owner) * max(widest, 1))
    except TypeError:
        pass  # the call itself will fail with the right message
    return args


class BoundedFormatter(SandboxedFormatter):
    """``str.format`` with bounded widths and a bounded total."""

    def __init__(self, env: jinja2.Environment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.written = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:  # !r, !s, !a: text made before format_field sees it
            text_size(value)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in _DIGITS.findall(format_spec):
            bound_length(field_width(digits))
        text_size(value)
        text = super().format_field(value, format_spec)
        self.written += len(text)
        bound_length(self.written)
        return text


class BoundedEscapeFormatter(BoundedFormatter, EscapeFormatter):
    pass
