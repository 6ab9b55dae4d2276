"""The preview's rows that will not be sent, a page at a time, read back from the preview
report: each row's number, status and reason, then its cells as in the spreadsheet."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from campaigner.report import ReportLayout
from campaigner.statuses import RESULT_COLUMNS, Status

__all__ = ("PAGE_ROWS", "BadRows", "bad_rows_page")

PAGE_ROWS = 25
_MAX_COLUMNS = 40  # cells shown per row; the report download has them all
_MAX_CELL = 200  # characters shown per cell
# Every status but these is a row that will not be sent.
_SENDABLE = (Status.WOULD_SEND.value, Status.SENT.value)


@dataclass(frozen=True)
class BadRows:
    columns: tuple[str, ...] = ()  # the input columns shown
    rows: list[tuple[str, str, str, list[str]]] = field(default_factory=list)  # row, status, why
    total: int = 0
    page: int = 0
    more_columns: int = 0

    @property
    def pages(self) -> int:
        return max((self.total + PAGE_ROWS - 1) // PAGE_ROWS, 1)


def _cell(value: str | None) -> str:
    text = "" if value is None else value
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL] + "…"


def bad_rows_page(report: Path, page: int) -> BadRows:
    if not report.is_file():
        return BadRows()
    frame = pl.scan_csv(report, infer_schema=False, encoding="utf8", quote_char='"')
    header = frame.collect_schema().names()
    inputs = header[: len(header) - len(RESULT_COLUMNS)]
    names = ReportLayout.for_input(inputs).result_names
    status, error, row = names["status"], names["error"], names["row"]
    bad = frame.filter(~pl.col(status).is_in(_SENDABLE))
    total = int(bad.select(pl.len()).collect().item())
    page = min(page, max((total - 1) // PAGE_ROWS, 0))
    shown = inputs[:_MAX_COLUMNS]
    chunk = bad.slice(page * PAGE_ROWS, PAGE_ROWS).select(row, status, error, *shown).collect()
    rows = [
        (str(r[0]), str(r[1]), _cell(r[2]), [_cell(c) for c in r[3:]]) for r in chunk.iter_rows()
    ]
    return BadRows(tuple(shown), rows, total, page, len(inputs) - len(shown))
