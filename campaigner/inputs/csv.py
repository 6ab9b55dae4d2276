"""Opening a CSV file: the encoding check, the delimiter and the header record, then the
plan (``CsvPlan``) its records are read with.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

from campaigner.errors import EmptyInputError
from campaigner.inputs.csv_records import CsvPlan, raw_frames
from campaigner.inputs.csv_text import read_sample, validate_text
from campaigner.inputs.names import header_name, unique_names, unnamed_column
from campaigner.inputs.sniff import MIB, SAMPLE_BYTES, csv_encoding, refuse_non_csv, unreadable
from campaigner.limits import EXCEL_MAX_COLUMNS

__all__ = ("MAX_CSV_COLUMNS", "MAX_CSV_HEADER_BYTES", "open_csv")

# CSV: the header record is read whole up to this size (the sample grows from 64 KiB), and
# may hold as many columns as an Excel sheet.
MAX_CSV_HEADER_BYTES = 8 * MIB

MAX_CSV_COLUMNS = EXCEL_MAX_COLUMNS

_DELIMITERS = (",", ";", "\t", "|")


def open_csv(path: Path, head: bytes, encoding: str | None) -> CsvPlan:
    """Check the whole file and find its dialect and header: the plan its rows are read with."""
    refuse_non_csv(path, head)
    codec, skip = csv_encoding(path, head, encoding)
    validate_text(path, codec, skip)

    size = SAMPLE_BYTES
    while True:
        # The sample grows until it holds the whole header record (a wide header is longer
        # than 64 KiB), within MAX_CSV_HEADER_BYTES.
        sample, truncated = read_sample(path, codec, skip, size)
        if sample.lstrip("\ufeff").lstrip().startswith("<?xml"):
            raise unreadable(path, "is an XML file, not a CSV. Save it from Excel as .xlsx or CSV.")
        delimiter = _sniff_delimiter(sample, truncated, path.suffix.lower())
        header, header_record, later, whole = _find_header(sample, delimiter, truncated)
        if whole:
            break
        if size >= MAX_CSV_HEADER_BYTES:
            limit = f"{MAX_CSV_HEADER_BYTES // MIB} MiB"
            if header is None:
                raise EmptyInputError(f"{path.name} has no header row in its first {limit}.")
            raise unreadable(
                path, f"has a header row longer than {limit}; check that it is a CSV file."
            )
        size = min(size * 8, MAX_CSV_HEADER_BYTES)
    if header is None:
        raise EmptyInputError(f"{path.name} has no header row: it holds only blank lines.")
    if len(header) > MAX_CSV_COLUMNS:
        raise unreadable(
            path,
            f"has {len(header):,} columns in its header row, more than {MAX_CSV_COLUMNS:,} "
            "(Excel's limit). Remove the columns the campaign does not use.",
        )
    if any("\x00" in cell for cell in header):
        raise unreadable(
            path,
            "has NUL bytes in its header row; it is damaged or not a text file. "
            "If it is UTF-16 text without a BOM, set the input encoding (e.g. 'utf-16-le').",
        )
    names = [header_name(cell) for cell in header]
    width = len(names)
    plan = CsvPlan(
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
        for raw in raw_frames(plan):
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
    final = unique_names([names[i] or unnamed_column(i) for i in keep])
    plan = replace(plan, keep=keep, columns=tuple(final))
    return plan


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
