"""Sandboxed Jinja rendering of the ``[message]`` table, a whole batch at a time.

Every string leaf of the message is a template. Rendering one Jinja template per
parameter per row costs ~7-10 us, which alone would cap a preview near 30k rows/s,
so each template is classified once:

- ``static``: no Jinja syntax; rendered once.
- ``column``/``concat``: only literal text and plain ``{{ name }}`` lookups; built
  with polars string expressions, with no per-row Python.
- ``jinja``: anything else (filters, conditions); rendered with the sandbox once per
  distinct combination of the columns it reads, then joined back.

Cells are trimmed before rendering and an empty cell is *undefined*, so
``StrictUndefined`` turns a missing value into a row error naming the column, while
``{{ x | default("...") }}`` still works.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import jinja2
import jinja2.meta
import jinja2.nodes as nodes
import polars as pl
from jinja2.exceptions import SecurityError

from campaigner import templating
from campaigner.columns import RENDER_ERROR, internal
from campaigner.errors import ConfigError, MissingColumnsError
from campaigner.inputs import trim_cell
from campaigner.spelling import closest

__all__ = (
    "MAX_RENDERED_CHARS",
    "MAX_TEMPLATE_CHARS",
    "MessageTemplate",
    "Slot",
    "compile_message",
)

MAX_TEMPLATE_CHARS = 4096  # a template is a short parameter, not a program
MAX_RENDERED_CHARS = 4096  # bounded output per parameter
_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")
# Work columns next to the template variables, which are input column names.
_VALUE, _ERROR = internal("v"), internal("e")

SlotKind = Literal["static", "column", "concat", "jinja"]
Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Slot:
    """One string leaf of the message: where it goes and how to render it."""

    path: Path_
    source: str
    kind: SlotKind
    variables: tuple[str, ...]
    parts: tuple[tuple[bool, str], ...] = ()  # for concat: (is_column, text)
    template: jinja2.Template | None = None

    @property
    def label(self) -> str:
        return ".".join(str(p) for p in self.path)

    @property
    def column(self) -> str:
        """Name of this slot's rendered column in a batch."""
        return internal("slot:" + self.label)


def _classify(path: Path_, source: str) -> Slot:
    label = ".".join(str(p) for p in path)
    if len(source) > MAX_TEMPLATE_CHARS:
        raise ConfigError(f"[message] {label} is longer than {MAX_TEMPLATE_CHARS} characters")
    try:
        ast = templating.parse(source)
        variables = tuple(sorted(jinja2.meta.find_undeclared_variables(ast)))
    except jinja2.TemplateSyntaxError as exc:  # also an unknown filter or test
        raise ConfigError(
            f"[message] {label}: template error on line {exc.lineno}: {exc.message}"
        ) from None
    body = ast.body
    if len(body) == 1 and isinstance(body[0], nodes.Output):
        items = body[0].nodes
        if all(isinstance(n, nodes.TemplateData | nodes.Name) for n in items):
            parts = tuple(_part(n) for n in items)
            if not variables:
                return Slot(path, source, "static", (), ((False, "".join(t for _, t in parts)),))
            if len(parts) == 1:
                return Slot(path, source, "column", variables, parts)
            return Slot(path, source, "concat", variables, parts)
    if not body:
        return Slot(path, source, "static", (), ((False, ""),))
    try:
        template = templating.compile_template(source)
    except jinja2.TemplateSyntaxError as exc:  # e.g. an unknown filter
        raise ConfigError(
            f"[message] {label}: template error on line {exc.lineno}: {exc.message}"
        ) from None
    return Slot(path, source, "jinja", variables, (), template)


def _part(node: nodes.Node) -> tuple[bool, str]:
    if isinstance(node, nodes.Name):
        return True, str(node.name)
    assert isinstance(node, nodes.TemplateData)
    return False, str(node.data)


def _walk(value: Any, path: Path_) -> Iterator[tuple[Path_, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, (*path, index))


def _assign(target: Any, path: Path_, value: Any) -> None:
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _render_one(
    template: jinja2.Template, context: dict[str, str], label: str
) -> tuple[str | None, str | None]:
    """One render, in any thread, under the same bounds everywhere (time included)."""
    try:
        return templating.render(template, context, MAX_RENDERED_CHARS), None
    except templating.OutputTooLong:
        return None, _too_long(label)
    except templating.LimitExceeded as exc:
        return None, f"{label}: {exc}"
    except jinja2.UndefinedError as exc:
        message = str(exc)
        match = _UNDEFINED_NAME.fullmatch(message)
        if match:
            return None, _missing(match.group(1), label)
        return None, f"{label}: {message}"[:300]  # e.g. "first_name has no attribute 'foo'"
    except SecurityError as exc:
        return None, f"{label}: the template is not allowed to do that ({exc})"[:300]
    except Exception as exc:  # any template runtime error is this row's problem, never a crash
        return None, f"{label}: template error: {type(exc).__name__}: {exc}"[:300]


def _too_long(label: str) -> str:
    return f"{label} is too long after rendering (over {MAX_RENDERED_CHARS} characters)"


def _missing(var: str, label: str) -> str:
    return f"empty value in column '{var}' (needed for {label})"


class MessageTemplate:
    """The compiled ``[message]`` table."""

    def __init__(self, message: Mapping[str, Any]) -> None:
        self.skeleton: dict[str, Any] = _copy(message)
        # Integers (Ttl) stay integers unless written as templates.
        self.slots: tuple[Slot, ...] = tuple(_classify(p, s) for p, s in _walk(message, ()))
        self.variables: frozenset[str] = frozenset(v for s in self.slots for v in s.variables)
        self.dynamic: tuple[Slot, ...] = tuple(s for s in self.slots if s.kind != "static")

    def slot(self, *path: str | int) -> Slot | None:
        for s in self.slots:
            if s.path == path:
                return s
        return None

    def check_columns(self, columns: Sequence[str]) -> None:
        """File-level check: every column a template reads exists in the input."""
        missing = sorted(self.variables - set(columns))
        if not missing:
            return
        hints = []
        for name in missing:
            hint = closest(name, list(columns))
            hints.append(f"'{name}'" + (f" (did you mean '{hint}'?)" if hint else ""))
        raise MissingColumnsError(
            f"the campaign uses column{'s' if len(missing) > 1 else ''} {', '.join(hints)} "
            f"which the input does not have; its columns are: {', '.join(columns)}"
        )

    def context_frame(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The columns templates read: trimmed (whitespace, BOM, zero-width and other invisible
        characters at either end), with blank cells as null (undefined)."""
        return frame.select(
            trim_cell(pl.col(v)).replace("", None).alias(v) for v in sorted(self.variables)
        )

    def render(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Render every dynamic slot for a batch.

        Returns one String column per dynamic slot (``slot.column``) and ``RENDER_ERROR``:
        null, or the first problem of the row in slot order.
        """
        ctx = self.context_frame(frame)
        columns: list[pl.Series] = []
        errors: list[pl.Series] = []
        for slot in self.dynamic:
            values, error = self._render_slot(slot, ctx, frame.height)
            columns.append(values.alias(slot.column))
            errors.append(error.alias(f"e{len(errors)}"))
        out = (
            pl.DataFrame(columns, schema={s.column: pl.String for s in self.dynamic})
            if columns
            else pl.DataFrame(height=frame.height)
        )
        if errors:
            first_error = pl.DataFrame(errors).select(pl.coalesce(pl.all()).alias(RENDER_ERROR))
            return out.with_columns(first_error.to_series())
        return out.with_columns(pl.lit(None, pl.String).alias(RENDER_ERROR))

    def _render_slot(
        self, slot: Slot, ctx: pl.DataFrame, height: int
    ) -> tuple[pl.Series, pl.Series]:
        label = slot.label
        if slot.kind in ("column", "concat"):
            exprs = [pl.col(t) if is_col else pl.lit(t, pl.String) for is_col, t in slot.parts]
            missing = pl.coalesce(
                pl.when(pl.col(v).is_null()).then(pl.lit(_missing(v, label))).otherwise(None)
                for v in dict.fromkeys(t for is_col, t in slot.parts if is_col)
            )
            result = ctx.select(
                pl.concat_str(exprs).alias("v") if len(exprs) > 1 else exprs[0].alias("v"),
                missing.alias("e"),
            )
            too_long = result["v"].str.len_chars() > MAX_RENDERED_CHARS
            err = result.select(
                pl.when(pl.col("e").is_not_null())
                .then(pl.col("e"))
                .when(too_long)
                .then(pl.lit(_too_long(label)))
                .otherwise(None)
            ).to_series()
            return result["v"], err.alias("e")
        assert slot.template is not None
        if not slot.variables:
            # Reads no column: one render for the whole batch. (ctx may have no columns, and
            # so no height, when no template of the message reads a column.)
            text, problem = _render_one(slot.template, {}, label)
            return (
                pl.repeat(text, height, dtype=pl.String, eager=True),
                pl.repeat(problem, height, dtype=pl.String, eager=True),
            )
        keys = ctx.select(slot.variables)
        combos = keys.unique(maintain_order=True)
        values: list[str | None] = []
        errs: list[str | None] = []
        for combo in combos.iter_rows(named=True):
            context = {k: v for k, v in combo.items() if v is not None}
            text, problem = _render_one(slot.template, context, label)
            values.append(text)
            errs.append(problem)
        rendered = combos.with_columns(
            pl.Series(_VALUE, values, dtype=pl.String), pl.Series(_ERROR, errs, dtype=pl.String)
        )
        joined = keys.join(
            rendered, on=list(keys.columns), how="left", nulls_equal=True, maintain_order="left"
        )
        return joined[_VALUE], joined[_ERROR]

    def build(self, values: Mapping[str, str | None]) -> dict[str, Any]:
        """The message for one row: the skeleton with every slot's text in place.

        ``values`` maps ``slot.column`` to the rendered text for dynamic slots.
        """
        message: dict[str, Any] = _copy(self.skeleton)
        for slot in self.slots:
            text = slot.parts[0][1] if slot.kind == "static" else values.get(slot.column)
            _assign(message, slot.path, text)
        return message


def compile_message(message: Mapping[str, Any]) -> MessageTemplate:
    """Compile every template of the message; syntax errors are ConfigErrors."""
    return MessageTemplate(message)
