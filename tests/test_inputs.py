"""Tests for campaigner.inputs: CSV dialects and damage, XLSX rendering, hostile files."""

from __future__ import annotations

import csv
import datetime as dt
import io
import struct
import time
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigner.columns import ISSUE, ROW
from campaigner.errors import EmptyInputError, InputError, UnreadableInputError
from campaigner.inputs import InputTable, csv_records, open_input, xlsx_package
from campaigner.inputs import csv as inputs_csv
from campaigner.inputs import csv_text as inputs_text

# --------------------------------------------------------------------------- helpers


def read_all(table: InputTable, batch_rows: int = 50_000) -> pl.DataFrame:
    frames = list(table.batches(batch_rows))
    for frame in frames:
        assert frame.columns == [*table.columns, ROW, ISSUE]
        schema = frame.schema  # built anew on each access: once for wide tables
        assert schema[ROW] == pl.Int64
        assert all(schema[c] == pl.String for c in (*table.columns, ISSUE))
        assert frame.height <= batch_rows
    if not frames:
        schema = dict.fromkeys(table.columns, pl.String)
        return pl.DataFrame(schema={**schema, ROW: pl.Int64, ISSUE: pl.String})
    return pl.concat(frames)


def rows(table: InputTable) -> list[tuple[object, ...]]:
    return read_all(table).rows()


def write(tmp_path: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


def open_text(tmp_path: Path, text: str, name: str = "in.csv", **kw: object) -> InputTable:
    return open_input(write(tmp_path, name, text), **kw)  # type: ignore[arg-type]


def refused(path: Path, cls: type[InputError] = UnreadableInputError, **kw: object) -> str:
    start = time.perf_counter()
    with pytest.raises(cls) as info:
        open_input(path, **kw)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert message and path.name in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------- CSV dialects

DIALECT_CASES = [
    ("comma", "name,phone\nAnn,+8613800000001\nBob,007\n"),
    ("semicolon", "name;phone\nAnn;+8613800000001\nBob;007\n"),
    ("tab", "name\tphone\nAnn\t+8613800000001\nBob\t007\n"),
    ("pipe", "name|phone\nAnn|+8613800000001\nBob|007\n"),
    ("crlf", "name,phone\r\nAnn,+8613800000001\r\nBob,007\r\n"),
    ("cr only", "name,phone\rAnn,+8613800000001\rBob,007\r"),
    ("mixed endings", "name,phone\r\nAnn,+8613800000001\nBob,007\r"),
    ("no final newline", "name,phone\nAnn,+8613800000001\nBob,007"),
    ("utf8 bom", "\ufeffname,phone\nAnn,+8613800000001\nBob,007\n"),
    ("quoted", '"name","phone"\n"Ann","+8613800000001"\n"Bob","007"\n'),
    ("semicolon with decimal commas", "name;phone\nAnn;+8613800000001\nBob;007\n"),
]


@pytest.mark.parametrize(("label", "text"), DIALECT_CASES, ids=[c[0] for c in DIALECT_CASES])
def test_csv_dialects(tmp_path: Path, label: str, text: str) -> None:
    table = open_text(tmp_path, text)
    assert table.kind == "csv" and table.sheet is None
    assert table.columns == ("name", "phone")
    assert rows(table) == [("Ann", "+8613800000001", 2, None), ("Bob", "007", 3, None)]


def test_delimiter_is_sniffed_past_commas_in_values(tmp_path: Path) -> None:
    table = open_text(tmp_path, "name;amount\nAnn;1,50\nBob;2,75\n")
    assert rows(table) == [("Ann", "1,50", 2, None), ("Bob", "2,75", 3, None)]


def test_tsv_extension_prefers_tab(tmp_path: Path) -> None:
    table = open_text(tmp_path, "a\tb,c\n1\t2,3\n", name="in.tsv")
    assert table.columns == ("a", "b,c")


@pytest.mark.parametrize(
    ("encoding", "given", "bom"),
    [
        ("utf-16-le", None, b"\xff\xfe"),
        ("utf-16-be", None, b"\xfe\xff"),
        ("utf-32-le", None, b"\xff\xfe\x00\x00"),
        ("latin-1", "latin-1", b""),
        ("cp1252", "cp1252", b""),
        ("shift_jis", "shift_jis", b""),
        ("utf-8", "utf-8", b"\xef\xbb\xbf"),
    ],
)
def test_csv_encodings(tmp_path: Path, encoding: str, given: str | None, bom: bytes) -> None:
    name = "名前" if encoding == "shift_jis" else "Zoë"
    text = f"name,city\n{name},Köln\n" if encoding != "shift_jis" else f"name,city\n{name},東京\n"
    path = write(tmp_path, "in.csv", bom + text.encode(encoding))
    table = open_input(path, encoding=given)
    assert rows(table) == [(name, text.split(",")[-1].strip(), 2, None)]


def test_invalid_utf8_is_a_file_error_that_suggests_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "name\nAnn\nRen\xe9e\n".encode("latin-1"))
    message = refused(path)
    assert "UTF-8" in message and "encoding" in message and "line 3" in message
    assert rows(open_input(path, encoding="latin-1"))[-1] == ("Renée", 3, None)


def test_invalid_utf8_far_into_the_file_is_found_up_front(tmp_path: Path) -> None:
    body = "".join(f"Ann{i},{i}\n" for i in range(20_000))
    path = write(tmp_path, "in.csv", b"name,n\n" + body.encode() + b"\xff,1\n")
    assert "line 20002" in refused(path)


def test_unknown_encoding_and_utf16_without_bom(tmp_path: Path) -> None:
    path = write(tmp_path, "in.csv", "a,b\n1,2\n")
    assert "unknown encoding" in refused(path, encoding="no-such-codec")
    path = write(tmp_path, "u16.csv", "a,b\n1,2\n".encode("utf-16-le"))
    assert "UTF-16" in refused(path)


# --------------------------------------------------------------------------- CSV structure

STRUCTURE_CASES: list[tuple[str, str, tuple[str, ...], list[tuple[object, ...]]]] = [
    (
        "ragged rows keep their cells",
        "a,b,c,d\n1,2,3,4\n1,2,3,4,5,6\n1,2\n,,,\n5,6,7,8\n",
        ("a", "b", "c", "d"),
        [
            ("1", "2", "3", "4", 2, None),
            ("1", "2", "3", "4", 3, "row has 6 cells but the header has 4"),
            ("1", "2", None, None, 4, "row has 2 cells but the header has 4"),
            ("5", "6", "7", "8", 6, None),
        ],
    ),
    (
        "one cell short",
        "a,b\nx\n",
        ("a", "b"),
        [("x", None, 2, "row has 1 cell but the header has 2")],
    ),
    (
        "blank lines are skipped but keep their number",
        "a,b\n\n1,2\n\n\n   \n3,4\n",
        ("a", "b"),
        [("1", "2", 3, None), ("3", "4", 7, None)],
    ),
    (
        "leading blank lines move the header",
        "\n\na,b\n1,2\n",
        ("a", "b"),
        [("1", "2", 4, None)],
    ),
    (
        "quoted newline is one row",
        'a,b\n"line1\nline2",x\n"q""uote","c,omma"\n3,4\n',
        ("a", "b"),
        [("line1\nline2", "x", 2, None), ('q"uote', "c,omma", 3, None), ("3", "4", 4, None)],
    ),
    (
        "quoted CRLF inside a cell is kept",
        'a,b\r\n"x\r\ny",1\r\n2,3\r\n',
        ("a", "b"),
        [("x\r\ny", "1", 2, None), ("2", "3", 3, None)],
    ),
    (
        "quoted CR and LF inside cells are kept, whatever the file's line ends",
        'a,b\n"x\ry","p\r\nq"\r"\r!",\r\n2,"\n"',
        ("a", "b"),
        [("x\ry", "p\r\nq", 2, None), ("\r!", None, 3, None), ("2", "\n", 4, None)],
    ),
    (
        "CR only files: blank lines count, quoted CR and LF kept",
        'a,b\r\r"x\ry",1\r"p\nq",2\r',
        ("a", "b"),
        [("x\ry", "1", 3, None), ("p\nq", "2", 4, None)],
    ),
    (
        "damaged quoting (read by csv) keeps quoted line ends too",
        'a,b\r\nab"c,1\r\n"x\r\ny\rz",2\r\n3,4\r',
        ("a", "b"),
        [('ab"c', "1", 2, None), ("x\r\ny\rz", "2", 3, None), ("3", "4", 4, None)],
    ),
    (
        "empty and quoted empty cells are null",
        'a,b,c\n"",,x\n',
        ("a", "b", "c"),
        [(None, None, "x", 2, None)],
    ),
    (
        "values are never typed",
        "phone,n,e,d\n+8613800000001,007,1e5,2025-02-20\n",
        ("phone", "n", "e", "d"),
        [("+8613800000001", "007", "1e5", "2025-02-20", 2, None)],
    ),
    (
        "duplicate headers",
        "x,x,x_2,x\n1,2,3,4\n",
        ("x", "x_3", "x_2", "x_4"),
        [("1", "2", "3", "4", 2, None)],
    ),
    (
        "names like internal ones are kept: internal names start with a space",
        "__row,__issue, row,a\n1,2,3,4\n",
        ("__row", "__issue", "row", "a"),
        [("1", "2", "3", "4", 2, None)],
    ),
    (
        "empty header with data is named by letter, empty column dropped",
        "a,,c,\n1,2,3,\n4,,6,\n",
        ("a", "column_B", "c"),
        [("1", "2", "3", 2, None), ("4", None, "6", 3, None)],
    ),
    (
        "header names are stripped",
        " name , phone\nAnn,1\n",
        ("name", "phone"),
        [("Ann", "1", 2, None)],
    ),
    (
        "NUL in a data row is a row issue",
        "a,b\n1,x\x00y\n2,3\n",
        ("a", "b"),
        [
            ("1", "x\x00y", 2, "row contains NUL bytes (the file may be damaged)"),
            ("2", "3", 3, None),
        ],
    ),
    (
        "mid-field quote falls back to the csv module",
        'a,b\nab"c,1\n2,3\n',
        ("a", "b"),
        [('ab"c', "1", 2, None), ("2", "3", 3, None)],
    ),
    (
        "unterminated quote swallows the rest as one cell",
        'a,b\n1,2\n"open,3\n4,5\n',
        ("a", "b"),
        [("1", "2", 2, None), ("open,3\n4,5\n", None, 3, "row has 1 cell but the header has 2")],
    ),
    (
        "single column with commas in values picks another delimiter",
        "name\nDoe, John\nRoe, Jane\n",
        ("name",),
        [("Doe, John", 2, None), ("Roe, Jane", 3, None)],
    ),
]


@pytest.mark.parametrize("marker_search", [0, 256], ids=["counted", "marker"])
@pytest.mark.parametrize(
    ("label", "text", "columns", "expected"), STRUCTURE_CASES, ids=[c[0] for c in STRUCTURE_CASES]
)
def test_csv_structure(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    label: str,
    text: str,
    columns: tuple[str, ...],
    expected: list[tuple[object, ...]],
    marker_search: int,
) -> None:
    # Field counts come from the marker's column, or from the text as for wide tables.
    monkeypatch.setattr(csv_records, "MARKER_SEARCH_MAX_WIDTH", marker_search)
    table = open_text(tmp_path, text)
    assert table.columns == columns
    assert rows(table) == expected


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("a,b\n", "header row but no data rows"),
        ("a,b\n\n\n,\n", "header row but no data rows"),
        ("\n\n  \n", "only blank lines"),
        ("", "empty (0 bytes)"),
    ],
)
def test_csv_empty_inputs(tmp_path: Path, text: str, needle: str) -> None:
    assert needle in refused(write(tmp_path, "in.csv", text), EmptyInputError)


def wide_csv(width: int, name: Callable[[int], str] = "c{:05d}".format) -> str:
    header = ",".join(name(i) for i in range(width))
    row = ",".join(str(i % 10) for i in range(width))
    return f"{header}\n{row}\n{row}\n"


def test_header_longer_than_the_first_sample_is_read_whole(tmp_path: Path) -> None:
    # 16,000 columns make a ~100 KiB header; the first 64 KiB sample held 10,950 of them
    # and every row was "row has 16000 cells but the header has 10950".
    table = open_text(tmp_path, wide_csv(16_000))
    assert len(table.columns) == 16_000 and table.columns[-1] == "c15999"
    got = read_all(table)
    assert got[ISSUE].to_list() == [None, None]
    assert got["c15999"].to_list() == ["9", "9"] and got[ROW].to_list() == [2, 3]


def test_wide_header_with_quoted_line_breaks_is_read_whole(tmp_path: Path) -> None:
    table = open_text(tmp_path, wide_csv(12_000, '"name\n{}"'.format))
    assert len(table.columns) == 12_000 and table.columns[-1] == "name\n11999"
    assert read_all(table)[ISSUE].to_list() == [None, None]


def test_header_beyond_the_limits_is_a_clear_file_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = refused(write(tmp_path, "wide.csv", wide_csv(16_403)))
    assert "16,403 columns" in message and "16,384" in message
    monkeypatch.setattr(inputs_csv, "MAX_CSV_HEADER_BYTES", 1 << 20)
    long_names = wide_csv(4_000, lambda i: f"{i:0300d}")  # a 1.2 MB header record
    assert "header row longer than 1 MiB" in refused(write(tmp_path, "long.csv", long_names))


def test_blank_lines_beyond_the_first_sample_before_the_header(tmp_path: Path) -> None:
    table = open_text(tmp_path, "\n" * 100_000 + "a,b\n1,2\n")
    assert rows(table) == [("1", "2", 100_002, None)]


def test_nul_in_header_is_a_file_error(tmp_path: Path) -> None:
    assert "NUL" in refused(write(tmp_path, "in.csv", b"a\x00,b\n1,2\n"))


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("page.csv", b"\n\n<!DOCTYPE html>\n<html><body>hi</body></html>", "HTML page, not a CSV"),
        ("page.html", b"<html><body><table></table></body></html>", "HTML page, not a CSV"),
        ("data.csv.gz", zlib.compress(b"a,b\n1,2\n"), "compressed"),
        ("data.csv", b"\x1f\x8b\x08\x00" + b"\x00" * 20, "compressed"),
        ("data.csv", b"%PDF-1.7\n", "PDF"),
        ("data.csv", b"<?xml version='1.0'?><Workbook/>", "XML file"),
        ("data.bad-format", b"a,b\n1,2\n", "unsupported file type"),
        ("data", b"a,b\n1,2\n", "unsupported file type"),
    ],
)
def test_csv_wrong_content(tmp_path: Path, name: str, data: bytes, needle: str) -> None:
    assert needle in refused(write(tmp_path, name, data))


def test_zip_named_csv_says_rename(tmp_path: Path) -> None:
    source = make_xlsx(tmp_path, [["a"], ["1"]])
    path = write(tmp_path, "data.csv", source.read_bytes())
    message = refused(path)
    assert "XLSX" in message and "Rename" in message


def test_batches_are_bounded_and_cover_every_row(tmp_path: Path) -> None:
    text = "a,b\n" + "".join(f"{i},x{i}\n" for i in range(1000))
    table = open_text(tmp_path, text)
    frames = list(table.batches(batch_rows=64))
    assert max(f.height for f in frames) <= 64
    merged = pl.concat(frames)
    assert merged[ROW].to_list() == list(range(2, 1002))
    assert merged["a"].to_list() == [str(i) for i in range(1000)]
    assert rows(table) == merged.rows()  # batches() can be called again
    with pytest.raises(ValueError, match="batch_rows"):
        next(table.batches(0))


@pytest.mark.parametrize("block", [7, 64, 1000])
def test_small_blocks_keep_records_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # Tiny blocks force record cuts inside quoted multi-line cells and CRLF pairs.
    monkeypatch.setattr(inputs_text, "BLOCK", block)
    text = "a,b\r\n" + '"x\r\n""y""\r\nz",1\r\n' * 30 + "p,q\r\n" + '"unterminated\r\n1,2\r\n'
    table = open_text(tmp_path, text)
    got = rows(table)
    assert got[:30] == [('x\r\n"y"\r\nz', "1", 2 + i, None) for i in range(30)]
    assert got[30] == ("p", "q", 32, None)
    assert got[31][0] == "unterminated\r\n1,2\r\n" and got[31][2] == 33


@pytest.mark.parametrize("block", [1, 2, 3, 5, 64])
def test_cr_line_ends_split_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    # A CRLF cut between two blocks is one line end, not a CR line end and a blank line.
    monkeypatch.setattr(inputs_text, "BLOCK", block)
    text = 'a,b\r\n1,"x\r\ny"\r\n\r\n2,"\r"\r3,4\r\n'
    assert rows(open_text(tmp_path, text)) == [
        ("1", "x\r\ny", 2, None),
        ("2", "\r", 4, None),
        ("3", "4", 5, None),
    ]
    # The same file read by the csv module after a quoting problem.
    damaged = 'a,b\r\n"q"x,0\r\n' + text[5:]
    assert rows(open_text(tmp_path, damaged))[1:] == [
        ("1", "x\r\ny", 3, None),
        ("2", "\r", 5, None),
        ("3", "4", 6, None),
    ]


# --------------------------------------------------------------------------- CSV properties

CELL = st.text(
    alphabet=st.sampled_from(list('ab ,;"\n\r\tZ0+é€中\U0001f600')), min_size=0, max_size=8
)


def csv_text(records: list[list[str]], terminator: str) -> str:
    """RFC 4180 text; unlike csv.writer, also quotes a cell holding a CR when lines end in LF."""

    def field(cell: str) -> str:
        return (
            f'"{cell.replace(chr(34), chr(34) * 2)}"' if any(c in cell for c in ',"\r\n') else cell
        )

    return "".join(",".join(field(c) for c in record) + terminator for record in records)


def expected_rows(header: list[str], records: list[list[str]]) -> list[tuple[object, ...]]:
    width = len(header)
    out: list[tuple[object, ...]] = []
    for number, record in enumerate(records, start=2):
        if not any(c.strip() for c in record) and len(record) <= width:
            continue  # blank rows are not yielded
        cells = [c if c else None for c in record[:width]] + [None] * (width - len(record))
        issue = None
        if len(record) != width:
            noun = "cell" if len(record) == 1 else "cells"
            issue = f"row has {len(record)} {noun} but the header has {width}"
        out.append((*cells, number, issue))
    return out


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    # One-column files get their delimiter by elimination, so start at two columns.
    width=st.integers(min_value=2, max_value=5),
    data=st.data(),
    terminator=st.sampled_from(["\n", "\r\n", "\r"]),
    block=st.sampled_from([16, 97, 8 << 20]),
    # 0: field counts from the text, as for wide tables; else from the marker's column
    marker_search=st.sampled_from([0, 256]),
)
def test_property_every_row_once(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    width: int,
    data: st.DataObject,
    terminator: str,
    block: int,
    marker_search: int,
) -> None:
    monkeypatch.setattr(inputs_text, "BLOCK", block)
    monkeypatch.setattr(csv_records, "MARKER_SEARCH_MAX_WIDTH", marker_search)
    header = [f"h{i}" for i in range(width)]
    records = data.draw(
        st.lists(
            st.lists(CELL, min_size=1, max_size=width + 2).filter(
                lambda r: any(c.strip() for c in r)
            ),
            min_size=1,
            max_size=25,
        )
    )
    path = write(tmp_path, "prop.csv", csv_text([header, *records], terminator))
    table = open_input(path)
    assert table.columns == tuple(header)
    # Every cell comes back exactly as written, CR and CRLF inside quoted cells included.
    assert rows(table) == expected_rows(header, records)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(blob=st.binary(max_size=300), name=st.sampled_from(["fuzz.csv", "fuzz.xlsx"]))
def test_property_random_bytes_never_crash(tmp_path: Path, blob: bytes, name: str) -> None:
    path = write(tmp_path, name, blob)
    try:
        table = open_input(path)
    except InputError as exc:
        assert str(exc)
        return
    numbers = read_all(table)[ROW].to_list()
    assert numbers == sorted(set(numbers))


# --------------------------------------------------------------------------- XLSX helpers


def make_xlsx(
    tmp_path: Path,
    data: list[list[object]],
    name: str = "in.xlsx",
    extra: Callable[[openpyxl.Workbook], None] | None = None,
) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Main"
    for row in data:
        sheet.append(row)
    if extra is not None:
        extra(workbook)
    path = tmp_path / name
    workbook.save(path)
    return path


CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/></Types>'
)
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxml'
    'formats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships"><sheets><sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats'
    '.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxml'
    'formats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>'
)
SHEET_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/'
    'spreadsheetml/2006/main">'
)
EMPTY_SST = (
    '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="0" '
    'uniqueCount="0"></sst>'
)


def raw_xlsx(
    tmp_path: Path,
    sheet_data: str,
    name: str = "raw.xlsx",
    shared_strings: str = EMPTY_SST,
    dimension: str = "",
    styles: str = "",
) -> Path:
    """A minimal workbook written by hand, for XML that openpyxl would not produce."""
    path = tmp_path / name
    rels = WORKBOOK_RELS
    if styles:
        rels = rels.replace(
            "</Relationships>",
            '<Relationship Id="rId3" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/styles" Target="styles.xml"/></Relationships>',
        )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", CONTENT_TYPES)
        zf.writestr("_rels/.rels", ROOT_RELS)
        zf.writestr("xl/workbook.xml", WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", rels)
        zf.writestr("xl/sharedStrings.xml", shared_strings)
        if styles:
            zf.writestr("xl/styles.xml", styles)
        dim = f'<dimension ref="{dimension}"/>' if dimension else ""
        zf.writestr(
            "xl/worksheets/sheet1.xml",
            f"{SHEET_HEAD}{dim}<sheetData>{sheet_data}</sheetData></worksheet>",
        )
    return path


def stored_zip(path: Path, members: list[tuple[str, bytes, int, int, int]]) -> Path:
    """Write a zip whose members are (name, deflated payload, crc, size, declared size)."""
    local = io.BytesIO()
    central = io.BytesIO()
    for name, payload, crc, _size, declared in members:
        offset = local.tell()
        raw_name = name.encode()
        # version, flags, method (deflate), time, date, crc, sizes, name length, extra length
        common = (0, 8, 0, 0x21, crc, len(payload), declared, len(raw_name), 0)
        local.write(struct.pack("<IH" + "HHHHIIIHH", 0x04034B50, 20, *common) + raw_name)
        local.write(payload)
        # ... plus comment length, disk, attributes and the local header's offset
        tail = (0, 0, 0, 0, offset)
        central.write(
            struct.pack("<IHH" + "HHHHIIIHH" + "HHHII", 0x02014B50, 20, 20, *common, *tail)
            + raw_name
        )
    start = local.tell()
    directory = central.getvalue()
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), start, 0
    )
    path.write_bytes(local.getvalue() + directory + end)
    return path


def deflate(data: bytes) -> tuple[bytes, int, int]:
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    return packer.compress(data) + packer.flush(), zlib.crc32(data), len(data)


def bomb_xlsx(tmp_path: Path, name: str, lie: bool) -> Path:
    """A ~1 MiB workbook whose sheet XML inflates to 1.1 GiB.

    The deflate stream is one compressed 1 MiB block repeated (full flushes make the
    copies independent), so building it takes milliseconds.
    """
    row = b'<row><c t="inlineStr"><is><t>' + b"A" * 1000 + b"</t></is></c></row>"
    chunk = row * ((1 << 20) // len(row))
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    piece = packer.compress(chunk) + packer.flush(zlib.Z_FULL_FLUSH)
    copies = 1100
    head = SHEET_HEAD.encode() + b"<sheetData>"
    tail = b"</sheetData></worksheet>"
    first = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = first.compress(head) + first.flush(zlib.Z_FULL_FLUSH)
    last = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = last.compress(tail) + last.flush()
    payload = start + piece * copies + end
    size = len(head) + len(chunk) * copies + len(tail)
    members = [
        (n, *deflate(d.encode()), len(d.encode()))
        for n, d in [
            ("[Content_Types].xml", CONTENT_TYPES),
            ("_rels/.rels", ROOT_RELS),
            ("xl/workbook.xml", WORKBOOK),
            ("xl/_rels/workbook.xml.rels", WORKBOOK_RELS.replace("sharedStrings", "x")),
        ]
    ]
    # The CRC is left at 0: the reader must refuse long before it could check it.
    members.append(("xl/worksheets/sheet1.xml", payload, 0, size, 4096 if lie else size))
    return stored_zip(tmp_path / name, members)


# --------------------------------------------------------------------------- XLSX rendering


def test_xlsx_cells_render_as_the_user_sees_them(tmp_path: Path) -> None:
    data: list[list[object]] = [
        ["phone", "amount", "when", "flag", "big", "text", "float"],
        [8613812345678, 12, dt.date(2025, 2, 20), True, 8613812345678901234, "+8613800000001", 0.1],
        [18417692339, 12.5, dt.datetime(2025, 2, 20, 10, 30), False, 1e15, "07700900123", 1 / 3],
        [1234.0, -3, dt.time(10, 30), "TRUE", 999999999999999, "8613812345678901234", 1e-7],
    ]
    table = open_input(make_xlsx(tmp_path, data))
    assert table.kind == "xlsx" and table.sheet == "Main"
    assert table.columns == tuple(data[0])
    row2 = ("8613812345678", "12", "2025-02-20", "TRUE", "8.61381E+18", "+8613800000001")
    row3 = ("18417692339", "12.5", "2025-02-20T10:30:00", "FALSE", "1E+15", "07700900123")
    row4 = ("1234", "-3", "10:30:00", "TRUE", "999999999999999", "8613812345678901234")
    assert rows(table) == [
        (*row2, "0.1", 2, None),
        (*row3, "0.333333333333333", 3, None),
        (*row4, "1e-07", 4, None),
    ]


def test_xlsx_percent_formats_render_as_the_user_sees_them(tmp_path: Path) -> None:
    # Numbers keep their General rendering; a percent format shows the percentage with the
    # format's decimals, rounded half away from zero as Excel shows it.
    formats = ["0%", "0.00%", "0.0#%", "0%;[Red]-0%", "General", "0.00"]
    data: list[list[object]] = [
        ["discount", "rate", "flex", "signed", "plain", "fixed"],
        [0.5, 0.1234, 0.5, -0.25, 0.5, 0.5],
        [0.125, 1, 0.12345, 0.285, 0.125, 1 / 3],
        [1.5, 0.000001, 0.1, "50%", 1, 2],
        [None, "=B3*2", "text", None, None, None],
    ]

    def percent_styles(workbook: openpyxl.Workbook) -> None:
        sheet = workbook["Main"]
        for column, number_format in zip("ABCDEF", formats, strict=True):
            for row in range(2, 6):
                sheet[f"{column}{row}"].number_format = number_format

    table = open_input(make_xlsx(tmp_path, data, extra=percent_styles))
    assert rows(table) == [
        ("50%", "12.34%", "50.0%", "-25%", "0.5", "0.5", 2, None),
        ("13%", "100.00%", "12.35%", "29%", "0.125", "0.333333333333333", 3, None),
        ("150%", "0.00%", "10.0%", "50%", "1", "2", 4, None),
        (
            None,
            None,
            "text",
            None,
            None,
            None,
            5,
            "cell B5 has a formula without a saved value (open and save it in Excel)",
        ),
    ]


def test_xlsx_percent_format_from_the_workbook_styles(tmp_path: Path) -> None:
    # A custom percent format (numFmt 164) next to built-in ones, in a hand-made workbook
    # whose sheet XML also has cached formula values and cells beyond column Z.
    styles = (
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="0.0%"/>'
        '</numFmts><cellXfs count="4"><xf numFmtId="0"/><xf numFmtId="9"/>'
        '<xf numFmtId="164"/><xf numFmtId="14"/></cellXfs></styleSheet>'
    )
    sheet = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c>'
        '<c r="AB1" t="inlineStr"><is><t>b</t></is></c></row>'
        '<row r="2"><c r="A2" s="1"><f>1/4</f><v>0.25</v></c><c r="AB2" s="2"><v>0.07</v></c>'
        "</row>"
        '<row r="3"><c r="A3" s="3"><v>45000</v></c><c r="AB3" s="1" t="s"><v>0</v></c></row>'
    )
    sst = EMPTY_SST.replace('count="0" uniqueCount="0"></sst>', 'count="1" uniqueCount="1">')
    sst += "<si><t>x</t></si></sst>"
    path = raw_xlsx(tmp_path, sheet, shared_strings=sst, styles=styles)
    assert rows(open_input(path)) == [("25%", "7.0%", 2, None), ("2023-03-15", "x", 3, None)]


def test_xlsx_mixed_column_is_never_coerced(tmp_path: Path) -> None:
    data: list[list[object]] = [["phone"]]
    data += [[13800000000 + i] for i in range(150)]
    data += [["+8613812345678"], ["07700900123"], [13812345678.5]]
    got = [r[0] for r in rows(open_input(make_xlsx(tmp_path, data)))]
    assert got[:2] == ["13800000000", "13800000001"]
    assert got[-3:] == ["+8613812345678", "07700900123", "13812345678.5"]


def test_xlsx_errors_and_formulas(tmp_path: Path) -> None:
    def extra(workbook: openpyxl.Workbook) -> None:
        sheet = workbook["Main"]
        sheet["B3"] = "=1/0"  # openpyxl saves no cached value
        sheet["C4"].value = "#DIV/0!"
        sheet["C4"].data_type = "e"

    data: list[list[object]] = [["a", "b", "c"], ["x", 1, 2], ["y", None, 3], ["z", 4, None]]
    table = open_input(make_xlsx(tmp_path, data, extra=extra))
    no_value = "cell B3 has a formula without a saved value (open and save it in Excel)"
    assert rows(table) == [
        ("x", "1", "2", 2, None),
        ("y", None, "3", 3, no_value),
        ("z", "4", None, 4, "cell C4 is an Excel error (#DIV/0!)"),
    ]


def test_xlsx_cached_formula_values_and_raw_types(tmp_path: Path) -> None:
    sheet = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>v</t></is></c>'
        '<c r="B1" t="inlineStr"><is><t>w</t></is></c></row>'
        '<row r="2"><c r="A2"><f>1+1</f><v>2</v></c><c r="B2" t="str"><f>"x"</f><v>x</v></c></row>'
        '<row r="3"><c r="A3" t="b"><v>1</v></c><c r="B3" t="e"><f>NA()</f><v>#N/A</v></c></row>'
        '<row r="4"><c r="A4" t="str"><f>""</f><v></v></c><c r="B4"><v>8.6138123456789E+18</v>'
        "</c></row>"
        '<row r="5"><c r="A5"><v>-0</v></c><c r="B5"><v>0.000012345</v></c></row>'
    )
    table = open_input(raw_xlsx(tmp_path, sheet))
    assert rows(table) == [
        ("2", "x", 2, None),
        ("TRUE", None, 3, "cell B3 is an Excel error (#N/A)"),
        (None, "8.61381E+18", 4, None),
        ("0", "1.2345e-05", 5, None),
    ]


def test_xlsx_namespace_prefix_and_single_quotes(tmp_path: Path) -> None:
    path = tmp_path / "prefixed.xlsx"
    raw_xlsx(tmp_path, "", name="prefixed.xlsx")
    sheet = (
        '<?xml version="1.0"?><x:worksheet xmlns:x="http://schemas.openxmlformats.org/'
        "spreadsheetml/2006/main\"><x:sheetData><x:row r='1'><x:c r='A1' t='inlineStr'>"
        "<x:is><x:t>h</x:t></x:is></x:c></x:row><x:row r='2'><x:c r='A2' t='b'><x:v>0</x:v>"
        "</x:c></x:row><x:row r='3'><x:c r='A3' t='e'><x:v>#REF!</x:v></x:c></x:row>"
        "</x:sheetData></x:worksheet>"
    )
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in members.items():
            zf.writestr(name, content)
    assert rows(open_input(path)) == [
        ("FALSE", 2, None),
        (None, 3, "cell A3 is an Excel error (#REF!)"),
    ]


def test_xlsx_header_offsets_blank_rows_and_letters(tmp_path: Path) -> None:
    def extra(workbook: openpyxl.Workbook) -> None:
        sheet = workbook["Main"]
        sheet["C3"], sheet["E3"] = "name", "name"
        sheet["C4"], sheet["D4"], sheet["E4"] = "Ann", "x", "Ann2"
        sheet["C7"] = "Bob"
        sheet["F9"].style = "Good"  # styled but empty: not data

    table = open_input(make_xlsx(tmp_path, [], extra=extra))
    assert table.columns == ("name", "column_D", "name_2")
    assert rows(table) == [("Ann", "x", "Ann2", 4, None), ("Bob", None, None, 7, None)]


@pytest.mark.parametrize(
    ("sheet", "expected"), [(None, "Second"), ("Third", "Third"), (2, "Third"), ("third", "Third")]
)
def test_xlsx_sheet_choice(tmp_path: Path, sheet: str | int | None, expected: str) -> None:
    def extra(workbook: openpyxl.Workbook) -> None:
        workbook["Main"].sheet_state = "hidden"
        for title in ("Second", "Third"):
            workbook.create_sheet(title).append(["col"])
            workbook[title].append([title])

    table = open_input(make_xlsx(tmp_path, [["col"], ["Main"]], extra=extra), sheet=sheet)
    assert table.sheet == expected
    assert rows(table) == [(expected, 2, None)]


def test_xlsx_missing_sheet_lists_names(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path, [["a"], [1]])
    assert "'Main'" in refused(path, sheet="Nope")
    assert "sheet number 3" in refused(path, sheet=3)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([["a", "b"]], "header row but no data rows"),
        ([], "is empty"),
        ([["a"], [None], [None]], "header row but no data rows"),
    ],
)
def test_xlsx_empty(tmp_path: Path, data: list[list[object]], needle: str) -> None:
    assert needle in refused(make_xlsx(tmp_path, data), EmptyInputError)


def test_xlsm_is_read(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path, [["a"], ["1"]], name="macro.xlsm")
    assert rows(open_input(path)) == [("1", 2, None)]


def test_xlsx_damaged_shared_string_index(tmp_path: Path) -> None:
    path = raw_xlsx(tmp_path, '<row r="1"><c r="A1" t="s"><v>7</v></c></row>')
    assert "damaged" in refused(path)


# --------------------------------------------------------------------------- hostile files


def ole_file(tmp_path: Path, name: str, streams: list[str]) -> Path:
    body = b"".join(s.encode("utf-16-le") + b"\x00" * 8 for s in streams)
    return write(tmp_path, name, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + body)


def renamed(tmp_path: Path, name: str, members: dict[str, bytes]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        for member, content in members.items():
            zf.writestr(member, content)
    return path


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i + 1} "{("&lol" + str(i) + ";") * 10}">' for i in range(9))
    + ']><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&lol9;'
    "</t></si></sst>"
).replace("&lol0;", "&lol;")


HAZARDS: list[tuple[str, Callable[[Path], Path], type[InputError], str]] = [
    ("zero bytes", lambda t: write(t, "z.xlsx", b""), EmptyInputError, "empty"),
    ("not a zip", lambda t: write(t, "n.xlsx", b"a,b\n1,2\n"), UnreadableInputError, ".csv"),
    (
        "empty zip",
        lambda t: write(t, "e.xlsx", b"PK\x05\x06" + b"\x00" * 18),
        UnreadableInputError,
        "empty zip",
    ),
    (
        "truncated zip",
        lambda t: write(t, "tr.xlsx", b"PK\x03\x04garbage"),
        UnreadableInputError,
        "damaged",
    ),
    (
        "encrypted",
        lambda t: ole_file(t, "enc.xlsx", ["EncryptionInfo", "EncryptedPackage"]),
        UnreadableInputError,
        "encrypted with a password",
    ),
    (
        "legacy xls named xlsx",
        lambda t: ole_file(t, "old.xlsx", ["Workbook"]),
        UnreadableInputError,
        "legacy Excel 97-2003",
    ),
    (
        "legacy xls",
        lambda t: ole_file(t, "old.xls", ["Workbook"]),
        UnreadableInputError,
        "save as .xlsx",
    ),
    (
        "xlsb renamed",
        lambda t: renamed(t, "b.xlsx", {"xl/workbook.bin": b"\x00"}),
        UnreadableInputError,
        "XLSB",
    ),
    (
        "ods renamed",
        lambda t: renamed(
            t, "o.xlsx", {"mimetype": b"application/vnd.oasis.opendocument.spreadsheet"}
        ),
        UnreadableInputError,
        "ODS",
    ),
    ("xlsb", lambda t: write(t, "b.xlsb", b"PK\x03\x04"), UnreadableInputError, "XLSB"),
    (
        "html named xls",
        lambda t: write(t, "web.xls", b"<html><table><tr><td>1</td></tr></table></html>"),
        UnreadableInputError,
        "HTML page",
    ),
    (
        "xlsx named xls",
        lambda t: write(t, "x.xls", make_xlsx(t, [["a"], [1]]).read_bytes()),
        UnreadableInputError,
        "rename it to .xlsx",
    ),
    ("ods", lambda t: write(t, "o.ods", b"PK\x03\x04"), UnreadableInputError, "ODS"),
    (
        "html named xlsx",
        lambda t: write(t, "h.xlsx", b"<html><table></table></html>"),
        UnreadableInputError,
        "HTML",
    ),
    (
        "docx renamed",
        lambda t: renamed(t, "d.xlsx", {"word/document.xml": b"<w/>"}),
        UnreadableInputError,
        "not an Excel workbook",
    ),
    (
        "billion laughs shared strings",
        lambda t: raw_xlsx(t, "", shared_strings=LAUGHS),
        UnreadableInputError,
        "DTD",
    ),
    (
        "entity in the sheet",
        lambda t: raw_xlsx(t, '<!DOCTYPE x [<!ENTITY a "b">]><row r="1"/>'),
        UnreadableInputError,
        "DTD",
    ),
    (
        "single cell at XFD1048576",
        lambda t: raw_xlsx(t, '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'),
        UnreadableInputError,
        "columns",
    ),
    (
        "far cell makes a huge grid",
        lambda t: raw_xlsx(
            t,
            '<row r="1"><c r="A1"><v>1</v></c></row>'
            '<row r="999999"><c r="Z999999"><v>2</v></c></row>',
        ),
        UnreadableInputError,
        "save it as CSV",
    ),
    (
        "row beyond Excel's limit",
        lambda t: raw_xlsx(t, '<row r="1"><c r="A1"><v>1</v></c><c r="A99999999"><v>1</v></c>'),
        UnreadableInputError,
        "rows",
    ),
    (
        "cells without references beyond column XFD",
        lambda t: raw_xlsx(t, "<row>" + "<c><v>1</v></c>" * 16_400 + "</row>"),
        UnreadableInputError,
        "columns",
    ),
    (
        "absurd dimension",
        lambda t: raw_xlsx(t, '<row r="1"/>', dimension="A1:XFD99999999"),
        UnreadableInputError,
        "dimension",
    ),
    (
        "zip bomb",
        lambda t: bomb_xlsx(t, "bomb.xlsx", lie=False),
        UnreadableInputError,
        "decompression bomb",
    ),
    (
        "zip bomb with a lying size",
        lambda t: bomb_xlsx(t, "liar.xlsx", lie=True),
        UnreadableInputError,
        "damaged",
    ),
]


@pytest.mark.parametrize(("label", "build", "cls", "needle"), HAZARDS, ids=[h[0] for h in HAZARDS])
def test_hostile_files_are_refused(
    tmp_path: Path, label: str, build: Callable[[Path], Path], cls: type[InputError], needle: str
) -> None:
    path = build(tmp_path)
    assert needle in refused(path, cls)


def test_many_zip_entries_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xlsx_package, "MAX_ZIP_ENTRIES", 10)
    path = renamed(tmp_path, "many.xlsx", {f"f{i}.xml": b"<a/>" for i in range(11)})
    assert "entries" in refused(path)


def test_far_styled_empty_cells_do_not_count(tmp_path: Path) -> None:
    sheet = (
        '<row r="1"><c r="A1" t="inlineStr"><is><t>h</t></is></c></row>'
        '<row r="2"><c r="A2"><v>5</v></c></row>'
        '<row r="1048576"><c r="XFD1048576" s="1"/></row>'
    )
    assert rows(open_input(raw_xlsx(tmp_path, sheet))) == [("5", 2, None)]


@pytest.fixture(scope="module")
def sample_xlsx(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    folder = tmp_path_factory.mktemp("sample")
    data: list[list[object]] = [["phone", "name", "when"]]
    data += [[8613800000000 + i, f"n{i}", dt.date(2025, 1, 1 + i % 28)] for i in range(40)]
    return make_xlsx(folder, data).read_bytes()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(1, 255)), max_size=6))
def test_property_mutated_xlsx_never_crashes(
    tmp_path: Path, sample_xlsx: bytes, flips: list[tuple[int, int]]
) -> None:
    blob = bytearray(sample_xlsx)
    for offset, mask in flips:
        blob[offset % len(blob)] ^= mask
    path = write(tmp_path, "mutated.xlsx", bytes(blob))
    try:
        table = open_input(path)
    except InputError as exc:
        assert str(exc)
        return
    numbers = read_all(table)[ROW].to_list()
    assert numbers == sorted(set(numbers))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cut=st.integers(min_value=0, max_value=10_000),
    insert=st.sampled_from(["", "<", ">", '"', "<c>", "</row>", "<v>1e999</v>", "&bogus;", "\x00"]),
    drop=st.integers(min_value=0, max_value=40),
)
def test_property_changed_sheet_xml_never_crashes(
    tmp_path: Path, sample_xlsx: bytes, cut: int, insert: str, drop: int
) -> None:
    with zipfile.ZipFile(io.BytesIO(sample_xlsx)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    xml = members["xl/worksheets/sheet1.xml"]
    at = cut % len(xml)
    members["xl/worksheets/sheet1.xml"] = xml[:at] + insert.encode() + xml[at + drop :]
    path = renamed(tmp_path, "changed.xlsx", members)
    try:
        table = open_input(path)
    except InputError as exc:
        assert str(exc)
        return
    numbers = read_all(table)[ROW].to_list()
    assert numbers == sorted(set(numbers))


PIECES = ["a", "b", ",", '"', "\n", " ", "x,", '",', ',"', '""', "\r\n", "\r", "é"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map("".join),
    block=st.sampled_from([3, 11, 8 << 20]),
)
def test_property_damaged_csv_reads_like_python_csv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, block: int
) -> None:
    # Whatever the quoting damage, rows, cells and numbers follow Python's csv module
    # (non-strict), like a spreadsheet would, even when records cross block boundaries.
    monkeypatch.setattr(inputs_text, "BLOCK", block)
    text = "h1,h2,h3\n" + body
    path = write(tmp_path, "damaged.csv", text)
    records = list(csv.reader(io.StringIO(text, newline=""), strict=False))
    try:
        table = open_input(path)
    except EmptyInputError:
        assert not any(any(c.strip() for c in r) or len(r) > 3 for r in records[1:])
        return
    got = [r[:4] for r in rows(table)]
    want = [r[:4] for r in expected_rows(["h1", "h2", "h3"], records[1:])]
    assert got == want


def test_xlsx_1904_dates_survive_excels_x14_workbook_pr(tmp_path: Path) -> None:
    # Excel for Mac writes <x14:workbookPr> in extLst; calamine lets it override date1904.
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    def extra(workbook: openpyxl.Workbook) -> None:
        workbook.epoch = CALENDAR_MAC_1904

    path = make_xlsx(tmp_path, [["when"], [dt.datetime(2025, 2, 20, 10, 30)]], extra=extra)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    x14 = (
        b'<extLst><ext uri="{79F54976-1DA5-4618-B147-4CDE4B953A38}" xmlns:x14="http://'
        b'schemas.microsoft.com/office/spreadsheetml/2009/9/main"><x14:workbookPr '
        b'defaultImageDpi="32767"/></ext></extLst></workbook>'
    )
    members["xl/workbook.xml"] = members["xl/workbook.xml"].replace(b"</workbook>", x14)
    assert b'date1904="1"' in members["xl/workbook.xml"]
    patched = renamed(tmp_path, "mac.xlsx", members)
    assert rows(open_input(patched)) == [("2025-02-20T10:30:00", 2, None)]
    assert rows(open_input(path)) == [("2025-02-20T10:30:00", 2, None)]


def test_xlsx_date_beyond_year_9999_is_a_row_issue(tmp_path: Path) -> None:
    def extra(workbook: openpyxl.Workbook) -> None:
        workbook["Main"]["A3"].number_format = "yyyy-mm-dd"

    table = open_input(make_xlsx(tmp_path, [["when"], ["ok"], [2994626]], extra=extra))
    assert rows(table) == [("ok", 2, None), (None, 3, "cell A3 holds a date Excel cannot show")]
