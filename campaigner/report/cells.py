"""Every cell of a frame as one Series and back, so an encoder's cost follows the number of
cells, not the number of columns."""

from __future__ import annotations

import functools
from typing import Final

import polars as pl

__all__ = ("STACK_WIDTH", "header_frame", "stack_cells", "unstack_cells")

STACK_WIDTH: Final = 64  # from this many columns on, cells are encoded stacked


def stack_cells(frame: pl.DataFrame) -> pl.Series:
    """Every cell of ``frame`` as text, one column after the other, in one Series.

    Cells are then encoded by a single vectorized expression whatever the width: an
    expression per column made polars' planning grow faster than the cell count (1,000
    columns x 3 rows took 14 s and 1 GB).
    """
    columns = [s if s.dtype == pl.String else s.cast(pl.String) for s in frame.get_columns()]
    return pl.concat(columns, rechunk=True)


def unstack_cells(cells: pl.Series, width: int, height: int) -> pl.DataFrame:
    """The inverse of ``stack_cells``: ``width`` columns of ``height`` cells (zero-copy slices)."""
    return pl.DataFrame([cells.slice(j * height, height).alias(str(j)) for j in range(width)])


@functools.lru_cache(maxsize=2)  # the CSV and the XLSX sink share it
def header_frame(columns: tuple[str, ...]) -> pl.DataFrame:
    """The header as a one-row String frame, to go through the same encoders as data."""
    return unstack_cells(pl.Series(columns, dtype=pl.String), len(columns), 1)
