"""Formula-injection defusing: which text cells a spreadsheet could run as a formula, and
``neutralize``, which prefixes ``'`` to them (docs/report-safety.md)."""

from __future__ import annotations

from typing import Final

import polars as pl

from campaigner.report.cells import STACK_WIDTH, stack_cells, unstack_cells

__all__ = ("is_risky", "neutralize")

# docs/report-safety.md: risky if the cell starts with Tab, CR or NUL, or if any line starts
# (after spaces, tabs, NBSP and other blanks spreadsheets strip) with = + - @.
# CR counts as a line break too, since spreadsheets treat a lone CR as one.
_RISKY: Final = r"^[\t\r\x00]|(?:^|[\r\n])[\s\u00A0\u200B\uFEFF]*[=+\-@]"
_TEXT_TYPES: Final = (pl.String, pl.Categorical, pl.Enum)


def is_risky(value: pl.Expr) -> pl.Expr:
    """True where a text cell could be read as a formula; null stays null."""
    return value.str.contains(_RISKY)


def neutralize(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to every text cell a spreadsheet could run as a formula.

    Applies to String (and Categorical/Enum, returned as String) columns; numbers cannot
    be formulas. Note that ``+8613…`` and ``-…`` are prefixed too.
    """
    columns = frame.get_columns()
    text = [i for i, s in enumerate(columns) if isinstance(s.dtype, _TEXT_TYPES)]
    if not text:
        return frame
    if len(text) < STACK_WIDTH:  # an expression per column: fastest while they are few
        return frame.with_columns(
            pl.when(is_risky(value)).then(pl.lit("'") + value).otherwise(value).alias(name)
            for name, value in ((columns[i].name, pl.nth(i).cast(pl.String)) for i in text)
        )
    # All text cells in one Series, so the cost follows the cells, not the columns.
    cells = pl.lit(stack_cells(frame.select(pl.nth(text))))
    safe = pl.select(pl.when(is_risky(cells)).then(pl.lit("'") + cells).otherwise(cells))
    parts = unstack_cells(safe.to_series(), len(text), frame.height).get_columns()
    for i, part in zip(text, parts, strict=True):
        columns[i] = part.alias(columns[i].name)
    return pl.DataFrame(columns)
