"""Opening a recipient file (CSV or XLSX): ``open_input`` runs every file-level check and
returns an ``InputTable`` whose ``batches`` stream the rows as text. Rules: docs/input-rules.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import polars as pl

from campaigner.inputs.csv import open_csv
from campaigner.inputs.names import CELL_EDGE_CHARS, trim_cell
from campaigner.inputs.sniff import (
    CSV_SUFFIXES,
    XLSX_SUFFIXES,
    read_head,
    refuse_compressed,
    refuse_other_kind,
)
from campaigner.inputs.xlsx import open_xlsx

__all__ = ("CELL_EDGE_CHARS", "InputTable", "RowSource", "open_input", "trim_cell")


class RowSource(Protocol):
    """The data rows of an opened file, as the CSV and the XLSX readers give them."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The column names (header), unique, in file order."""
        ...

    @property
    def sheet(self) -> str | None:
        """The sheet read (XLSX), or None."""
        ...

    def frames(self) -> Iterator[pl.DataFrame]:
        """Frames of data rows: ``columns`` (all ``pl.String``, null = empty cell), then
        ``columns.ROW`` and ``columns.ISSUE``, in input order; any height."""
        ...


@dataclass(frozen=True, slots=True)
class InputTable:
    """An opened recipient file. ``batches`` streams its data rows."""

    path: Path
    kind: Literal["csv", "xlsx"]
    columns: tuple[str, ...]
    sheet: str | None
    source: RowSource = field(repr=False, compare=False)

    def batches(self, batch_rows: int = 50_000) -> Iterator[pl.DataFrame]:
        """Yield frames of at most ``batch_rows`` rows: ``columns`` (all ``pl.String``,
        null = empty cell), then ``columns.ROW`` and ``columns.ISSUE``, in input order."""
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        for frame in self.source.frames():
            for start in range(0, frame.height, batch_rows):
                yield frame.slice(start, batch_rows)


def open_input(
    path: Path, *, sheet: str | int | None = None, encoding: str | None = None
) -> InputTable:
    """Open ``path`` and run every file-level check.

    ``sheet`` (XLSX only) is a sheet name or 0-based index; by default the first
    visible worksheet. ``encoding`` (CSV only) is used when the file has no BOM.
    """
    path = Path(path)
    size, head = read_head(path)
    refuse_compressed(path, head)
    suffix = path.suffix.lower()
    source: RowSource
    kind: Literal["csv", "xlsx"]
    if suffix in XLSX_SUFFIXES:
        source, kind = open_xlsx(path, size, head, sheet), "xlsx"
    elif suffix in CSV_SUFFIXES:
        source, kind = open_csv(path, head, encoding), "csv"
    else:
        raise refuse_other_kind(path, head)
    return InputTable(path, kind, source.columns, source.sheet, source)
