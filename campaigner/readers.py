"""Read a recipient file (CSV or XLSX) as text, in streamed polars batches.

Every cell comes out as the text the user sees, never type-inferred, so phone
numbers keep their leading zeros and ``+``. Each row carries the row number a
spreadsheet shows (``ROW_COLUMN``) and, when the row is damaged, a short reason
(``ISSUE_COLUMN``). ``open_input`` does every file-level check up front and
raises ``UnreadableInputError`` or ``EmptyInputError`` with one message;
``InputTable.batches`` never raises for row-level damage.

Choices (documented for the rest of campaigner):

* Header: the first non-blank row (XLSX: of the chosen sheet; by default the
  first visible worksheet). Header names are stripped of surrounding
  whitespace and invisible characters (``CELL_EDGE_CHARS``: BOM, zero-width,
  direction marks), the trimming every cell gets before rendering
  (``trim_cell``); data cells themselves stay as they are. A CSV header record
  is read whole up to ``MAX_CSV_HEADER_BYTES`` and may have up to
  ``MAX_CSV_COLUMNS`` (Excel's 16,384) columns. An empty header cell names its
  column ``column_<letter>`` (Excel letter of its position) unless the whole
  column is empty, then the column is dropped. Duplicates keep the first name
  and rename later ones ``name_2``, ``name_3``. Being stripped, no name starts
  with whitespace, which keeps every name free of collisions with the internal
  columns (``campaigner.columns``).
* Blank rows (every cell empty or whitespace) are not yielded, but they keep
  their number: a blank CSV line counts as a row, as Excel shows it. A quoted
  multi-line CSV record is one row.
* CSV encodings: a BOM (UTF-8, UTF-16, UTF-32) wins; otherwise ``encoding`` if
  given, else UTF-8. Invalid UTF-8 is a file-level error that names the line
  and suggests the ``encoding`` setting; there is no silent cp1252 fallback.
  Records end at LF, CRLF or CR; a line end inside a quoted cell stays exactly
  as written, so the report gives every cell back byte for byte.
* CSV parsing: polars, on chunks cut at record ends; a marker field appended
  to each line gives every record's true field count (polars pads short rows
  silently); wide tables count delimiters in the text instead. From the first
  chunk whose quoting is not RFC 4180 (polars would read it its own way) the
  rest of the file is read with Python's ``csv`` module (non-strict), the
  reference for damaged quoting: slower, nothing lost.
* CSV damage: ragged rows keep their first cells and get an issue; NUL bytes
  in a data row are a row issue (in the header, a file error).
* XLSX is read with fastexcel (calamine) with every column as string, after a
  bounded pre-scan of the zip and the sheet XML. The pre-scan refuses hostile
  files and finds the cells whose string form needs fixing: booleans
  (``TRUE``/``FALSE``), error cells and formulas without a cached value (row
  issues), numbers fastexcel would print differently from the rules below.
  Numbers: integers below 1e15 as digits, larger integers in Excel's
  scientific form (``8.61381E+18``), other numbers ``format(v, ".15g")``; a
  number in a percent format (``0%``, ``0.00%``, custom ones) as Excel shows it,
  with the format's decimals (0.5 in ``0%`` is ``50%``, 0.125 is ``13%``).
  Dates: ISO 8601 (``2025-02-20`` or ``2025-02-20T10:30:00``), times of day
  ``10:30:00``; a date past year 9999 is a row issue. A text cell spelled
  exactly like fastexcel's date output (``2025-02-20 10:30:00``) is normalised
  the same way. calamine reads the 1904 date system from the wrong
  ``workbookPr`` when Excel adds ``<x14:workbookPr>``; such dates are moved back.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from campaigner import columns
from campaigner.errors import EmptyInputError, UnreadableInputError

if TYPE_CHECKING:
    from campaigner.xlsx import XlsxData

__all__ = (
    "CELL_EDGE_CHARS",
    "ISSUE_COLUMN",
    "ROW_COLUMN",
    "InputTable",
    "column_letter",
    "open_input",
    "trim_cell",
)

ROW_COLUMN = columns.ROW
ISSUE_COLUMN = columns.ISSUE

_MiB = 1 << 20

# File-level limits. The XLSX ones bound what calamine may allocate: it has no
# limit of its own on decompressed size or on the dense cell grid it builds.
MAX_XLSX_FILE_BYTES = 200 * _MiB
MAX_ZIP_ENTRIES = 10_000
MAX_UNCOMPRESSED_BYTES = 1024 * _MiB
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 16 * _MiB
MAX_SHEET_CELLS = 20_000_000
MAX_SHEET_ROWS = 1_048_576
MAX_SHEET_COLUMNS = 16_384
_MAX_ROW_XML = 64 * _MiB

_CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".tab"})
_XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_COMPRESSED_SUFFIXES = frozenset({".gz", ".zip", ".bz2", ".xz", ".7z", ".zst", ".rar", ".tgz"})

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ARCHIVE_MAGICS = (b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")

# CSV: the header record is read whole up to this size (the sample grows from 64 KiB), and
# may hold as many columns as an Excel sheet.
MAX_CSV_HEADER_BYTES = 8 * _MiB
MAX_CSV_COLUMNS = MAX_SHEET_COLUMNS

# Characters that can sit at the edge of a cell without anyone seeing them: whitespace and
# invisible format characters (BOM, zero-width, direction marks, soft hyphen). Cells are
# trimmed of them before rendering, so none reaches a message; header names likewise.
CELL_EDGE_CHARS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace()) + (
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e\u206f"
    "\ufeff"
)

_DELIMITERS = (",", ";", "\t", "|")
_BLOCK = 8 * _MiB
_SAMPLE = 64 * 1024
_MAX_RECORD = 64 * _MiB
# Control characters used as an end-of-record marker field; one absent from the chunk is chosen.
_SENTINELS = "\x1f\x1e\x1d\x1c\x1b\x1a\x19\x18\x17\x16\x15\x14\x13\x12\x11\x10"
_SLOW_BATCH = 20_000
# Up to this many columns the field count is found as the marker's column; beyond, polars'
# cost per column makes counting delimiters in the text cheaper.
_MARKER_SEARCH_MAX_WIDTH = 256

_RESERVED = frozenset({ROW_COLUMN, ISSUE_COLUMN})
_NUL_ISSUE = "row contains NUL bytes (the file may be damaged)"
_HTML_PROBLEM = "is an HTML page, not a CSV. Download or export the data as CSV or XLSX instead."


# --------------------------------------------------------------------------- public API


@dataclass(frozen=True, slots=True)
class InputTable:
    """An opened recipient file. ``batches`` streams its data rows."""

    path: Path
    kind: Literal["csv", "xlsx"]
    columns: tuple[str, ...]
    sheet: str | None
    _source: _CsvPlan | XlsxData = field(repr=False, compare=False)

    def batches(self, batch_rows: int = 50_000) -> Iterator[pl.DataFrame]:
        """Yield frames of at most ``batch_rows`` rows: ``columns`` (all ``pl.String``,
        null = empty cell), then ``ROW_COLUMN`` and ``ISSUE_COLUMN``, in input order."""
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        source = self._source
        frames: Iterable[pl.DataFrame]
        if isinstance(source, _CsvPlan):
            frames = (_finish_csv(raw, source) for raw in _csv_raw_frames(source))
        else:
            frames = (source.frame,)
        for frame in frames:
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
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise _fail(path, "is not a regular file")
        with path.open("rb") as fh:
            head = fh.read(_SAMPLE)
    except OSError as exc:
        raise _fail(path, f"cannot be opened ({exc.strerror or exc})") from None
    if size == 0 or not head:
        raise EmptyInputError(f"{path.name} is empty (0 bytes).")
    suffix = path.suffix.lower()
    if (
        suffix in _COMPRESSED_SUFFIXES
        or head.startswith(_ARCHIVE_MAGICS)
        or re.match(rb"BZh[1-9]1AY&SY", head)
    ):
        raise _fail(
            path,
            "is a compressed archive; compressed inputs are not supported. "
            "Extract the .csv or .xlsx file and use that.",
        )
    if suffix in _XLSX_SUFFIXES:
        from campaigner.xlsx import open_xlsx  # the XLSX engine loads only for XLSX files

        return open_xlsx(path, size, head, sheet)
    if suffix in _CSV_SUFFIXES:
        return _open_csv(path, head, encoding)
    if suffix == ".xls":
        if head.startswith(_OLE_MAGIC):
            raise _fail(path, _ole_problem(path))
        if head.startswith(_ZIP_MAGICS):
            raise _fail(path, f"is {_zip_kind(path)} with an .xls name; rename it to .xlsx.")
        if _looks_like_html(head):
            # Web applications often export an HTML table under an .xls name.
            raise _fail(path, "is an HTML page with an .xls name. Open it in Excel, save as .xlsx.")
        raise _fail(path, "is not a legacy Excel file. Save it as .xlsx or .csv and try again.")
    if suffix == ".xlsb":
        raise _fail(path, "is an Excel binary workbook (XLSB). Open it in Excel and save as .xlsx.")
    if suffix in {".ods", ".fods"}:
        raise _fail(path, "is an OpenDocument spreadsheet (ODS). Save it as .xlsx or .csv.")
    # Unknown extension: say what the content is when we can tell.
    if _looks_like_html(head):
        raise _fail(path, _HTML_PROBLEM)
    if head.startswith(_ZIP_MAGICS):
        raise _fail(path, f"is {_zip_kind(path)}; give it the right extension (.xlsx).")
    if head.startswith(_OLE_MAGIC):
        raise _fail(path, _ole_problem(path))
    shown = suffix or "(no extension)"
    raise _fail(path, f"has an unsupported file type {shown}; use a .csv or .xlsx file.")


# --------------------------------------------------------------------------- shared helpers


def _fail(path: Path, message: str) -> UnreadableInputError:
    return UnreadableInputError(f"{path.name} {message}")


def trim_cell(cell: pl.Expr) -> pl.Expr:
    """A cell without whitespace or invisible characters at either end."""
    return cell.str.strip_chars(CELL_EDGE_CHARS)


def column_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _column_number(letters: bytes) -> int:
    """Excel letters -> 1-based column number."""
    number = 0
    for ch in letters:
        number = number * 26 + (ch - 64)
    return number


def _unique_names(names: list[str]) -> list[str]:
    """Keep the first of each name; later duplicates become name_2, name_3, ..."""
    taken = set(_RESERVED)
    taken.update(names)
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name in seen or name in _RESERVED:
            n = 2
            while f"{name}_{n}" in taken:
                n += 1
            new = f"{name}_{n}"
            taken.add(new)
            out.append(new)
        else:
            seen.add(name)
            out.append(name)
    return out


def _is_panic(exc: BaseException) -> bool:
    # pyo3 turns Rust panics into PanicException, a BaseException subclass.
    return type(exc).__name__ == "PanicException"


def _nonblank(column: str) -> pl.Expr:
    return pl.col(column).str.contains(r"\S").fill_null(False)


def _ole_problem(path: Path) -> str:
    """Describe an OLE/CFB file (password-protected OOXML or legacy .xls)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_XLSX_FILE_BYTES)
    except OSError:
        data = b""
    # Directory entry names are stored as UTF-16LE; a plain search finds them.
    if any(name.encode("utf-16-le") in data for name in ("EncryptedPackage", "EncryptionInfo")):
        return (
            "is encrypted with a password. Remove the password in Excel "
            "(File > Info > Protect Workbook > Encrypt with Password) and save it again."
        )
    if any(name.encode("utf-16-le") in data for name in ("Workbook", "Book")):
        return "is a legacy Excel 97-2003 (.xls) workbook. Open it in Excel and save as .xlsx."
    return "is an old Microsoft Office (OLE) file, not a spreadsheet this tool reads."


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<table", b"<meta")
    return text.startswith(starts) or (text.startswith(b"<!--") and b"<html" in text)


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "a zip archive"
    if "xl/workbook.bin" in names:
        return "an Excel binary workbook (XLSB)"
    if "mimetype" in names or "content.xml" in names:
        return "an OpenDocument spreadsheet (ODS)"
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (XLSX)"
    return "a zip archive"


# --------------------------------------------------------------------------- CSV


@dataclass(frozen=True, slots=True)
class _CsvPlan:
    path: Path
    codec: str  # Python codec; "utf-8" means the bytes pass through untouched
    skip: int  # BOM bytes to skip (UTF-16/32 codecs consume their own BOM)
    delimiter: str
    width: int  # fields in the header record, empty ones included
    header_record: int  # 0-based record index of the header (blank lines count)
    keep: tuple[int, ...]  # header field positions that become columns
    columns: tuple[str, ...]


def _open_csv(path: Path, head: bytes, encoding: str | None) -> InputTable:
    if head.startswith(_ZIP_MAGICS):
        kind = _zip_kind(path)
        raise _fail(path, f"is {kind}, not a CSV file. Rename it to the right extension.")
    if head.startswith(_OLE_MAGIC):
        raise _fail(path, _ole_problem(path))
    if head.startswith(b"%PDF"):
        raise _fail(path, "is a PDF document, not a CSV file.")
    if _looks_like_html(head):
        raise _fail(path, _HTML_PROBLEM)
    codec, skip = _csv_encoding(path, head, encoding)
    _validate_text(path, codec, skip)

    size = _SAMPLE
    while True:
        # The sample grows until it holds the whole header record (a wide header is longer
        # than 64 KiB), within MAX_CSV_HEADER_BYTES.
        sample, truncated = _read_sample(path, codec, skip, size)
        if sample.lstrip("\ufeff").lstrip().startswith("<?xml"):
            raise _fail(path, "is an XML file, not a CSV. Save it from Excel as .xlsx or CSV.")
        delimiter = _sniff_delimiter(sample, truncated, path.suffix.lower())
        header, header_record, later, whole = _find_header(sample, delimiter, truncated)
        if whole:
            break
        if size >= MAX_CSV_HEADER_BYTES:
            limit = f"{MAX_CSV_HEADER_BYTES // _MiB} MiB"
            if header is None:
                raise EmptyInputError(f"{path.name} has no header row in its first {limit}.")
            raise _fail(path, f"has a header row longer than {limit}; check that it is a CSV file.")
        size = min(size * 8, MAX_CSV_HEADER_BYTES)
    if header is None:
        raise EmptyInputError(f"{path.name} has no header row: it holds only blank lines.")
    if len(header) > MAX_CSV_COLUMNS:
        raise _fail(
            path,
            f"has {len(header):,} columns in its header row, more than {MAX_CSV_COLUMNS:,} "
            "(Excel's limit). Remove the columns the campaign does not use.",
        )
    if any("\x00" in cell for cell in header):
        raise _fail(
            path,
            "has NUL bytes in its header row; it is damaged or not a text file. "
            "If it is UTF-16 text without a BOM, set the input encoding (e.g. 'utf-16-le').",
        )
    names = [cell.strip(CELL_EDGE_CHARS) for cell in header]
    width = len(names)
    plan = _CsvPlan(
        path=path,
        codec=codec,
        skip=skip,
        delimiter=delimiter,
        width=width,
        header_record=header_record,
        keep=tuple(range(width)),
        columns=tuple(f"c{i}" for i in range(width)),
    )

    empty = [i for i, name in enumerate(names) if not name]
    has_data = later
    if empty or not has_data:
        # Needs a pass over the data: which unnamed columns hold values, is there any row.
        used: set[int] = set()
        for raw in _csv_raw_frames(plan):
            if raw.height:
                has_data = True
            if not empty:
                break
            for i in empty:
                if i not in used and raw.get_column(f"c{i}").str.contains(r"\S").any():
                    used.add(i)
        if not has_data:
            raise EmptyInputError(f"{path.name} has a header row but no data rows.")
        keep = tuple(i for i, name in enumerate(names) if name or i in used)
    else:
        keep = tuple(range(width))
    if not keep:
        raise EmptyInputError(f"{path.name} has no named columns and no data in any column.")
    final = _unique_names([names[i] or f"column_{column_letter(i)}" for i in keep])
    plan = replace(plan, keep=keep, columns=tuple(final))
    return InputTable(path=path, kind="csv", columns=plan.columns, sheet=None, _source=plan)


def _csv_encoding(path: Path, head: bytes, encoding: str | None) -> tuple[str, int]:
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32", 0
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", 0
    if encoding:
        try:
            return codecs.lookup(encoding).name, 0
        except LookupError:
            raise _fail(path, f"cannot be read: unknown encoding {encoding!r}.") from None
    nul = head.count(b"\x00")
    if nul * 5 > len(head):
        raise _fail(
            path,
            "looks like UTF-16 text without a byte-order mark. Set the input encoding "
            "('utf-16-le' or 'utf-16-be'), or save it from Excel as 'CSV UTF-8'.",
        )
    return "utf-8", 0


def _validate_text(path: Path, codec: str, skip: int) -> None:
    """Decode the whole file once so a bad byte is a file-level error, not a late crash."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    line = 1
    try:
        with path.open("rb") as fh:
            fh.seek(skip)
            while True:
                raw = fh.read(_BLOCK)
                try:
                    decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    line += raw.count(b"\n", 0, max(exc.start, 0))
                    bad = exc.object[exc.start : exc.start + 1].hex().upper()
                    where = f"byte 0x{bad} on line {line}" if bad else f"line {line}"
                    if codec == "utf-8":
                        raise _fail(
                            path,
                            f"is not UTF-8 text ({where}). Save it from Excel as 'CSV UTF-8', "
                            "or set the input encoding (e.g. 'cp1252', 'latin-1' or "
                            "'shift_jis').",
                        ) from None
                    raise _fail(
                        path, f"is not valid {codec} text ({where}); check the input encoding."
                    ) from None
                if not raw:
                    return
                line += raw.count(b"\n")
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from None


def _take(blocks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Blocks until more than ``limit`` bytes were taken (the last one may overshoot)."""
    got = 0
    for block in blocks:
        yield block
        got += len(block)
        if got > limit:
            return


def _text_blocks(
    path: Path, codec: str, skip: int, errors: str, block_size: int = _BLOCK
) -> Iterator[bytes]:
    """The file as UTF-8 bytes in blocks of about ``_BLOCK`` bytes.

    Line ends stay as they are: a CR or CRLF inside a quoted cell is part of the cell.
    """
    decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)(errors)
    with path.open("rb") as fh:
        fh.seek(skip)
        while True:
            raw = fh.read(block_size)
            final = not raw
            data = raw if decoder is None else decoder.decode(raw, final=final).encode("utf-8")
            if data:
                yield data
            if final:
                return


def _read_sample(path: Path, codec: str, skip: int, size: int) -> tuple[str, bool]:
    """About ``size`` bytes of text from the start, cut after a line end when there is more."""
    data = b"".join(_take(_text_blocks(path, codec, skip, "replace", size), size))
    truncated = len(data) > size
    sample = data[:size].decode("utf-8", errors="replace")
    if truncated:
        sample = sample[: max(sample.rfind("\n"), sample.rfind("\r")) + 1] or sample
    return sample, truncated


def _sample_records(sample: str, delimiter: str, truncated: bool, limit: int) -> list[list[str]]:
    # newline="": lines split at CR, LF and CRLF and keep them, as csv wants.
    lines = io.StringIO(sample, newline="")
    reader = csv.reader(lines, delimiter=delimiter, quotechar='"', strict=False)
    records: list[list[str]] = []
    try:
        for record in reader:
            records.append(record)
            if len(records) > limit:
                break
    except csv.Error:
        pass
    if truncated and len(records) > 1 and len(records) <= limit:
        records.pop()  # may be cut in the middle
    return records


def _sniff_delimiter(sample: str, truncated: bool, suffix: str) -> str:
    """Pick the delimiter whose header has several fields and whose rows agree with it."""
    order = ("\t", ",", ";", "|") if suffix in {".tsv", ".tab"} else _DELIMITERS
    best: tuple[bool, float, int] | None = None
    chosen = order[0]
    for rank, delimiter in enumerate(order):
        records = [
            r
            for r in _sample_records(sample, delimiter, truncated, 200)
            if any(c.strip() for c in r)
        ][:50]
        if not records:
            continue
        width = len(records[0])
        rows = records[1:]
        agree = sum(len(r) == width for r in rows) / len(rows) if rows else 1.0
        score = (width > 1, agree, -rank)
        if best is None or score > best:
            best, chosen = score, delimiter
    return chosen


def _find_header(
    sample: str, delimiter: str, truncated: bool
) -> tuple[list[str] | None, int, bool, bool]:
    """First non-blank record of the sample, its record index, whether data follows, and
    whether the header is known to be whole (a truncated sample's last record may be cut)."""
    records = _sample_records(sample, delimiter, False, 1_000_000)
    for index, record in enumerate(records):
        if any(cell.strip() for cell in record):
            whole = not truncated or index + 1 < len(records)
            following = records[index + 1 : len(records) - 1 if truncated else None]
            later = any(any(c.strip() for c in r) for r in following)
            return record, index, later, whole
    return None, 0, False, not truncated


def _line_end_before(buf: bytes, end: int) -> int:
    """Offset just after the last line end (LF, CRLF or CR) within ``buf[:end]``, or 0.

    A CR is a line end only when no LF follows it; a CR that ends ``buf`` may be half of a
    CRLF whose LF is still unread, so it does not count."""
    while True:
        cut = max(buf.rfind(b"\n", 0, end), buf.rfind(b"\r", 0, end)) + 1
        if cut == 0 or buf[cut - 1] == 0x0A or (cut < len(buf) and buf[cut] != 0x0A):
            return cut
        end = cut - 1


def _record_cut(buf: bytes) -> int:
    """Offset just after the last line end that ends a record (even number of quotes before)."""
    cut = _line_end_before(buf, len(buf))
    if cut == 0:
        return 0
    quotes = buf.count(b'"', 0, cut)
    while quotes % 2:
        prev = _line_end_before(buf, cut - 1)
        if prev == 0:
            return 0
        quotes -= buf.count(b'"', prev, cut)
        cut = prev
    return cut


def _unify_line_ends(chunk: bytes, *, quoted_crs: bool) -> bytes:
    """CR and CRLF record ends become LF. With ``quoted_crs``, those inside quoted cells
    stay as they are (slower: only for chunks known to have some).

    Only used on chunks that are RFC 4180 quoted, where a quote count tells inside from
    outside: the text between quotes 2k-1 and 2k is inside a quoted cell.
    """
    if b"\r" not in chunk:
        return chunk
    if not quoted_crs:
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    parts = chunk.split(b'"')
    parts[0::2] = [
        p.replace(b"\r\n", b"\n").replace(b"\r", b"\n") if b"\r" in p else p for p in parts[0::2]
    ]
    return b'"'.join(parts)


def _csv_raw_frames(plan: _CsvPlan) -> Iterator[pl.DataFrame]:
    """Non-blank data records as frames: c0..c{width-1}, __n (field count), __rec, __bad."""
    blocks = _text_blocks(plan.path, plan.codec, plan.skip, "replace")
    record = 0
    pending = b""
    exhausted = False
    while True:
        if not exhausted:
            block = next(blocks, None)
            if block is None:
                exhausted = True
            else:
                pending += block
        added = False
        if exhausted:
            if not pending:
                return
            added = not pending.endswith((b"\n", b"\r"))
            chunk = pending + b"\n" if added else pending
            pending = b""
        else:
            cut = _record_cut(pending)
            if cut == 0:
                if len(pending) > _MAX_RECORD:
                    # An unbalanced quote swallows the rest: let csv decide, streaming.
                    yield from _csv_slow_frames(_chain(pending, blocks), plan, record)
                    return
                continue
            chunk, pending = pending[:cut], pending[cut:]
        parsed = _parse_chunk(chunk, plan, record)
        if parsed is None:
            rest = (chunk[:-1] if added else chunk) + pending
            yield from _csv_slow_frames(_chain(rest, blocks), plan, record)
            return
        frame, records = parsed
        record += records
        if frame.height:
            yield frame


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _parse_chunk(
    raw: bytes, plan: _CsvPlan, record0: int, *, quoted_crs: bool = False
) -> tuple[pl.DataFrame, int] | None:
    """Parse whole records with polars; None when polars would read the chunk its own way.

    Polars pads short rows silently, so a marker field is appended to every line (it also
    keeps blank lines as records): in a narrow table its position is the record's field
    count. In a wide one, or when a row is longer than the header, counting the delimiters
    outside quotes is cheaper than looking for the marker column by column.

    Line ends are first all made LF, which is right unless a quoted cell holds a CR: then
    some cell spans lines, and the chunk is parsed again keeping those CRs.
    """
    chunk = _unify_line_ends(raw, quoted_crs=quoted_crs)
    sentinel = next((s for s in _SENTINELS if s.encode() not in chunk), None)
    if sentinel is None:
        return None
    d = plan.delimiter
    quoted = b'"' in chunk
    if quoted and not _well_quoted(chunk, d):
        return None  # polars reads bad quoting its own way; csv's reading is the reference
    marker = d + sentinel + "\n"
    data = chunk.replace(b"\n", marker.encode())
    width = plan.width + 2  # the cells, the marker, and one more for rows longer than that
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            separator=d,
            quote_char='"' if quoted else None,
            schema={f"c{i}": pl.String for i in range(width)},
            truncate_ragged_lines=True,
            missing_columns="insert",
            raise_if_empty=False,
        )
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _is_panic(exc):
            raise
        return None
    records = frame.height
    lines = chunk.count(b"\n")
    if records > lines:
        return None  # more records than lines: parsing went astray
    counts = None
    if width <= _MARKER_SEARCH_MAX_WIDTH:
        found = frame.select(
            pl.coalesce(
                [pl.when(pl.col(f"c{i}") == sentinel).then(pl.lit(i)) for i in range(width)]
            )
        ).to_series()
        counts = None if found.null_count() else found.cast(pl.Int64)
    if counts is None:
        counts = _field_counts(chunk, d, quoted)
        if counts is None or counts.len() != records:
            return None
    cells = [f"c{i}" for i in range(plan.width)]
    cell = pl.col(cells)
    if quoted and records < lines and not quoted_crs and b"\r" in raw and _has_quoted_cr(raw):
        return _parse_chunk(raw, plan, record0, quoted_crs=True)
    if quoted and records < lines:
        # Multi-line cells got the marker inside them: take it out again.
        cell = (
            pl.when(cell.str.contains(sentinel, literal=True))
            .then(cell.str.replace_all(marker, "\n", literal=True))
            .otherwise(cell)
        )
    # The marker itself fills the first missing cell of a short row: it is no value; nor is
    # a quoted empty cell. Checked column by column, so only where it can happen.
    shortest = counts.min()
    short = not isinstance(shortest, int) or shortest < plan.width
    if width <= _MARKER_SEARCH_MAX_WIDTH or short or b'""' in chunk:
        cell = pl.when((cell != "") & (cell != sentinel)).then(cell)
    frame = frame.select(
        cell,
        counts.alias("__n"),
        pl.int_range(record0, record0 + records, dtype=pl.Int64).alias("__rec"),
    )
    if b"\x00" in chunk:
        nul = pl.any_horizontal(pl.col(cells).str.contains("\x00", literal=True))
        bad: pl.Expr = pl.when(nul).then(pl.lit(_NUL_ISSUE))
    else:
        bad = pl.lit(None, dtype=pl.String)
    return _keep_data(frame.with_columns(bad.alias("__bad")), plan), records


def _has_quoted_cr(chunk: bytes) -> bool:
    """Whether a quoted part of an RFC 4180 chunk holds a CR (one regex pass in Rust)."""
    text = pl.Series([chunk], dtype=pl.Binary).cast(pl.String, strict=False)
    return not text.str.contains(r'\A(?:[^"]|"[^"\r]*")*\z').fill_null(True).item()


def _field_counts(chunk: bytes, delimiter: str, quoted: bool) -> pl.Series | None:
    """Fields of each record of an RFC 4180 chunk: one more than its delimiters outside
    quotes. Without its quoted parts, each record is one line."""
    text = re.sub(rb'"[^"]*"', b"", chunk) if quoted else chunk
    try:
        lines = pl.Series([text], dtype=pl.Binary).cast(pl.String).str.split("\n").explode()
    except pl.exceptions.PolarsError:
        return None  # not UTF-8: cannot happen for text from _text_blocks
    # The chunk ends with a line end: the piece after the last one is no record.
    return lines.head(lines.len() - 1).str.count_matches(delimiter, literal=True).cast(pl.Int64) + 1


_RX_DELIMITER = {",": ",", ";": ";", "\t": r"\t", "|": r"\|"}


def _well_quoted(chunk: bytes, delimiter: str) -> bool:
    """Whether every record is RFC 4180 quoted: quotes only around whole fields."""
    if chunk.count(b'"') < 50_000:
        # Few quotes: the text between a closing and the next opening quote must be empty
        # (an escaped quote) or start and end at a field boundary.
        parts = chunk.split(b'"')
        edges = (delimiter.encode(), b"\n")
        return (
            len(parts) % 2 == 1
            and (not parts[0] or parts[0][-1:] in edges)
            and (not parts[-1] or parts[-1][:1] in edges)
            and all(not p or (p[:1] in edges and p[-1:] in edges) for p in parts[2:-1:2])
        )
    d = _RX_DELIMITER[delimiter]
    field = rf'(?:"[^"]*"(?:"[^"]*")*|[^"{d}\n]*)'
    pattern = rf"\A(?:{field}(?:{d}{field})*\n)*\z"
    text = chunk.decode("utf-8", errors="replace")
    return bool(pl.Series([text]).str.contains(pattern).item())


def _keep_data(frame: pl.DataFrame, plan: _CsvPlan) -> pl.DataFrame:
    """Drop the header, what precedes it, and blank records."""
    cells = [f"c{i}" for i in range(plan.width)]
    nonblank = (
        pl.concat_str(cells, ignore_nulls=True).str.contains(r"\S")
        | (pl.col("__n") > plan.width)
        | pl.col("__bad").is_not_null()
    )
    return frame.filter((pl.col("__rec") > plan.header_record) & nonblank)


_LINE_SPLIT = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


def _csv_slow_frames(
    blocks: Iterator[bytes], plan: _CsvPlan, record0: int
) -> Iterator[pl.DataFrame]:
    """Python csv (non-strict) from a record boundary to the end of the file."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def lines() -> Iterator[str]:
        # Each line with its own end (LF, CRLF or CR), which csv keeps inside quoted cells.
        tail = ""
        for block in blocks:
            parts = _LINE_SPLIT.split(tail + decoder.decode(block))
            tail = parts.pop()
            if not tail and parts and parts[-1].endswith("\r"):
                tail = parts.pop()  # maybe half of a CRLF: wait for the next block
            yield from parts
        tail += decoder.decode(b"", final=True)
        yield from (part for part in _LINE_SPLIT.split(tail) if part)

    reader = csv.reader(lines(), delimiter=plan.delimiter, quotechar='"', strict=False)
    width = plan.width
    columns: list[list[str | None]] = [[] for _ in range(width)]
    counts: list[int] = []
    recs: list[int] = []
    bads: list[str | None] = []
    record = record0
    while True:
        bad: str | None = None
        try:
            row: list[str] | None = next(reader)
        except StopIteration:
            row = None
        except csv.Error as exc:
            # e.g. a field over csv's size limit: report the record, keep going.
            row, bad = [], f"row could not be read ({exc})"
        if row is not None:
            if record > plan.header_record and (
                bad or len(row) > width or any(c.strip() for c in row)
            ):
                for i in range(width):
                    columns[i].append((row[i] or None) if i < len(row) else None)
                counts.append(len(row) if not bad else width)
                recs.append(record)
                if bad is None and any("\x00" in c for c in row):
                    bad = _NUL_ISSUE
                bads.append(bad)
            record += 1
        if counts and (row is None or len(counts) >= _SLOW_BATCH):
            data: dict[str, pl.Series] = {
                f"c{i}": pl.Series(f"c{i}", columns[i], dtype=pl.String) for i in range(width)
            }
            data["__n"] = pl.Series("__n", counts, dtype=pl.Int64)
            data["__rec"] = pl.Series("__rec", recs, dtype=pl.Int64)
            data["__bad"] = pl.Series("__bad", bads, dtype=pl.String)
            yield pl.DataFrame(data)
            columns = [[] for _ in range(width)]
            counts, recs, bads = [], [], []
        if row is None:
            return


def _finish_csv(raw: pl.DataFrame, plan: _CsvPlan) -> pl.DataFrame:
    width = plan.width
    n = pl.col("__n")
    cells = pl.when(n == 1).then(pl.lit("cell")).otherwise(pl.lit("cells"))
    ragged = pl.when(n != width).then(
        pl.format("row has {} {} but the header has {}", n, cells, pl.lit(width))
    )
    issue = pl.concat_str([ragged, pl.col("__bad")], separator="; ", ignore_nulls=True)
    return raw.select(
        *[pl.col(f"c{i}").alias(name) for i, name in zip(plan.keep, plan.columns, strict=True)],
        (pl.col("__rec") + 1).alias(ROW_COLUMN),
        pl.when(issue != "").then(issue).alias(ISSUE_COLUMN),
    )
