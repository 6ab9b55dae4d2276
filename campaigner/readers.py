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
  whitespace. An empty header cell names its column ``column_<letter>`` (Excel
  letter of its position) unless the whole column is empty, then the column is
  dropped. Duplicates keep the first name and rename later ones ``name_2``,
  ``name_3`` (the reserved ``__row`` / ``__issue`` count as taken).
* Blank rows (every cell empty or whitespace) are not yielded, but they keep
  their number: a blank CSV line counts as a row, as Excel shows it. A quoted
  multi-line CSV record is one row.
* CSV encodings: a BOM (UTF-8, UTF-16, UTF-32) wins; otherwise ``encoding`` if
  given, else UTF-8. Invalid UTF-8 is a file-level error that names the line
  and suggests the ``encoding`` setting; there is no silent cp1252 fallback.
  Line ends are normalised to ``\\n`` (also inside quoted cells).
* CSV parsing: polars, on chunks cut at record ends; a marker field appended
  to each line gives every record's true field count (polars pads short rows
  silently). From the first chunk whose quoting is not RFC 4180 (polars would
  read it its own way) the rest of the file is read with Python's ``csv``
  module (non-strict), the reference for damaged quoting: slower, nothing lost.
* CSV damage: ragged rows keep their first cells and get an issue; NUL bytes
  in a data row are a row issue (in the header, a file error).
* XLSX is read with fastexcel (calamine) with every column as string, after a
  bounded pre-scan of the zip and the sheet XML. The pre-scan refuses hostile
  files and finds the cells whose string form needs fixing: booleans
  (``TRUE``/``FALSE``), error cells and formulas without a cached value (row
  issues), numbers fastexcel would print differently from the rules below.
  Numbers: integers below 1e15 as digits, larger integers in Excel's
  scientific form (``8.61381E+18``), other numbers ``format(v, ".15g")``.
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
import posixpath
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import polars as pl

from campaigner.errors import EmptyInputError, UnreadableInputError

__all__ = ("ISSUE_COLUMN", "ROW_COLUMN", "InputTable", "column_letter", "open_input")

ROW_COLUMN = "__row"
ISSUE_COLUMN = "__issue"

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

_DELIMITERS = (",", ";", "\t", "|")
_BLOCK = 8 * _MiB
_SAMPLE = 64 * 1024
_MAX_RECORD = 64 * _MiB
# Control characters used as an end-of-record marker field; one absent from the chunk is chosen.
_SENTINELS = "\x1f\x1e\x1d\x1c\x1b\x1a\x19\x18\x17\x16\x15\x14\x13\x12\x11\x10"
_MAX_CSV_WIDTH = 1 << 16
_SLOW_BATCH = 20_000

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
    _source: _CsvPlan | _XlsxData = field(repr=False, compare=False)

    def batches(self, batch_rows: int = 50_000) -> Iterator[pl.DataFrame]:
        """Yield frames of at most ``batch_rows`` rows: ``columns`` (all ``pl.String``,
        null = empty cell), then ``ROW_COLUMN`` and ``ISSUE_COLUMN``, in input order."""
        if batch_rows < 1:
            raise ValueError("batch_rows must be at least 1")
        source = self._source
        frames: Iterable[pl.DataFrame]
        if isinstance(source, _XlsxData):
            frames = (source.frame,)
        else:
            frames = (_finish_csv(raw, source) for raw in _csv_raw_frames(source))
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
        return _open_xlsx(path, size, head, sheet)
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

    blocks = _text_blocks(path, codec, skip, "replace", _SAMPLE)
    sample_bytes = b"".join(_take(blocks, _SAMPLE))
    truncated = len(sample_bytes) > _SAMPLE
    sample = sample_bytes[:_SAMPLE].decode("utf-8", errors="replace")
    if truncated:
        sample = sample[: sample.rfind("\n") + 1] or sample
    if sample.lstrip("\ufeff").lstrip().startswith("<?xml"):
        raise _fail(path, "is an XML file, not a CSV. Save it from Excel as .xlsx or CSV.")
    delimiter = _sniff_delimiter(sample, truncated, path.suffix.lower())

    header, header_record, later = _find_header(sample, delimiter, truncated)
    if header is None:
        if truncated:
            raise EmptyInputError(f"{path.name} has no header row in its first 64 KiB.")
        raise EmptyInputError(f"{path.name} has no header row: it holds only blank lines.")
    if any("\x00" in cell for cell in header):
        raise _fail(
            path,
            "has NUL bytes in its header row; it is damaged or not a text file. "
            "If it is UTF-16 text without a BOM, set the input encoding (e.g. 'utf-16-le').",
        )
    names = [cell.strip() for cell in header]
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
    plan = _CsvPlan(
        path=path,
        codec=codec,
        skip=skip,
        delimiter=delimiter,
        width=width,
        header_record=header_record,
        keep=keep,
        columns=tuple(final),
    )
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
    """The file as UTF-8 bytes with ``\\n`` line ends, in blocks of about ``_BLOCK`` bytes."""
    decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)(errors)
    pending_cr = False
    with path.open("rb") as fh:
        fh.seek(skip)
        while True:
            raw = fh.read(block_size)
            final = not raw
            data = raw if decoder is None else decoder.decode(raw, final=final).encode("utf-8")
            if pending_cr:
                data = b"\r" + data
                pending_cr = False
            if b"\r" in data:
                if data.endswith(b"\r") and not final:
                    # A CRLF may straddle two blocks: decide with the next one.
                    data = data[:-1]
                    pending_cr = True
                data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if data:
                yield data
            if final:
                return


def _sample_records(sample: str, delimiter: str, truncated: bool, limit: int) -> list[list[str]]:
    reader = csv.reader(io.StringIO(sample), delimiter=delimiter, quotechar='"', strict=False)
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
) -> tuple[list[str] | None, int, bool]:
    """First non-blank record of the sample, its record index, and whether data follows."""
    records = _sample_records(sample, delimiter, truncated, 1_000_000)
    for index, record in enumerate(records):
        if any(cell.strip() for cell in record):
            later = any(any(c.strip() for c in r) for r in records[index + 1 :])
            return record, index, later
    return None, 0, False


def _record_cut(buf: bytes) -> int:
    """Offset just after the last newline that ends a record (even number of quotes before)."""
    cut = buf.rfind(b"\n") + 1
    if cut == 0:
        return 0
    quotes = buf.count(b'"', 0, cut)
    while quotes % 2:
        prev = buf.rfind(b"\n", 0, cut - 1) + 1
        if prev == 0:
            return 0
        quotes -= buf.count(b'"', prev, cut)
        cut = prev
    return cut


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
            added = not pending.endswith(b"\n")
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


def _parse_chunk(chunk: bytes, plan: _CsvPlan, record0: int) -> tuple[pl.DataFrame, int] | None:
    """Parse whole records with polars; None when polars rejects the chunk.

    Polars pads short rows silently, so a marker field is appended to every
    line: its position is the record's field count.
    """
    sentinel = next((s for s in _SENTINELS if s.encode() not in chunk), None)
    if sentinel is None:
        return None
    d = plan.delimiter
    quoted = b'"' in chunk
    if quoted and not _well_quoted(chunk, d):
        return None  # polars reads bad quoting its own way; csv's reading is the reference
    marker = d + sentinel + "\n"
    data = chunk.replace(b"\n", marker.encode())
    width = plan.width + 2
    while True:
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
        count = frame.select(
            pl.coalesce(
                [pl.when(pl.col(f"c{i}") == sentinel).then(pl.lit(i)) for i in range(width)]
            )
        ).to_series()
        if not count.null_count() or width >= _MAX_CSV_WIDTH:
            break
        width = min(width * 4, _MAX_CSV_WIDTH)
    records = frame.height
    lines = chunk.count(b"\n")
    if records > lines:
        return None  # more records than lines: parsing went astray
    cells = [f"c{i}" for i in range(plan.width)]
    exprs = [pl.col(c) for c in cells]
    if quoted and records < lines:
        # Multi-line cells got the marker inside them: take it out again.
        exprs = [
            pl.when(e.str.contains(sentinel, literal=True))
            .then(e.str.replace_all(marker, "\n", literal=True))
            .otherwise(e)
            for e in exprs
        ]
    # The marker itself fills the first missing cell of a short row: it is no value.
    exprs = [
        pl.when((e != "") & (e != sentinel)).then(e).alias(c)
        for e, c in zip(exprs, cells, strict=True)
    ]
    frame = frame.select(
        *exprs,
        count.fill_null(-1).cast(pl.Int64).alias("__n"),
        pl.int_range(record0, record0 + records, dtype=pl.Int64).alias("__rec"),
    )
    if b"\x00" in chunk:
        nul = pl.any_horizontal([pl.col(c).str.contains("\x00", literal=True) for c in cells])
        bad: pl.Expr = pl.when(nul).then(pl.lit(_NUL_ISSUE))
    else:
        bad = pl.lit(None, dtype=pl.String)
    return _keep_data(frame.with_columns(bad.alias("__bad")), plan), records


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


def _csv_slow_frames(
    blocks: Iterator[bytes], plan: _CsvPlan, record0: int
) -> Iterator[pl.DataFrame]:
    """Python csv (non-strict) from a record boundary to the end of the file."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def lines() -> Iterator[str]:
        tail = ""
        for block in blocks:
            parts = (tail + decoder.decode(block)).split("\n")
            tail = parts.pop()
            for part in parts:
                yield part + "\n"
        tail += decoder.decode(b"", final=True)
        if tail:
            yield tail

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
    ragged = (
        pl.when(n < 0)
        .then(pl.lit(f"row has more than {_MAX_CSV_WIDTH} cells but the header has {width}"))
        .when(n != width)
        .then(pl.format("row has {} {} but the header has {}", n, cells, pl.lit(width)))
    )
    issue = pl.concat_str([ragged, pl.col("__bad")], separator="; ", ignore_nulls=True)
    return raw.select(
        *[pl.col(f"c{i}").alias(name) for i, name in zip(plan.keep, plan.columns, strict=True)],
        (pl.col("__rec") + 1).alias(ROW_COLUMN),
        pl.when(issue != "").then(issue).alias(ISSUE_COLUMN),
    )


# --------------------------------------------------------------------------- XLSX


@dataclass(frozen=True, slots=True)
class _XlsxData:
    frame: pl.DataFrame


@dataclass(frozen=True, slots=True)
class _SheetEntry:
    name: str
    part: str | None
    kind: str  # relationship type: "worksheet", "chartsheet", ... or "?"
    visible: bool


# Cells whose fastexcel text must be replaced, one frame per scanned part:
# row and col (1-based), ref ("C7"), kind ("e" error, "b" boolean, "f" formula
# without a cached value, "n" number to render ourselves) and raw <v> text.
_SPECIAL_SCHEMA = {
    "row": pl.Int64,
    "col": pl.Int64,
    "ref": pl.String,
    "kind": pl.String,
    "raw": pl.String,
}


@dataclass(slots=True)
class _ScanState:
    pattern: str = ""
    prefix: str = ""
    max_col: int = 26  # exact once a reference beyond column Z is seen
    max_row: int = 99_999  # exact once a reference beyond row 99,999 is seen
    irregular: bool = False  # some cells lack r="..."; bounds come from counting
    row_cursor: int = 0  # last row seen while counting (carries across parts)
    specials: list[pl.DataFrame] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _LoadedSheet:
    frame: pl.DataFrame  # fastexcel output; row i is sheet row i + 1
    columns: tuple[int, ...]  # 1-based sheet column of each frame column
    specials: pl.DataFrame  # _SPECIAL_SCHEMA


class _HostileError(Exception):
    """The workbook is refused; str() is the reason."""


_DTD_MARKERS = (
    b"<!DOCTYPE",
    b"<!ENTITY",
    "<!DOCTYPE".encode("utf-16-le"),
    "<!DOCTYPE".encode("utf-16-be"),
    "<!ENTITY".encode("utf-16-le"),
    "<!ENTITY".encode("utf-16-be"),
)
_ATTR = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REF = re.compile(r"^([A-Z]{1,12})([0-9]{1,12})$")
_DATE_LIKE = r"^(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})"
_DATE_ONLY = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"
_DATE_TIME = r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$"
_TIME_ONLY = r"^1899-12-3[01] (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$"
_FASTEXCEL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
_FAR_DATE = r"^[+-]\d{5,}-\d{2}-\d{2}"
_DAYS_1900_TO_1904 = 1462
_MAIN_NAMESPACES = (
    "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}",
    "{http://purl.oclc.org/ooxml/spreadsheetml/main}",
)
# A numeric <v> whose fastexcel text differs from our rendering: 16+ digits, 10+
# decimals, 16+ significant digits, an exponent, a tiny value, negative zero.
_NUMBER_CANDIDATE = (
    r"-?\d{16,}(?:\.\d*)?(?:[eE][-+]?\d+)?|-?\d*\.\d{10,}(?:[eE][-+]?\d+)?|-?\d{7,}\.\d+"
    r"|-?[\d.]+[eE][-+]?\d+|-?0\.0000\d*|-0(?:\.0*)?"
)


def _sheet_pattern(prefix: str) -> str:
    """One Rust regex pass finds everything the pre-scan needs in a block of sheet XML."""
    p = re.escape(prefix)
    formula = rf"<{p}f[^>]*(?:/>|>[^<]*</{p}f>)"
    return "|".join(
        (
            r"<!(?:DOCTYPE|ENTITY)",
            # booleans and error cells
            rf"<{p}c\s[^>]*\bt\s*=\s*[\"'][eb][\"'][^>]*(?:/>|>(?s:.*?)</{p}c>)",
            # formulas without a cached value
            rf"<{p}c\s[^>]*>\s*{formula}\s*(?:<{p}v\s*/>|<{p}v>\s*</{p}v>)?\s*</{p}c>",
            # numbers that need our own rendering
            rf"<{p}c\s[^>]*>\s*(?:{formula}\s*)?<{p}v>\s*(?:{_NUMBER_CANDIDATE})\s*</{p}v>",
            # cells without r="..." (calamine then counts positions)
            rf"<{p}c(?:\s+(?:[^\sr=>/][^\s=>]*|r[^\s=>]+)\s*=\s*(?:\"[^\"]*\"|'[^']*'))*\s*/?>",
            # references beyond column Z or row 99,999
            r"\sr\s*=\s*[\"'](?:[A-Z]{2,}\d+|[A-Z]\d{6,})[\"'][^>]*>",
        )
    )


def _open_xlsx(path: Path, size: int, head: bytes, sheet: str | int | None) -> InputTable:
    if head.startswith(_OLE_MAGIC):
        raise _fail(path, _ole_problem(path))
    if not head.startswith(_ZIP_MAGICS):
        if _looks_like_html(head):
            raise _fail(path, "is an HTML page saved with an Excel name, not an XLSX workbook.")
        if head.startswith(b"%PDF"):
            raise _fail(path, "is a PDF document, not an XLSX workbook.")
        if head.lstrip().startswith(b"<?xml"):
            raise _fail(path, "is an XML file, not an XLSX workbook. Save it as .xlsx in Excel.")
        raise _fail(
            path,
            "is not an XLSX workbook (it is not a zip archive). If it is CSV text, "
            "rename it to .csv; otherwise save it from Excel as .xlsx.",
        )
    if size > MAX_XLSX_FILE_BYTES:
        raise _fail(
            path,
            f"is too large ({size // _MiB} MiB; the limit for XLSX is "
            f"{MAX_XLSX_FILE_BYTES // _MiB} MiB). Save it as CSV instead.",
        )
    try:
        entry, loaded = _read_xlsx(path, sheet)
    except _HostileError as exc:
        raise _fail(path, f"was refused: {exc}.") from None
    except NotImplementedError as exc:
        raise _fail(path, f"uses a zip feature that is not supported ({_short(exc)}).") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or _short(exc)}).") from None
    except Exception as exc:  # zipfile/zlib/XML damage surfaces as many types (KeyError, ...)
        raise _fail(path, f"is a damaged XLSX workbook ({_short(exc)}).") from None
    if loaded is None:
        raise EmptyInputError(f"Sheet {entry.name!r} of {path.name} is empty.")
    return _finish_xlsx(path, entry, loaded)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:200]


def _read_xlsx(path: Path, sheet: str | int | None) -> tuple[_SheetEntry, _LoadedSheet | None]:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        _check_zip_entries(infos)
        # Some writers store Windows separators; calamine accepts them, so do we.
        names = {info.filename.replace("\\", "/"): info for info in infos}
        if not names:
            raise _HostileError("it is an empty zip archive, not a workbook")
        if "xl/workbook.bin" in names:
            raise _HostileError(
                "it is an Excel binary workbook (XLSB) with an .xlsx name; "
                "open it in Excel and save as .xlsx"
            )
        if "mimetype" in names:
            mimetype = _read_small(zf, names["mimetype"], 512)
            if b"opendocument" in mimetype:
                raise _HostileError(
                    "it is an OpenDocument spreadsheet (ODS) with an .xlsx name; save it as .xlsx"
                )
        workbook_part = _workbook_part(zf, names)
        if workbook_part is None:
            raise _HostileError("it is a zip archive but not an Excel workbook")
        sheets, date_shift = _sheet_list(zf, names, workbook_part)
        entry = _choose_sheet(path, sheets, sheet)
        if entry.kind != "worksheet" or entry.part is None or entry.part not in names:
            what = "a chart sheet" if entry.kind == "chartsheet" else "not a table of cells"
            raise _HostileError(
                f"sheet {entry.name!r} is {what}; choose a worksheet ({_sheet_names_text(sheets)})"
            )
        for name, info in names.items():
            lower = name.lower()
            if name == entry.part or not lower.endswith((".xml", ".rels", ".vml")):
                continue
            if "worksheets/" in lower or "chartsheets/" in lower:
                continue  # calamine only opens the chosen sheet
            _check_xml_part(zf, info)
        scan = _scan_sheet(zf, names[entry.part])
    return entry, _load_sheet(path, entry, scan, date_shift)


def _check_zip_entries(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ZIP_ENTRIES:
        raise _HostileError(f"the zip has {len(infos)} entries (limit {MAX_ZIP_ENTRIES})")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _HostileError("its zip entries are encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _HostileError("it uses an unsupported zip compression method")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise _HostileError(
                f"{info.filename} expands {ratio:.0f}:1 to {info.file_size // _MiB} MiB "
                "(a decompression bomb)"
            )
    if total > MAX_UNCOMPRESSED_BYTES:
        raise _HostileError(
            f"it expands to {total // _MiB} MiB (limit {MAX_UNCOMPRESSED_BYTES // _MiB} MiB)"
        )


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    # ZipExtFile never returns more than the declared size and checks the CRC at the end,
    # so a size that lies in the header ends in BadZipFile, not in a bomb.
    return zf.open(info)


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise _HostileError(f"{info.filename} is unexpectedly large ({info.file_size} bytes)")
    with _open_member(zf, info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise _HostileError(f"{info.filename} is unexpectedly large")
    if any(marker in data for marker in _DTD_MARKERS):
        raise _HostileError(f"{info.filename} declares a DTD or XML entities")
    return data


def _check_xml_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read the part to the end (CRC check) and refuse any DTD/entity declaration."""
    tail = b""
    with _open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * _MiB)
            if not block:
                return
            data = tail + block
            if any(marker in data for marker in _DTD_MARKERS):
                raise _HostileError(f"{info.filename} declares a DTD or XML entities")
            tail = data[-32:]


def _parse_xml(data: bytes, name: str) -> Any:
    from defusedxml import ElementTree as SafeET  # no DTDs, no entity expansion

    try:
        return SafeET.fromstring(data)
    except Exception as exc:  # ParseError and defusedxml's own refusals
        raise _HostileError(f"{name} is not valid XML ({_short(exc)})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _relationships(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], part: str
) -> dict[str, tuple[str, str | None]]:
    """Relationship id -> (type suffix, target part) for ``part`` ('' = the package)."""
    if part:
        folder, base = posixpath.split(part)
        rels_name = posixpath.join(folder, "_rels", base + ".rels")
    else:
        rels_name = "_rels/.rels"
    info = names.get(rels_name)
    if info is None:
        return {}
    root = _parse_xml(_read_small(zf, info, 16 * _MiB), rels_name)
    base_dir = posixpath.dirname(part)
    out: dict[str, tuple[str, str | None]] = {}
    for element in root.iter():
        if _local(element.tag) != "Relationship":
            continue
        target = element.get("Target", "").replace("\\", "/")
        if element.get("TargetMode") == "External" or not target:
            continue
        if target.startswith("/"):
            resolved = target.lstrip("/")
        else:
            resolved = posixpath.normpath(posixpath.join(base_dir, target))
        kind = element.get("Type", "").rsplit("/", 1)[-1]
        out[element.get("Id", "")] = (kind, resolved)
    return out


def _workbook_part(zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo]) -> str | None:
    for kind, target in _relationships(zf, names, "").values():
        if kind == "officeDocument" and target is not None and target in names:
            return target
    return "xl/workbook.xml" if "xl/workbook.xml" in names else None


def _sheet_list(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], workbook_part: str
) -> tuple[list[_SheetEntry], int]:
    """The workbook's sheets, and the days to add to calamine's dates (see below)."""
    root = _parse_xml(_read_small(zf, names[workbook_part], 64 * _MiB), workbook_part)
    rels = _relationships(zf, names, workbook_part)
    sheets: list[_SheetEntry] = []
    truth: bool | None = None
    calamine = False
    for element in root.iter():
        if _local(element.tag) == "workbookPr":
            flag = element.get("date1904", "").strip().lower() in ("1", "true")
            # calamine takes the last workbookPr of any namespace, so Excel's
            # <x14:workbookPr> in extLst switches a 1904 workbook back to 1900.
            calamine = flag
            if truth is None and element.tag.startswith(_MAIN_NAMESPACES):
                truth = flag
            continue
        if _local(element.tag) != "sheet":
            continue
        rid = next((v for k, v in element.attrib.items() if _local(k) == "id"), "")
        kind, part = rels.get(rid, ("?", None))
        if part is None:
            # Fall back to the usual location when the relationship is missing.
            guess = f"xl/worksheets/sheet{element.get('sheetId', '')}.xml"
            if guess in names:
                kind, part = "worksheet", guess
        visible = element.get("state", "visible") == "visible"
        sheets.append(_SheetEntry(element.get("name", ""), part, kind, visible))
    if not sheets:
        raise _HostileError("the workbook lists no sheets")
    shift = (int(bool(truth)) - int(calamine)) * _DAYS_1900_TO_1904
    return sheets, shift


def _sheet_names_text(sheets: list[_SheetEntry]) -> str:
    return "sheets: " + ", ".join(repr(s.name) for s in sheets)


def _choose_sheet(path: Path, sheets: list[_SheetEntry], sheet: str | int | None) -> _SheetEntry:
    if sheet is None:
        # The first visible worksheet: what Excel shows on opening, never a chart.
        worksheets = [s for s in sheets if s.kind == "worksheet"]
        visible = [s for s in worksheets if s.visible]
        return (visible or worksheets or sheets)[0]
    if isinstance(sheet, int):
        if 0 <= sheet < len(sheets):
            return sheets[sheet]
        raise _fail(
            path,
            f"has no sheet number {sheet} (numbers start at 0; it has {len(sheets)} "
            f"{_sheet_names_text(sheets)}).",
        )
    for candidate in sheets:
        if candidate.name == sheet:
            return candidate
    folded = [s for s in sheets if s.name.strip().casefold() == sheet.strip().casefold()]
    if len(folded) == 1:
        return folded[0]
    raise _fail(path, f"has no sheet named {sheet!r} ({_sheet_names_text(sheets)}).")


def _scan_sheet(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _ScanState:
    """Stream the sheet XML once: bound the cell grid, find the cells that need care."""
    state = _ScanState()
    carry = b""
    first = True
    end_tag = b"</row>"
    with _open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * _MiB)
            buf = carry + block
            if first:
                first = False
                head = buf[:65536]
                if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:256]:
                    raise _HostileError("the sheet XML is not UTF-8")
                found = re.search(rb"<(?:([A-Za-z_][\w.-]*):)?worksheet[\s>]", head)
                if found and found.group(1):
                    state.prefix = found.group(1).decode("ascii") + ":"
                    end_tag = b"</" + found.group(1) + b":row>"
                state.pattern = _sheet_pattern(state.prefix)
                _check_dimension(head, state.prefix.encode("ascii"))
            if block:
                cut = buf.rfind(end_tag)
                if cut < 0:
                    if len(buf) > _MAX_ROW_XML:
                        raise _HostileError("a single sheet row is larger than 64 MiB")
                    carry = buf
                    continue
                cut += len(end_tag)
                part, carry = buf[:cut], buf[cut:]
            else:
                part, carry = buf, b""
            _scan_part(part, state)
            if not block:
                break
    if state.max_col > MAX_SHEET_COLUMNS:
        raise _HostileError(
            f"the sheet uses {state.max_col} columns (Excel's limit is {MAX_SHEET_COLUMNS})"
        )
    if state.max_row > MAX_SHEET_ROWS:
        raise _HostileError(f"the sheet claims {state.max_row} rows (Excel's limit is 1,048,576)")
    if state.max_row * state.max_col > MAX_SHEET_CELLS and not state.irregular:
        # max_row may still be the 99,999 default: count before refusing a wide sheet.
        state.max_row = _exact_max_row(zf, info, state.prefix.encode("ascii"))
    if state.max_row * state.max_col > MAX_SHEET_CELLS:
        raise _HostileError(
            f"the sheet spans {state.max_row:,} rows x {state.max_col:,} columns, more than "
            f"{MAX_SHEET_CELLS:,} cells; save it as CSV instead"
        )
    return state


def _exact_max_row(zf: zipfile.ZipFile, info: zipfile.ZipInfo, prefix: bytes) -> int:
    """Largest row of any cell that holds a value (styled empty cells do not count)."""
    pattern = re.compile(
        b"<" + re.escape(prefix) + rb'c\s[^>]*?\br\s*=\s*["\'][A-Z]{1,3}([0-9]+)["\'][^>]*?(/?)>'
    )
    best = 0
    tail = b""
    with _open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * _MiB)
            buf = tail + block
            cut = buf.rfind(b">") + 1 if block else len(buf)
            for digits, slash in pattern.findall(buf, 0, cut):
                if not slash:
                    best = max(best, int(digits))
            tail = buf[cut:]
            if not block:
                return best


def _check_dimension(head: bytes, prefix: bytes) -> None:
    found = re.search(b"<" + re.escape(prefix) + rb'dimension\s+ref="([A-Za-z0-9:$]*)"', head)
    if not found:
        return
    for ref in found.group(1).replace(b"$", b"").split(b":"):
        match = re.match(rb"^([A-Za-z]{1,3})?([0-9]+)?$", ref)
        if not match:
            raise _HostileError("the sheet has an invalid <dimension>")
        if match.group(1) and _column_number(match.group(1).upper()) > MAX_SHEET_COLUMNS:
            raise _HostileError("the sheet's <dimension> goes beyond column XFD")
        if match.group(2) and int(match.group(2)) > MAX_SHEET_ROWS:
            raise _HostileError("the sheet's <dimension> goes beyond row 1,048,576")


def _scan_part(part: bytes, state: _ScanState) -> None:
    text = part.decode("utf-8", errors="replace")
    found = pl.Series("m", [text]).str.extract_all(state.pattern).explode().drop_nulls()
    if found.len() == 0:
        return
    if found.str.starts_with("<!").any():
        raise _HostileError("the sheet declares a DTD or XML entities")
    p = re.escape(state.prefix)
    cell = found.str.starts_with(f"<{state.prefix}c")
    quoted = r"""\s*=\s*["']"""
    tags = pl.when(cell).then(found.str.extract(rf"^<{p}c([^>]*)>")).otherwise(found)
    parts = pl.DataFrame({"m": found, "cell": cell}).with_columns(
        tag=tags,
        letters=tags.str.extract(rf"\br{quoted}([A-Za-z]+)"),
        digits=tags.str.extract(rf"\br{quoted}[A-Za-z]+([0-9]+)"),
        t=tags.str.extract(rf"""\bt{quoted}([^"']*)""").fill_null("n"),
        value=pl.col("m").str.extract(rf"<{p}v(?:\s[^>]*)?>([^<]*)</{p}v>"),
        formula=pl.col("m").str.contains(f"<{p}f"),
    )
    if parts.filter(pl.col("cell") & pl.col("digits").is_null()).height:
        state.irregular = True  # a cell without r="...": count positions exactly
    parts = parts.filter(pl.col("digits").is_not_null())
    letters = parts["letters"].str.to_uppercase()
    numbers = {x: _column_number(x.encode("ascii")) for x in letters.unique().to_list()}
    parts = parts.with_columns(
        row=pl.col("digits").cast(pl.Int64, strict=False).fill_null(1 << 40),
        col=letters.replace_strict(numbers, return_dtype=pl.Int64),
        ref=letters + pl.col("digits"),
        filled=~pl.col("tag").str.ends_with("/"),
    )
    # Styled empty cells do not enlarge calamine's grid; cells with content do.
    used = parts.filter(pl.col("filled"))
    if used.height:
        top_row, top_col = used.select(pl.col("row").max(), pl.col("col").max()).row(0)
        state.max_row = max(state.max_row, int(top_row))
        state.max_col = max(state.max_col, int(top_col))
    t, value = pl.col("t"), pl.col("value")
    kind = (
        pl.when(~pl.col("cell"))
        .then(None)
        .when(t.is_in(["e", "b"]) & value.is_not_null())
        .then(t)
        .when((t == "e") & pl.col("filled"))
        .then(pl.lit("e"))
        .when(t.is_in(["e", "b"]))
        .then(None)
        .when(pl.col("formula") & ((value.is_null()) | ((value == "") & (t != "str"))))
        .then(pl.lit("f"))
        .when((t == "n") & value.is_not_null() & (value != ""))
        .then(pl.lit("n"))
    )
    specials = parts.select(
        "row", "col", "ref", kind.alias("kind"), value.str.strip_chars().fill_null("").alias("raw")
    ).filter(pl.col("kind").is_not_null())
    if specials.height:
        state.specials.append(specials)
    if state.irregular:
        _scan_structure(part, state)


def _scan_structure(part: bytes, state: _ScanState) -> None:
    """Exact positions when some cells lack r="...": calamine counts them on."""
    p = re.escape(state.prefix.encode("ascii"))
    tag = re.compile(b"<" + p + rb"(row|c)(?=[\s>/])([^>]*)>")
    row = state.row_cursor
    col = 0
    for match in tag.finditer(part):
        attrs = _attrs(match.group(2).decode("utf-8", "replace"))
        ref = attrs.get("r", "")
        if match.group(1) == b"row":
            row = int(ref) if ref.isdigit() else row + 1
            col = 0
        else:
            where = _parse_ref(ref)
            if where is not None:
                row, col = where[0], where[1]
            else:
                col += 1
            state.max_row = max(state.max_row, row)
            state.max_col = max(state.max_col, col)
        if state.max_col > MAX_SHEET_COLUMNS or state.max_row > MAX_SHEET_ROWS:
            break  # refused by the caller
    state.row_cursor = row


def _attrs(tag: str) -> dict[str, str]:
    return {name.rsplit(":", 1)[-1]: dq or sq for name, dq, sq in _ATTR.findall(tag)}


def _parse_ref(ref: str) -> tuple[int, int] | None:
    """'C7' -> (row 7, column 3); None for anything else."""
    match = _REF.match(ref.strip().upper())
    if not match:
        return None
    return int(match.group(2)), _column_number(match.group(1).encode("ascii"))


def _load_sheet(
    path: Path, entry: _SheetEntry, scan: _ScanState, date_shift: int
) -> _LoadedSheet | None:
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        sheet = reader.load_sheet(entry.name, header_row=None, skip_rows=0, dtypes="string")
        columns = tuple(info.absolute_index + 1 for info in sheet.available_columns())
        frame = sheet.to_polars()
    except BaseException as exc:
        if not isinstance(exc, Exception) and not _is_panic(exc):
            raise
        message = _short(exc).removeprefix("calamine error: ")
        if "password" in message.lower():
            raise _HostileError("it is encrypted with a password") from None
        raise _HostileError(f"the workbook is damaged ({message})") from None
    if frame.width == 0 or frame.height == 0:
        return None
    if date_shift:
        frame = frame.with_columns(_shift_dates(name, date_shift) for name in frame.columns)
    specials = pl.concat(scan.specials) if scan.specials else pl.DataFrame(schema=_SPECIAL_SCHEMA)
    return _LoadedSheet(frame, columns, specials)


def _shift_dates(name: str, days: int) -> pl.Expr:
    """Move fastexcel's date texts by whole days (keeps its 'YYYY-MM-DD HH:MM:SS' form)."""
    column = pl.col(name)
    moved = (
        column.str.strptime(pl.Datetime("ms"), "%Y-%m-%d %H:%M:%S%.f", strict=False)
        + pl.duration(days=days)
    ).dt.strftime("%Y-%m-%d %H:%M:%S")
    return pl.when(column.str.contains(_DATE_LIKE)).then(moved).otherwise(column).alias(name)


def _render_number(raw: str) -> str | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if value.is_integer():
        if abs(value) < 1e15:
            return str(int(value))
        # Excel's General format: 6 significant digits, e.g. 8.61381E+18.
        mantissa, exponent = f"{value:.5E}".split("E")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}E{exponent}"
    return format(value, ".15g")


def _or_value(column: str) -> pl.Expr:
    return pl.when(pl.col(column) != "").then(pl.col(column)).otherwise(pl.lit("#VALUE!"))


def _special_values(group: pl.DataFrame, before: pl.Series) -> pl.Series:
    """New text for one column's special cells (null: empty cell or keep fastexcel's)."""
    kind, raw = group["kind"], group["raw"]
    number = raw.cast(pl.Float64, strict=False)
    whole = number.is_finite() & (number == number.floor())
    plain = (whole & (number.abs() < 1e15)).fill_null(False)
    rendered = pl.select(
        pl.when(plain).then(number.cast(pl.Int64, strict=False).cast(pl.String))
    ).to_series()
    # Dates are numbers too: fastexcel already rendered those, keep them.
    is_date = before.str.contains(_FASTEXCEL_DATE.pattern).fill_null(False)
    rest = ((kind == "n") & ~plain & ~is_date & number.is_not_null()).arg_true()
    if rest.len():
        texts = [_render_number(x) for x in raw.gather(rest).to_list()]
        rendered.scatter(rest, pl.Series(texts, dtype=pl.String))
    boolean = pl.when(raw.str.to_lowercase().is_in(["1", "true"])).then(pl.lit("TRUE"))
    return pl.select(
        pl.when(kind == "n")
        .then(pl.when(is_date).then(None).otherwise(rendered))
        .when(kind == "b")
        .then(boolean.otherwise(pl.lit("FALSE")))
        .otherwise(None)
    ).to_series()


def _finish_xlsx(path: Path, entry: _SheetEntry, loaded: _LoadedSheet) -> InputTable:
    frame = loaded.frame
    names = frame.columns
    position = {col: i for i, col in enumerate(loaded.columns)}
    height = frame.height

    dated = frame.select(pl.col(n).str.contains(_DATE_LIKE).any() for n in names).row(0)
    frame = frame.with_columns(
        pl.col(name)
        .str.replace(_TIME_ONLY, "$1")
        .str.replace(_DATE_ONLY, "$1")
        .str.replace(_DATE_TIME, "${1}T${2}")
        for name, has_dates in zip(names, dated, strict=True)
        if has_dates
    )

    specials = loaded.specials.with_columns(
        index=pl.col("row") - 1,
        pos=pl.col("col").replace_strict(position, default=None, return_dtype=pl.Int64),
    ).filter(pl.col("pos").is_not_null() & (pl.col("index") < height))
    replaced = []
    for (pos,), group in specials.group_by("pos"):
        assert isinstance(pos, int)
        rows = group["index"]
        before = loaded.frame.to_series(pos).gather(rows)
        values = _special_values(group, before)
        keep = values.is_not_null() | (group["kind"] != "n")
        series = frame.to_series(pos).clone()
        series.scatter(rows.filter(keep), values.filter(keep))
        replaced.append(series)
    if replaced:
        frame = frame.with_columns(replaced)
    messages = specials.filter(pl.col("kind").is_in(["e", "f"])).select(
        "index",
        "col",
        pl.when(pl.col("kind") == "e")
        .then(pl.format("cell {} is an Excel error ({})", "ref", _or_value("raw")))
        .otherwise(
            pl.format(
                "cell {} has a formula without a saved value (open and save it in Excel)", "ref"
            )
        )
        .alias("message"),
    )
    # fastexcel prints date serials past year 9999 as "+10099-01-01 ..."; Excel shows ####.
    far = frame.select(pl.col(n).str.contains(_FAR_DATE).any() for n in names).row(0)
    for pos, (name, has_far) in enumerate(zip(names, far, strict=True)):
        if not has_far:
            continue
        rows = frame.get_column(name).str.contains(_FAR_DATE).fill_null(False).arg_true()
        column = loaded.columns[pos]
        letter = column_letter(column - 1)
        found = pl.DataFrame(
            {
                "index": rows.cast(pl.Int64),
                "col": pl.Series([column] * rows.len(), dtype=pl.Int64),
                "message": pl.Series(
                    [f"cell {letter}{i + 1} holds a date Excel cannot show" for i in rows],
                    dtype=pl.String,
                ),
            }
        )
        messages = pl.concat([messages, found])
        frame = frame.with_columns(
            pl.when(pl.col(name).str.contains(_FAR_DATE))
            .then(None)
            .otherwise(pl.col(name))
            .alias(name)
        )
    issues: dict[int, str] = dict(
        messages.sort("index", "col")
        .group_by("index", maintain_order=True)
        .agg(pl.col("message").str.join("; "))
        .iter_rows()
    )

    frame = frame.with_columns(pl.when(pl.col(n) != "").then(pl.col(n)).alias(n) for n in names)
    blank = frame.select(_nonblank(n).alias(n) for n in names)
    row_used = blank.select(pl.any_horizontal(names)).to_series()
    first = row_used.arg_true()
    if first.len() == 0:
        if issues:
            raise EmptyInputError(
                f"Sheet {entry.name!r} of {path.name} holds only error cells or formulas "
                "without saved values; open it in Excel, fix them and save it again."
            )
        raise EmptyInputError(f"Sheet {entry.name!r} of {path.name} is empty.")
    header_index = int(first[0])
    header = frame.row(header_index)
    data = frame.slice(header_index + 1)
    data_used = row_used.slice(header_index + 1)
    column_used = blank.slice(header_index + 1).select(pl.col(n).any() for n in names).row(0)
    issue_rows = sorted(index for index in issues if index > header_index)
    if not data_used.any() and not issue_rows:
        raise EmptyInputError(
            f"Sheet {entry.name!r} of {path.name} has a header row but no data rows."
        )

    kept: list[tuple[str, str]] = []  # (frame column, header text)
    for i, name in enumerate(names):
        text = (header[i] or "").strip()
        if not text:
            if not column_used[i]:
                continue  # no header and no data: not a column
            text = f"column_{column_letter(loaded.columns[i] - 1)}"
        kept.append((name, text))
    if not kept:
        raise EmptyInputError(f"Sheet {entry.name!r} of {path.name} has no named columns.")
    final = _unique_names([text for _, text in kept])

    issue = pl.Series(ISSUE_COLUMN, [None] * data.height, dtype=pl.String)
    if issue_rows:
        issue.scatter(
            [index - header_index - 1 for index in issue_rows],
            pl.Series([issues[index] for index in issue_rows], dtype=pl.String),
        )
    first_row = header_index + 2
    result = data.with_columns(
        pl.int_range(first_row, first_row + data.height, dtype=pl.Int64).alias(ROW_COLUMN),
        issue,
    )
    result = result.filter(data_used | issue.is_not_null()).select(
        *[pl.col(n).alias(t) for (n, _), t in zip(kept, final, strict=True)],
        ROW_COLUMN,
        ISSUE_COLUMN,
    )
    return InputTable(
        path=path,
        kind="xlsx",
        columns=tuple(final),
        sheet=entry.name,
        _source=_XlsxData(result),
    )
