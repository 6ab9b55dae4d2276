"""The run report: ``report.csv`` (always) and ``report.xlsx`` (on request), written atomically.

Both files are streamed batch by batch into temporary files (mode 0600: they hold phone
numbers) in the run folder, then fsynced and renamed into place by ``close()``. An error
before that removes the temporary files and leaves any earlier report untouched.

CSV: UTF-8 **with** a BOM, because Excel reads a BOM-less UTF-8 CSV in the system code
page and garbles every non-ASCII name; polars, pandas and ``csv`` with ``utf-8-sig`` all
skip the BOM. RFC 4180: CRLF line ends, fields quoted only when needed, ``""`` for an empty
string and an empty field for null. Formula injection is defused by ``neutralize``
(docs/report-safety.md).

XLSX: SpreadsheetML written directly, the sheet XML built with vectorized polars string
expressions and deflated by ``zipfile`` at level 1. It streams in constant memory and beat
rustpy-xlsxwriter (100k x 17: 0.55-0.85 s against 0.9-1.05 s), which also needs the whole
table at once and can style columns but not single cells (see bench/report.py). Text is
always an inline-string cell, so phone numbers and codes such as ``0044…`` stay exact text;
integers below 10**15 are numbers. A risky value (same rule as the CSV) keeps its visible
text and gets the ``quotePrefix`` style, so Excel does not turn it into a formula when the
cell is edited. The header row is bold and frozen. Excel limits, handled here:

- a sheet holds 1,048,576 rows: the data continues on ``<sheet_name>_2``, ``_3``, …, each
  with the header row again. A sheet also ends early before its XML reaches 2 GiB, so the
  zip never needs ZIP64, which Excel reads only in a stricter form than ``zipfile`` writes;
- a cell holds 32,767 characters: longer text is cut there (the CSV keeps it whole);
- an empty string and null are both an empty cell;
- control characters XML 1.0 forbids, and CR, are written as Excel's ``_xHHHH_`` escapes,
  and a literal ``_xHHHH`` is escaped as ``_x005F_xHHHH``, so Excel and calamine (fastexcel,
  polars) read the original text back; openpyxl does not decode these escapes. The
  noncharacters U+FFFE and U+FFFF are dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import IO, ClassVar, Final, Self
from xml.sax.saxutils import quoteattr

import polars as pl

from campaigner.readers import column_letter

__all__ = ("ReportWriter", "neutralize", "report_paths", "write_json_atomic")

CSV_NAME: Final = "report.csv"
XLSX_NAME: Final = "report.xlsx"

# docs/report-safety.md: risky if the cell starts with Tab, CR or NUL, or if any line starts
# (after spaces, tabs, NBSP and other blanks spreadsheets strip) with = + - @.
# CR counts as a line break too, since spreadsheets treat a lone CR as one.
_RISKY: Final = r"^[\t\r\x00]|(?:^|[\r\n])[\s\u00A0\u200B\uFEFF]*[=+\-@]"
_TEXT_TYPES: Final = (pl.String, pl.Categorical, pl.Enum)
_CSV_BOM: Final = b"\xef\xbb\xbf"
_CRLF: Final = "\r\n"

_XLSX_MAX_ROWS: Final = 1_048_576
_XLSX_MAX_COLUMNS: Final = 16_384
_XLSX_MAX_CHARS: Final = 32_767
_XLSX_MAX_NUMBER: Final = 10**15  # Excel keeps 15 significant digits; larger ints go as text
_XLSX_CHUNK_ROWS: Final = 25_000  # bounds the XML built in memory at once
_SHEET_NAME_FORBIDDEN: Final = frozenset("[]:*?/\\")

# Control characters XML 1.0 forbids, plus CR (an XML parser would turn it into LF), go as
# Excel's _xHHHH_ escapes, which Excel and calamine decode. The noncharacters U+FFFE and
# U+FFFF, also forbidden, are dropped: calamine would not decode their escapes.
_XML_CONTROL: Final = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20))]
_XML_PATTERNS: Final = ["&", "<", ">", *_XML_CONTROL]
_XML_REPLACEMENTS: Final = ["&amp;", "&lt;", "&gt;", *(f"_x{ord(c):04X}_" for c in _XML_CONTROL)]
_XML_NONCHARACTERS: Final = ["\ufffe", "\uffff"]

# Cell styles (cellXfs indexes in _STYLES_XML).
_STYLE_RISKY: Final = 1
_STYLE_HEADER: Final = 2
_STYLE_HEADER_RISKY: Final = 3

_NS_MAIN: Final = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_STYLES_XML: Final = (
    f'{_XML_DECL}<styleSheet xmlns="{_NS_MAIN}">'
    '<fonts count="2">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="4">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0" quotePrefix="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"'
    ' quotePrefix="1"/>'
    "</cellXfs>"
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _is_risky(value: pl.Expr) -> pl.Expr:
    """True where a text cell could be read as a formula; null stays null."""
    return value.str.contains(_RISKY)


def neutralize(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to every text cell a spreadsheet could run as a formula.

    Applies to String (and Categorical/Enum, returned as String) columns; numbers cannot
    be formulas. Note that ``+8613…`` and ``-…`` are prefixed too.
    """
    exprs = []
    for index, (name, dtype) in enumerate(frame.schema.items()):
        if isinstance(dtype, _TEXT_TYPES):
            # By position: pl.col reads a name such as "^.*$" as a pattern.
            text = pl.nth(index).cast(pl.String)
            exprs.append(
                pl.when(_is_risky(text)).then(pl.lit("'") + text).otherwise(text).alias(name)
            )
    return frame.with_columns(exprs) if exprs else frame


# -- atomic files -------------------------------------------------------------------------


class _AtomicFile:
    """A 0600 temporary file next to ``target`` that replaces it on ``commit``."""

    def __init__(self, target: Path) -> None:
        self.target = target
        # mkstemp creates the file 0600 whatever the umask, and with a name nobody else has.
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        self.temp = Path(name)
        self.fh: IO[bytes] = os.fdopen(fd, "wb")

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()

    def commit(self) -> None:
        os.replace(self.temp, self.target)

    def discard(self) -> None:
        """Remove the temporary file (it holds phone numbers) whatever happens on the way."""
        try:
            # A full disk fails the flush in close() again; the caller is already raising
            # the first error, so this one is dropped.
            with contextlib.suppress(OSError):
                self.fh.close()
        finally:
            self.temp.unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable; POSIX only (Windows cannot open a directory)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as UTF-8 JSON to ``path`` (mode 0600): temp file, fsync, rename.

    Serialization happens first, so a value JSON cannot hold leaves no file behind.
    Paths, dates, enums, sets and dataclasses are converted; NaN is refused.
    """
    text = json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False, default=_json_default)
    out = _AtomicFile(path)
    try:
        out.fh.write(text.encode("utf-8") + b"\n")
        out.sync()
        out.commit()
    except BaseException:
        out.discard()
        raise
    _fsync_dir(path.parent)


# -- CSV ----------------------------------------------------------------------------------


def _header_frame(columns: Sequence[str]) -> pl.DataFrame:
    """The header as a one-row String frame, to go through the same encoders as data."""
    return pl.DataFrame({str(i): [name] for i, name in enumerate(columns)})


class _CsvSink:
    def __init__(self, target: Path, columns: Sequence[str]) -> None:
        self.file = _AtomicFile(target)
        try:
            self.file.fh.write(_CSV_BOM)
            self.write(_header_frame(columns))  # column names can be formulas too
        except BaseException:
            self.file.discard()
            raise

    def write(self, frame: pl.DataFrame) -> None:
        neutralize(frame).write_csv(
            self.file.fh, include_header=False, line_terminator=_CRLF, quote_style="necessary"
        )

    def abort(self) -> None:
        self.file.discard()


# -- XLSX ---------------------------------------------------------------------------------


def _text_cell(ref: pl.Expr, text: pl.Expr, style: int, risky_style: int) -> pl.Expr:
    """``<c>`` inline-string XML for a text expression; null for null or empty text."""
    # Drop the noncharacters first, so the checks below see the text as it will be stored.
    text = text.str.slice(0, _XLSX_MAX_CHARS).str.replace_many(_XML_NONCHARACTERS, ["", ""])
    # Excel decodes _xHHHH_ in text: escape a literal one first, before the control
    # characters become such escapes themselves.
    escaped = text.str.replace_all(r"_(x[0-9A-Fa-f]{4})", "_x005F_$1")
    escaped = escaped.str.replace_many(_XML_PATTERNS, _XML_REPLACEMENTS)
    plain = f' s="{style}"' if style else ""
    opening = (
        pl.when(_is_risky(text))
        .then(pl.lit(f'" s="{risky_style}" t="inlineStr"><is><t'))
        .otherwise(pl.lit(f'"{plain} t="inlineStr"><is><t'))
    )
    # Excel trims text at either end unless told to keep the whitespace.
    space = (
        pl.when(text.str.contains(r"^\s|\s$"))
        .then(pl.lit(' xml:space="preserve">'))
        .otherwise(pl.lit(">"))
    )
    cell = pl.concat_str([ref, opening, space, escaped, pl.lit("</t></is></c>")])
    return pl.when(escaped != "").then(cell)


def _sheet_rows(frame: pl.DataFrame, first_row: int, *, header: bool = False) -> pl.DataFrame:
    """One String column ``x`` holding the ``<row>`` XML of each row of ``frame``."""
    number = pl.int_range(first_row, first_row + pl.len(), dtype=pl.Int64).cast(pl.String)
    style, risky_style = (_STYLE_HEADER, _STYLE_HEADER_RISKY) if header else (0, _STYLE_RISKY)
    cells = []
    for index, dtype in enumerate(frame.schema.dtypes()):
        value = pl.nth(index)
        ref = pl.concat_str([pl.lit(f'<c r="{column_letter(index)}'), number])
        if dtype.is_integer():
            digits = value.cast(pl.String)
            small = value.cast(pl.Float64).abs() < _XLSX_MAX_NUMBER
            # Only digits and a minus sign: nothing to escape, risky exactly when negative.
            kind = (
                pl.when(small)
                .then(pl.lit('"><v>'))
                .when(value < 0)
                .then(pl.lit(f'" s="{risky_style}" t="inlineStr"><is><t>'))
                .otherwise(pl.lit('" t="inlineStr"><is><t>'))
            )
            close = pl.when(small).then(pl.lit("</v></c>")).otherwise(pl.lit("</t></is></c>"))
            cells.append(pl.concat_str([ref, kind, digits, close]))
        else:
            cells.append(_text_cell(ref, value.cast(pl.String), style, risky_style))
    row = pl.concat_str(
        [pl.lit('<row r="'), number, pl.lit('">'), *cells, pl.lit("</row>")], ignore_nulls=True
    )
    # Lazy, so common subexpressions (the cleaned text, row numbers) are computed once.
    return frame.lazy().select(row.alias("x")).collect()


def _sheet_name(base: str, number: int) -> str:
    if number == 1:
        return base
    suffix = f"_{number}"
    return base[: 31 - len(suffix)] + suffix


def _check_sheet_name(name: str) -> None:
    if not 1 <= len(name) <= 31:
        raise ValueError(f"sheet name must have 1 to 31 characters: {name!r}")
    if _SHEET_NAME_FORBIDDEN & set(name) or name[0] == "'" or name[-1] == "'":
        raise ValueError(f"sheet name may not contain []:*?/\\ or start/end with ': {name!r}")
    if any(ord(c) < 0x20 for c in name) or name.lower() == "history":
        raise ValueError(f"sheet name not allowed by Excel: {name!r}")


class _XlsxSink:
    # Class attributes so tests can lower them.
    max_rows: ClassVar[int] = _XLSX_MAX_ROWS
    # Below zipfile's ZIP64 threshold (2**31 - 1) with room for the closing tags.
    max_part_bytes: ClassVar[int] = 2**31 - 2**20

    def __init__(self, target: Path, columns: Sequence[str], sheet_name: str) -> None:
        self._base = sheet_name
        self._sheets: list[str] = []
        self._part: IO[bytes] | None = None
        self._rows = 0  # rows in the current sheet, header included
        self._bytes = 0  # XML bytes in the current sheet part
        header = _sheet_rows(_header_frame(columns), 1, header=True)
        self._header = header["x"].item().encode()
        last = column_letter(len(columns) - 1)
        self._footer = (
            # Digits stored as text are deliberate here (phone numbers, codes).
            f'</sheetData><ignoredErrors><ignoredError sqref="A1:{last}{_XLSX_MAX_ROWS}"'
            ' numberStoredAsText="1"/></ignoredErrors></worksheet>'
        ).encode()
        self.file = _AtomicFile(target)
        try:
            self._zip = zipfile.ZipFile(
                self.file.fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
            )
        except BaseException:
            self.file.discard()
            raise

    def _open_sheet(self) -> None:
        self._close_sheet()
        number = len(self._sheets) + 1
        self._sheets.append(_sheet_name(self._base, number))
        selected = ' tabSelected="1"' if number == 1 else ""
        head = (
            f'{_XML_DECL}<worksheet xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
            f'<sheetViews><sheetView workbookViewId="0"{selected}>'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            "</sheetView></sheetViews><sheetData>"
        ).encode() + self._header
        # A name, not a ZipInfo: only then does zipfile apply the archive's compresslevel.
        self._part = self._zip.open(f"xl/worksheets/sheet{number}.xml", "w")
        self._part.write(head)
        self._rows = 1
        self._bytes = len(head)

    def _close_sheet(self) -> None:
        if self._part is not None:
            self._part.write(self._footer)
            self._part.close()
            self._part = None

    def write(self, frame: pl.DataFrame) -> None:
        done = 0
        while done < frame.height:
            if self._part is None or self._rows >= self.max_rows:
                self._open_sheet()
            assert self._part is not None
            take = min(frame.height - done, self.max_rows - self._rows, _XLSX_CHUNK_ROWS)
            rows = _sheet_rows(frame.slice(done, take), self._rows + 1)
            # polars writes one row per line; count those line feeds too.
            sizes = rows["x"].str.len_bytes() + 1
            fits = int((sizes.cum_sum() <= self.max_part_bytes - self._bytes).sum())
            if fits < take:
                if fits == 0 and self._rows > 1:
                    self._open_sheet()  # the sheet is full by size: start the next one
                    continue
                take = max(fits, 1)
                rows = rows.head(take)
            rows.write_csv(self._part, include_header=False, quote_style="never")
            self._bytes += int(sizes.head(take).sum())
            self._rows += take
            done += take

    def finish(self) -> None:
        if not self._sheets:
            self._open_sheet()  # a header-only report
        self._close_sheet()
        count = len(self._sheets)
        sheets = "".join(
            f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(self._sheets, 1)
        )
        parts = {
            "[Content_Types].xml": (
                f"{_XML_DECL}<Types"
                ' xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels"'
                ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                + "".join(
                    f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                    for i in range(1, count + 1)
                )
                + '<Override PartName="/xl/styles.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'
            ),
            "_rels/.rels": (
                f'{_XML_DECL}<Relationships xmlns="{_NS_PKG_REL}">'
                f'<Relationship Id="rId1" Type="{_NS_REL}/officeDocument"'
                ' Target="xl/workbook.xml"/></Relationships>'
            ),
            "xl/workbook.xml": (
                f'{_XML_DECL}<workbook xmlns="{_NS_MAIN}" xmlns:r="{_NS_REL}">'
                f'<bookViews><workbookView activeTab="0"/></bookViews><sheets>{sheets}</sheets>'
                "</workbook>"
            ),
            "xl/_rels/workbook.xml.rels": (
                f'{_XML_DECL}<Relationships xmlns="{_NS_PKG_REL}">'
                + "".join(
                    f'<Relationship Id="rId{i}" Type="{_NS_REL}/worksheet"'
                    f' Target="worksheets/sheet{i}.xml"/>'
                    for i in range(1, count + 1)
                )
                + f'<Relationship Id="rId{count + 1}" Type="{_NS_REL}/styles"'
                ' Target="styles.xml"/></Relationships>'
            ),
            "xl/styles.xml": _STYLES_XML,
        }
        for name, text in parts.items():
            self._zip.writestr(name, text)
        self._zip.close()

    def abort(self) -> None:
        # Close the zip objects before deleting the file, or their finalizers would later
        # write to a closed file and print "Exception ignored" noise.
        try:
            with contextlib.suppress(Exception):
                if self._part is not None:
                    self._part.close()
            self._part = None
            with contextlib.suppress(Exception):
                self._zip.close()
        finally:
            self.file.discard()


# -- the writer ---------------------------------------------------------------------------


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
    """

    def __init__(
        self, run_dir: Path, columns: Sequence[str], *, xlsx: bool, sheet_name: str = "report"
    ) -> None:
        self._columns = list(columns)
        if not self._columns:
            raise ValueError("a report needs at least one column")
        if len(set(self._columns)) != len(self._columns):
            raise ValueError("report column names must be unique")
        if xlsx:
            _check_sheet_name(sheet_name)
            if len(self._columns) > _XLSX_MAX_COLUMNS:
                raise ValueError(f"XLSX holds at most {_XLSX_MAX_COLUMNS} columns")
        self._run_dir = run_dir
        self._rows = 0
        self._state = "open"
        self._csv: _CsvSink | None = None
        self._xlsx: _XlsxSink | None = None
        try:
            self._csv = _CsvSink(run_dir / CSV_NAME, self._columns)
            if xlsx:
                self._xlsx = _XlsxSink(run_dir / XLSX_NAME, self._columns, sheet_name)
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
            _fsync_dir(self._run_dir)
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
