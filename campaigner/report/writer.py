"""The report writer: report.csv (always) and report.xlsx (on request) from the same batches,
committed together atomically."""

# Both files are streamed batch by batch into temporary files (mode 0600: they hold phone
# numbers) in the run folder, then fsynced and renamed into place by ``close()``. An error
# before that removes the temporary files and leaves any earlier report untouched.

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import polars as pl

from campaigner.limits import EXCEL_MAX_COLUMNS
from campaigner.report.atomic import fsync_dir
from campaigner.report.csv import CsvSink
from campaigner.report.xlsx import XlsxSink, check_sheet_name

__all__ = ("CSV_NAME", "XLSX_NAME", "ReportWriter", "report_paths")

_log = logging.getLogger(__name__)

CSV_NAME: Final = "report.csv"
XLSX_NAME: Final = "report.xlsx"


def report_paths(run_dir: Path) -> list[Path]:
    """The report files of a run folder: report.csv, then report.xlsx when there is one."""
    return [run_dir / CSV_NAME] + [p for p in (run_dir / XLSX_NAME,) if p.exists()]


class ReportWriter:
    """Streams report rows to <run_dir>/report.csv (always) and <run_dir>/report.xlsx (when
    asked), atomically.

    ``write`` takes batches in report order; ``close`` fsyncs and renames the files into
    place. As a context manager, an exception removes the temporary files and leaves any
    previous report untouched; so does a failed ``write`` or ``close``, after which the
    writer refuses further use (``close`` and a clean ``with`` exit raise RuntimeError).

    ``note_column``: in the XLSX, the column of a row that also says which of its cells
    were cut to Excel's limit (the row's ``error``).
    """

    def __init__(
        self,
        run_dir: Path,
        columns: Sequence[str],
        *,
        xlsx: bool,
        sheet_name: str = "report",
        note_column: str | None = None,
    ) -> None:
        self._columns = list(columns)
        if not self._columns:
            raise ValueError("a report needs at least one column")
        if len(set(self._columns)) != len(self._columns):
            raise ValueError("report column names must be unique")
        if note_column is not None and note_column not in self._columns:
            raise ValueError(f"note column {note_column!r} is not a report column")
        if xlsx:
            check_sheet_name(sheet_name)
        if xlsx and len(self._columns) > EXCEL_MAX_COLUMNS:
            # Never a reason to lose the report: the CSV has no such limit.
            _log.warning(
                "report.xlsx not written: the report has %s columns and Excel holds at most "
                "%s; report.csv has them all",
                f"{len(self._columns):,}",
                f"{EXCEL_MAX_COLUMNS:,}",
            )
            xlsx = False
        self._run_dir = run_dir
        self._rows = 0
        self._state = "open"
        self._csv: CsvSink | None = None
        self._xlsx: XlsxSink | None = None
        try:
            self._csv = CsvSink(run_dir / CSV_NAME, self._columns)
            if xlsx:
                self._xlsx = XlsxSink(run_dir / XLSX_NAME, self._columns, sheet_name, note_column)
        except BaseException:
            self.abort()
            raise

    @property
    def rows_written(self) -> int:
        """Data rows written so far."""
        return self._rows

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"report writer is {self._state}")

    def write(self, frame: pl.DataFrame) -> None:
        """Append a batch whose columns are exactly ``columns``, in order."""
        self._check_open()
        if frame.columns != self._columns:
            raise ValueError(f"report batch columns {frame.columns} != {self._columns}")
        if frame.is_empty():
            return
        try:
            assert self._csv is not None
            if self._xlsx is None:
                self._csv.write(frame)
            else:
                # Both sinks spend their time in polars and zlib, which release the GIL.
                with ThreadPoolExecutor(max_workers=1) as pool:
                    xlsx_done = pool.submit(self._xlsx.write, frame)
                    self._csv.write(frame)
                    xlsx_done.result()
        except BaseException:
            self.abort()  # a half-written batch must never be committed
            raise
        self._rows += frame.height

    def close(self) -> None:
        """Flush, fsync and atomically rename the report files into place."""
        self._check_open()
        try:
            assert self._csv is not None
            if self._xlsx is not None:
                self._xlsx.finish()
                self._xlsx.file.sync()
            self._csv.file.sync()
            # Both files are complete on disk before either replaces an old report.
            self._csv.file.commit()
            if self._xlsx is not None:
                self._xlsx.file.commit()
            else:
                # An XLSX from an earlier build would now disagree with report.csv.
                (self._run_dir / XLSX_NAME).unlink(missing_ok=True)
            fsync_dir(self._run_dir)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"

    def abort(self) -> None:
        """Drop the temporary files; an existing report stays as it was. Idempotent."""
        if self._state == "closed":
            return
        self._state = "aborted"
        try:
            if self._csv is not None:
                self._csv.abort()
        finally:
            if self._xlsx is not None:
                self._xlsx.abort()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()
        elif self._state != "closed":
            self.close()  # after a swallowed write error this raises: no report was made
