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
expressions over all cells at once (``_stack``), so time and memory follow the number of
cells up to Excel's 16,384 columns, and deflated by ``zipfile`` at level 1. It streams in
bounded memory and beat
rustpy-xlsxwriter (100k x 17: 0.55-0.85 s against 0.9-1.05 s), which also needs the whole
table at once and can style columns but not single cells (see bench/report.py). Text is
always an inline-string cell, so phone numbers and codes such as ``0044…`` stay exact text;
integers below 10**15 are numbers. A risky value (same rule as the CSV) keeps its visible
text and gets the ``quotePrefix`` style, so Excel does not turn it into a formula when the
cell is edited. The header row is bold and frozen; column widths come from the header and
the first rows (capped); a cell with a line break wraps. Excel limits, handled here:

- a sheet holds 1,048,576 rows: the data continues on ``<sheet_name>_2``, ``_3``, …, each
  with the header row again. A sheet also ends early before its XML reaches 2 GiB, so the
  zip never needs ZIP64, which Excel reads only in a stricter form than ``zipfile`` writes;
- a cell holds 32,767 UTF-16 units (an emoji counts 2): longer text is cut there, never
  inside a character, and the row's note column (the report's ``error``) says which cells
  were cut (the CSV keeps them whole);
- an empty string and null are both an empty cell;
- control characters XML 1.0 forbids, and CR, are written as Excel's ``_xHHHH_`` escapes,
  and a literal ``_xHHHH`` is escaped as ``_x005F_xHHHH``, so Excel and calamine (fastexcel,
  polars) read the original text back; openpyxl does not decode these escapes. The
  noncharacters U+FFFE and U+FFFF are dropped.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
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

from campaigner.limits import column_letter

__all__ = ("ReportWriter", "neutralize", "report_paths", "write_json_atomic")

_log = logging.getLogger(__name__)

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
_XLSX_CHUNK_ROWS: Final = 25_000  # bounds the XML built in memory at once ...
_XLSX_CHUNK_CELLS: Final = 500_000  # ... also for wide reports
_STACK_WIDTH: Final = 64  # from this many columns on, a sheet's cells are encoded stacked
_ROW_MAJOR_WIDTH: Final = 1_024  # wider rows are joined from an array, not from columns
# Column widths (in widths of "0"): the widest line of the header and of a sample of the
# first rows, plus padding, within bounds. East Asian wide characters and emoji count 2.
_WIDTH_MIN: Final = 4.0
_WIDTH_MAX: Final = 60.0
_WIDTH_SAMPLE_ROWS: Final = 1_000
_WIDTH_SAMPLE_CELLS: Final = 100_000
_WIDE_CHARS: Final = (
    "[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
    "\U0001f300-\U0001faff\U00020000-\U0003fffd]"
)
_SHEET_NAME_FORBIDDEN: Final = frozenset("[]:*?/\\")

# Control characters XML 1.0 forbids, plus CR (an XML parser would turn it into LF), go as
# Excel's _xHHHH_ escapes, which Excel and calamine decode. The noncharacters U+FFFE and
# U+FFFF, also forbidden, are dropped: calamine would not decode their escapes.
_XML_CONTROL: Final = [chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20))]
_XML_PATTERNS: Final = ["&", "<", ">", *_XML_CONTROL]
_XML_REPLACEMENTS: Final = ["&amp;", "&lt;", "&gt;", *(f"_x{ord(c):04X}_" for c in _XML_CONTROL)]
_XML_NONCHARACTERS: Final = ["\ufffe", "\uffff"]

# Cell styles: a cellXfs index in _STYLES_XML is the sum of these flags.
_STYLE_RISKY: Final = 1  # quotePrefix: the text is never read as a formula
_STYLE_HEADER: Final = 2  # bold
_STYLE_WRAP: Final = 4  # wrapped, for cells with a line break
_STYLE_ATTRS: Final = pl.Series(["", *(f' s="{i}"' for i in range(1, 8))], dtype=pl.String)

_NS_MAIN: Final = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_NS_REL: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_NS_PKG_REL: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
_XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _xf(index: int) -> str:
    attrs = f'numFmtId="0" fontId="{1 if index & _STYLE_HEADER else 0}" fillId="0" borderId="0"'
    attrs += ' xfId="0"' + (' applyFont="1"' if index & _STYLE_HEADER else "")
    attrs += ' quotePrefix="1"' if index & _STYLE_RISKY else ""
    if index & _STYLE_WRAP:
        return f'<xf {attrs} applyAlignment="1"><alignment wrapText="1"/></xf>'
    return f"<xf {attrs}/>"


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
    f'<cellXfs count="8">{"".join(_xf(i) for i in range(8))}</cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)


def _is_risky(value: pl.Expr) -> pl.Expr:
    """True where a text cell could be read as a formula; null stays null."""
    return value.str.contains(_RISKY)


def _stack(frame: pl.DataFrame) -> pl.Series:
    """Every cell of ``frame`` as text, one column after the other, in one Series.

    Cells are then encoded by a single vectorized expression whatever the width: an
    expression per column made polars' planning grow faster than the cell count (1,000
    columns x 3 rows took 14 s and 1 GB).
    """
    columns = [s if s.dtype == pl.String else s.cast(pl.String) for s in frame.get_columns()]
    return pl.concat(columns, rechunk=True)


def _unstack(cells: pl.Series, width: int, height: int) -> pl.DataFrame:
    """The inverse of ``_stack``: ``width`` columns of ``height`` cells (zero-copy slices)."""
    return pl.DataFrame([cells.slice(j * height, height).alias(str(j)) for j in range(width)])


def neutralize(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to every text cell a spreadsheet could run as a formula.

    Applies to String (and Categorical/Enum, returned as String) columns; numbers cannot
    be formulas. Note that ``+8613…`` and ``-…`` are prefixed too.
    """
    columns = frame.get_columns()
    text = [i for i, s in enumerate(columns) if isinstance(s.dtype, _TEXT_TYPES)]
    if not text:
        return frame
    if len(text) < _STACK_WIDTH:  # an expression per column: fastest while they are few
        return frame.with_columns(
            pl.when(_is_risky(value)).then(pl.lit("'") + value).otherwise(value).alias(name)
            for name, value in ((columns[i].name, pl.nth(i).cast(pl.String)) for i in text)
        )
    # All text cells in one Series, so the cost follows the cells, not the columns.
    cells = pl.lit(_stack(frame.select(pl.nth(text))))
    safe = pl.select(pl.when(_is_risky(cells)).then(pl.lit("'") + cells).otherwise(cells))
    parts = _unstack(safe.to_series(), len(text), frame.height).get_columns()
    for i, part in zip(text, parts, strict=True):
        columns[i] = part.alias(columns[i].name)
    return pl.DataFrame(columns)


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


@functools.lru_cache(maxsize=2)  # the CSV and the XLSX sink share it
def _header_frame(columns: tuple[str, ...]) -> pl.DataFrame:
    """The header as a one-row String frame, to go through the same encoders as data."""
    return _unstack(pl.Series(columns, dtype=pl.String), len(columns), 1)


class _CsvSink:
    def __init__(self, target: Path, columns: Sequence[str]) -> None:
        self.file = _AtomicFile(target)
        try:
            self.file.fh.write(_CSV_BOM)
            self.write(_header_frame(tuple(columns)))  # column names can be formulas too
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


@functools.cache
def _letters(width: int) -> pl.Series:
    return pl.Series([column_letter(j) for j in range(width)], dtype=pl.String)


def _utf16_units(text: str) -> int:
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def _cut_utf16(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-16 code units (Excel's measure of a cell),
    never between the two halves of a surrogate pair."""
    data = text.encode("utf-16-le")
    if len(data) <= 2 * limit:
        return text
    data = data[: 2 * limit]
    if 0xD8 <= data[-1] <= 0xDB:  # a lone high surrogate: drop it
        data = data[:-2]
    return data.decode("utf-16-le")


def _fit_frame(frame: pl.DataFrame, first_row: int, note_index: int | None) -> pl.DataFrame:
    """Cut cells over Excel's 32,767 UTF-16 units, noting each cut in the row's note cell."""
    height = frame.height
    text = _stack(frame)
    # Only a cell of more than half the limit in code points can exceed it.
    long = (text.str.len_chars() > _XLSX_MAX_CHARS // 2).fill_null(False)
    if not long.any():
        return frame
    positions = long.arg_true().to_list()
    updates: dict[int, str] = {}
    cut_refs: dict[int, list[str]] = {}
    for position, value in zip(positions, text.gather(positions).to_list(), strict=True):
        cut = _cut_utf16(value, _XLSX_MAX_CHARS)
        if cut != value:
            updates[position] = cut
            column, row = divmod(position, height)
            cut_refs.setdefault(row, []).append(f"{column_letter(column)}{first_row + row}")
    if note_index is not None:
        for row, refs in cut_refs.items():
            position = note_index * height + row
            note = (
                f"XLSX cell{'s' if len(refs) > 1 else ''} {', '.join(refs)} cut to "
                f"{_XLSX_MAX_CHARS:,} characters (Excel's limit); report.csv has the whole text"
            )
            current = updates.get(position, text[position])
            if current:
                note = "; " + note
            room = _XLSX_MAX_CHARS - _utf16_units(note)
            updates[position] = _cut_utf16(current or "", room) + note
    columns = frame.get_columns()
    for column in sorted({p // height for p in updates}):
        rows = [p - column * height for p in updates if p // height == column]
        values = pl.Series([updates[column * height + r] for r in rows], dtype=pl.String)
        columns[column] = columns[column].cast(pl.String).scatter(rows, values)
    return pl.DataFrame(columns)


def _cell_xml(text: pl.Expr, ref: pl.Expr, integer: pl.Expr | bool, header: bool) -> pl.Expr:
    """The ``<c>`` XML of a cell, null when empty. ``text`` is its value as text, ``ref``
    its ``<c r="A1"`` opening, ``integer`` whether the value is an integer."""
    t = text.str.replace_many(_XML_NONCHARACTERS, ["", ""])
    # Excel decodes _xHHHH_ in text: escape a literal one first, before the control
    # characters become such escapes themselves.
    escaped = t.str.replace_all(r"_(x[0-9A-Fa-f]{4})", "_x005F_$1").str.replace_many(
        _XML_PATTERNS, _XML_REPLACEMENTS
    )
    base = _STYLE_HEADER if header else 0
    risky, wrap = _is_risky(t), t.str.contains_any(["\n", "\r"])
    style = (
        pl.when(risky & wrap)
        .then(pl.lit(_STYLE_ATTRS[base | _STYLE_RISKY | _STYLE_WRAP]))
        .when(risky)
        .then(pl.lit(_STYLE_ATTRS[base | _STYLE_RISKY]))
        .when(wrap)
        .then(pl.lit(_STYLE_ATTRS[base | _STYLE_WRAP]))
        .otherwise(pl.lit(_STYLE_ATTRS[base]))
    )
    # Excel trims text at either end unless told to keep the whitespace.
    space = (
        pl.when(t.str.contains(r"^\s|\s$"))
        .then(pl.lit(' xml:space="preserve">'))
        .otherwise(pl.lit(">"))
    )
    text_cell = pl.when(escaped != "").then(
        pl.concat_str(
            [
                ref,
                style,
                pl.lit(' t="inlineStr"><is><t'),
                space,
                escaped,
                pl.lit("</t></is></c>"),
            ]
        )  # fmt: skip
    )
    if integer is False:
        return text_cell
    # Only digits and a sign: 15 digits at most is below 10**15, exact in Excel; larger
    # ones are text, risky exactly when negative, with nothing to escape.
    negative = text.str.starts_with("-")
    small = text.str.len_chars() - negative.cast(pl.Int32) <= 15
    risky_attr = _STYLE_ATTRS[(_STYLE_HEADER if header else 0) | _STYLE_RISKY]
    opening = (
        pl.when(small)
        .then(pl.lit("><v>"))
        .when(negative)
        .then(pl.lit(f'{risky_attr} t="inlineStr"><is><t>'))
        .otherwise(pl.lit(' t="inlineStr"><is><t>'))
    )
    closing = pl.when(small).then(pl.lit("</v></c>")).otherwise(pl.lit("</t></is></c>"))
    number = pl.concat_str([ref, opening, text, closing])
    return number if integer is True else pl.when(integer).then(number).otherwise(text_cell)


def _sheet_rows(
    frame: pl.DataFrame, first_row: int, *, header: bool = False, note_index: int | None = None
) -> pl.DataFrame:
    """One String column ``x`` holding the ``<row>`` XML of each row of ``frame``.

    ``note_index``: the column that tells, in the XLSX only, which cells were cut.
    """
    frame = _fit_frame(frame, first_row, note_index)
    width, height = frame.width, frame.height
    number = pl.int_range(first_row, first_row + pl.len(), dtype=pl.Int64).cast(pl.String)
    if width < _STACK_WIDTH:
        # An expression per column: fastest while the expression stays small.
        cells = [
            _cell_xml(
                pl.nth(j).cast(pl.String),
                pl.concat_str([pl.lit(f'<c r="{column_letter(j)}'), number, pl.lit('"')]),
                dtype.is_integer(),
                header,
            )
            for j, dtype in enumerate(frame.schema.dtypes())
        ]
        row = pl.concat_str(
            [pl.lit('<row r="'), number, pl.lit('">'), *cells, pl.lit("</row>")],
            ignore_nulls=True,
        )
        # Lazy, so common subexpressions (the row number) are computed once.
        return frame.lazy().select(row.alias("x")).collect()
    # All cells in one Series and one expression: the cost follows the cells (an expression
    # per column grows faster: 1,000 columns x 3 rows took 14 s and 1 GB).
    integer = pl.Series([d.is_integer() for d in frame.schema.dtypes()], dtype=pl.Boolean)
    position = pl.int_range(0, pl.len(), dtype=pl.Int64)
    column = position // height
    ref = pl.concat_str(
        [pl.lit('<c r="'), pl.lit(_letters(width)).gather(column),
         (position % height + first_row).cast(pl.String), pl.lit('"')]
    )  # fmt: skip
    xml = _cell_xml(pl.col("t"), ref, pl.lit(integer).gather(column), header)
    cells_xml = pl.DataFrame({"t": _stack(frame)}).lazy().select(xml).collect().to_series()
    joined = _join_rows(cells_xml, width, height)
    return pl.DataFrame({"x": joined}).select(
        pl.concat_str(
            [pl.lit('<row r="'), number, pl.lit('">'), pl.col("x"), pl.lit("</row>")]
        ).alias("x")
    )


def _join_rows(cells: pl.Series, width: int, height: int) -> pl.Series:
    """Each row's cells (``cells`` as ``_stack`` makes them) joined, nulls left out."""
    if width <= _ROW_MAJOR_WIDTH:  # one concat_str over the columns: fastest when narrow
        return (
            _unstack(cells, width, height)
            .select(pl.concat_str(pl.all(), ignore_nulls=True))
            .to_series()
        )
    position = pl.int_range(0, width * height, dtype=pl.Int64, eager=True)
    row_major = cells.gather(position % width * height + position // width)
    return row_major.reshape((height, width)).arr.join("", ignore_nulls=True)


def _line_widths(cells: pl.Series, width: int, height: int) -> list[float]:
    """The widest line among each column's cells (``cells`` as ``_stack`` makes them)."""
    line = pl.element()
    widths = (
        cells.str.replace_all("\r\n?", "\n")
        .str.split("\n")
        .list.eval(line.str.len_chars() + line.str.count_matches(_WIDE_CHARS))
        .list.max()
        .fill_null(0)
        .cast(pl.Float64)
    )
    return widths.reshape((width, height)).arr.max().to_list()


def _column_widths(columns: Sequence[str], sample: pl.DataFrame) -> list[float]:
    width = len(columns)
    header = _line_widths(pl.Series(list(columns), dtype=pl.String), width, 1)
    values = _line_widths(_stack(sample), width, sample.height) if sample.height else [0.0] * width
    # The header is bold, about a tenth wider.
    return [
        round(max(_WIDTH_MIN, min(max(h * 1.1, v) + 2, _WIDTH_MAX)), 1)
        for h, v in zip(header, values, strict=True)
    ]


def _cols_xml(widths: list[float]) -> bytes:
    """``<cols>``, one ``<col>`` per run of equal widths."""
    parts, start = [], 0
    for end in range(1, len(widths) + 1):
        if end == len(widths) or widths[end] != widths[start]:
            width = widths[start]
            parts.append(f'<col min="{start + 1}" max="{end}" width="{width}" customWidth="1"/>')
            start = end
    return f"<cols>{''.join(parts)}</cols>".encode()


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

    def __init__(
        self, target: Path, columns: Sequence[str], sheet_name: str, note_column: str | None
    ) -> None:
        self._base = sheet_name
        self._columns = list(columns)
        self._note_index = None if note_column is None else self._columns.index(note_column)
        self._sheets: list[str] = []
        self._part: IO[bytes] | None = None
        self._rows = 0  # rows in the current sheet, header included
        self._bytes = 0  # XML bytes in the current sheet part
        self._chunk_rows = max(1, min(_XLSX_CHUNK_ROWS, _XLSX_CHUNK_CELLS // len(columns)))
        self._cols: bytes | None = None  # set from the first rows written
        header = _sheet_rows(_header_frame(tuple(columns)), 1, header=True)
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
            "</sheetView></sheetViews>"
        ).encode()
        if self._cols is None:
            self._cols = _cols_xml(_column_widths(self._columns, pl.DataFrame()))
        head += self._cols + b"<sheetData>" + self._header
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
        if self._cols is None and frame.height:
            sample = max(1, min(_WIDTH_SAMPLE_ROWS, _WIDTH_SAMPLE_CELLS // frame.width))
            self._cols = _cols_xml(_column_widths(self._columns, frame.head(sample)))
        done = 0
        while done < frame.height:
            if self._part is None or self._rows >= self.max_rows:
                self._open_sheet()
            assert self._part is not None
            take = min(frame.height - done, self.max_rows - self._rows, self._chunk_rows)
            rows = _sheet_rows(frame.slice(done, take), self._rows + 1, note_index=self._note_index)
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
            _check_sheet_name(sheet_name)
        if xlsx and len(self._columns) > _XLSX_MAX_COLUMNS:
            # Never a reason to lose the report: the CSV has no such limit.
            _log.warning(
                "report.xlsx not written: the report has %s columns and Excel holds at most "
                "%s; report.csv has them all",
                f"{len(self._columns):,}",
                f"{_XLSX_MAX_COLUMNS:,}",
            )
            xlsx = False
        self._run_dir = run_dir
        self._rows = 0
        self._state = "open"
        self._csv: _CsvSink | None = None
        self._xlsx: _XlsxSink | None = None
        try:
            self._csv = _CsvSink(run_dir / CSV_NAME, self._columns)
            if xlsx:
                self._xlsx = _XlsxSink(run_dir / XLSX_NAME, self._columns, sheet_name, note_column)
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
