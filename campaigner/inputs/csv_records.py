"""CSV records as frames: chunks cut at record ends and parsed by polars, or by Python's
``csv`` module from the first chunk polars would read its own way.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from campaigner.columns import ISSUE, ROW
from campaigner.inputs.csv_text import text_blocks
from campaigner.inputs.sniff import MIB, is_panic

__all__ = ("MARKER_SEARCH_MAX_WIDTH", "CsvPlan", "raw_frames")

_MAX_RECORD = 64 * MIB

# Control characters used as an end-of-record marker field; one absent from the chunk is chosen.
_SENTINELS = "\x1f\x1e\x1d\x1c\x1b\x1a\x19\x18\x17\x16\x15\x14\x13\x12\x11\x10"

_SLOW_BATCH = 20_000

# Up to this many columns the field count is found as the marker's column; beyond, polars'
# cost per column makes counting delimiters in the text cheaper.
MARKER_SEARCH_MAX_WIDTH = 256

_NUL_ISSUE = "row contains NUL bytes (the file may be damaged)"

_RX_DELIMITER = {",": ",", ";": ";", "\t": r"\t", "|": r"\|"}

_LINE_SPLIT = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


@dataclass(frozen=True, slots=True)
class CsvPlan:
    """How a CSV file is read: its codec, dialect, header record and kept columns."""

    path: Path
    codec: str  # Python codec; "utf-8" means the bytes pass through untouched
    skip: int  # BOM bytes to skip (UTF-16/32 codecs consume their own BOM)
    delimiter: str
    width: int  # fields in the header record, empty ones included
    header_record: int  # 0-based record index of the header (blank lines count)
    keep: tuple[int, ...]  # header field positions that become columns
    columns: tuple[str, ...]

    @property
    def sheet(self) -> None:
        """CSV files have no sheets."""
        return None

    def frames(self) -> Iterator[pl.DataFrame]:
        """The data rows: ``columns``, then ``ROW`` and ``ISSUE``, in input order."""
        return (_finish_csv(raw, self) for raw in raw_frames(self))


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


def raw_frames(plan: CsvPlan) -> Iterator[pl.DataFrame]:
    """Non-blank data records as frames: c0..c{width-1}, __n (field count), __rec, __bad."""
    blocks = text_blocks(plan.path, plan.codec, plan.skip, "replace")
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
    raw: bytes, plan: CsvPlan, record0: int, *, quoted_crs: bool = False
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
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        return None
    records = frame.height
    lines = chunk.count(b"\n")
    if records > lines:
        return None  # more records than lines: parsing went astray
    counts = None
    if width <= MARKER_SEARCH_MAX_WIDTH:
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
    if width <= MARKER_SEARCH_MAX_WIDTH or short or b'""' in chunk:
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
        return None  # not UTF-8: cannot happen for text from csv_text.text_blocks
    # The chunk ends with a line end: the piece after the last one is no record.
    return lines.head(lines.len() - 1).str.count_matches(delimiter, literal=True).cast(pl.Int64) + 1


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


def _keep_data(frame: pl.DataFrame, plan: CsvPlan) -> pl.DataFrame:
    """Drop the header, what precedes it, and blank records."""
    cells = [f"c{i}" for i in range(plan.width)]
    nonblank = (
        pl.concat_str(cells, ignore_nulls=True).str.contains(r"\S")
        | (pl.col("__n") > plan.width)
        | pl.col("__bad").is_not_null()
    )
    return frame.filter((pl.col("__rec") > plan.header_record) & nonblank)


def _csv_slow_frames(
    blocks: Iterator[bytes], plan: CsvPlan, record0: int
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


def _finish_csv(raw: pl.DataFrame, plan: CsvPlan) -> pl.DataFrame:
    width = plan.width
    n = pl.col("__n")
    cells = pl.when(n == 1).then(pl.lit("cell")).otherwise(pl.lit("cells"))
    ragged = pl.when(n != width).then(
        pl.format("row has {} {} but the header has {}", n, cells, pl.lit(width))
    )
    issue = pl.concat_str([ragged, pl.col("__bad")], separator="; ", ignore_nulls=True)
    return raw.select(
        *[pl.col(f"c{i}").alias(name) for i, name in zip(plan.keep, plan.columns, strict=True)],
        (pl.col("__rec") + 1).alias(ROW),
        pl.when(issue != "").then(issue).alias(ISSUE),
    )
