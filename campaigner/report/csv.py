"""report.csv's encoding: UTF-8 with a BOM, RFC 4180, formula injection defused."""

# A BOM, because Excel reads a BOM-less UTF-8 CSV in the system code page and garbles every
# non-ASCII name; polars, pandas and ``csv`` with ``utf-8-sig`` all skip the BOM. RFC 4180:
# CRLF line ends, fields quoted only when needed, ``""`` for an empty string and an empty
# field for null. Formula injection is defused by ``neutralize`` (docs/report-safety.md).

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

from campaigner.report.atomic import AtomicFile
from campaigner.report.cells import header_frame
from campaigner.report.safety import neutralize

__all__ = ("CsvSink",)

_CSV_BOM: Final = b"\xef\xbb\xbf"
_CRLF: Final = "\r\n"


class CsvSink:
    """report.csv streamed batch by batch into an ``AtomicFile``, header first."""

    def __init__(self, target: Path, columns: Sequence[str]) -> None:
        self.file = AtomicFile(target)
        try:
            self.file.fh.write(_CSV_BOM)
            self.write(header_frame(tuple(columns)))  # column names can be formulas too
        except BaseException:
            self.file.discard()
            raise

    def write(self, frame: pl.DataFrame) -> None:
        neutralize(frame).write_csv(
            self.file.fh, include_header=False, line_terminator=_CRLF, quote_style="necessary"
        )

    def abort(self) -> None:
        self.file.discard()
