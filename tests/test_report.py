"""report.csv / report.xlsx: exact round trips, formula-injection defusing, atomicity, 0600."""

from __future__ import annotations

import csv
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import fastexcel
import openpyxl
import polars as pl
import pytest
from defusedxml import ElementTree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigner.report import ReportWriter, neutralize, write_json_atomic
from campaigner.report.xlsx import XlsxSink
from campaigner.statuses import RESULT_COLUMNS

COLUMNS = ["phone", "name", "note", "row", "status", "attempts", "error"]

# Values that break naive writers: unicode, quotes, separators, line breaks, leading zeros,
# long digit strings, whitespace at the ends, XML specials, Excel's own _xHHHH_ escapes,
# formulas.
TRICKY = [
    "8613812345678",
    "0044123456789",
    "12345678901234567890",
    "Zoë Ørsted",
    "北京市 朝阳区",
    "emoji 👍🏽 ok",
    'say "hi", then leave',
    "a,b,c",
    "line1\nline2",
    "crlf\r\nend",
    "cr\ronly",
    "  padded  ",
    " ",
    "<tag> & 'amp' \"q\"",
    "_x0041_ literal",
    "_x005F_x0041_",
    "tab\tinside",
    "ctrl\x01\x1f char",
    "nul\x00inside",
    "'already quoted",
    "0",
    "=SUM(A1:A9)",
    "+8613812345678",
    " -5",
    "ok\n@cmd",
]


def tricky_frame(offset: int = 0, n: int = len(TRICKY)) -> pl.DataFrame:
    values = [TRICKY[(offset + i) % len(TRICKY)] for i in range(n)]
    return pl.DataFrame(
        {
            "phone": [f"86138{offset + i:08d}" for i in range(n)],
            "name": values,
            "note": [
                None if i % 3 == 0 else ("" if i % 3 == 1 else v) for i, v in enumerate(values)
            ],
            "row": pl.Series([offset + i + 2 for i in range(n)], dtype=pl.Int64),
            "status": ["sent"] * n,
            "attempts": pl.Series([i % 4 for i in range(n)], dtype=pl.Int64),
            "error": [None] * n,
        },
        schema_overrides={"error": pl.String},
    )


def write(run_dir: Path, batches: list[pl.DataFrame], *, xlsx: bool = True) -> None:
    with ReportWriter(run_dir, batches[0].columns, xlsx=xlsx) as writer:
        for batch in batches:
            writer.write(batch)


def read_csv(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.all().cast(pl.String))


# The rule of docs/report-safety.md#what-is-risky, written independently of the polars regex.
SPEC_BLANKS = " \t\u00a0"


def risky_by_spec(value: str) -> bool:
    if value[:1] in ("\t", "\r", "\x00"):
        return True
    return any(
        line.lstrip(SPEC_BLANKS)[:1] in ("=", "+", "-", "@")
        for line in re.split(r"\r\n|\r|\n", value)
    )


def starts_risky(value: str) -> bool:
    """What a spreadsheet looks at when it opens the cell."""
    return value[:1] in ("\t", "\r", "\x00") or value.lstrip(SPEC_BLANKS)[:1] in tuple("=+-@")


def xlsx_expected(value: str | None) -> str | None:
    """XLSX keeps text exactly, except: an empty string is an empty cell, like null; text is
    cut at 32,767 characters; the noncharacters U+FFFE/U+FFFF are dropped."""
    if value is None:
        return None
    value = value[:32_767].replace("\ufffe", "").replace("\uffff", "")
    return value or None


def sheet_values(path: Path) -> dict[str, list[list[object]]]:
    book = openpyxl.load_workbook(path)
    return {
        ws.title: [[cell.value for cell in row] for row in ws.iter_rows()] for ws in book.worksheets
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


# -- neutralize --------------------------------------------------------------------------

NEUTRALIZE_CASES = [
    # risky: formula characters first
    ("=1+2", "'=1+2"),
    ("+8613812345678", "'+8613812345678"),
    ("-42", "'-42"),
    ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
    ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
    # ... after leading spaces, tabs, NBSP
    ("   =cmd", "'   =cmd"),
    ("\u00a0\u00a0+1", "'\u00a0\u00a0+1"),
    (" \u00a0 @x", "' \u00a0 @x"),
    # Tab, CR, NUL prefixes, whatever follows
    ("\tplain", "'\tplain"),
    ("\rplain", "'\rplain"),
    ("\x00plain", "'\x00plain"),
    # any line of a multi-line cell
    ("hello\n=cmd", "'hello\n=cmd"),
    ("hello\r\n  -cmd", "'hello\r\n  -cmd"),
    ("hello\r@cmd", "'hello\r@cmd"),
    ("a\nb\n\u00a0+c", "'a\nb\n\u00a0+c"),
    # safe
    ("8613812345678", "8613812345678"),
    ("0044123", "0044123"),
    ("a=b", "a=b"),
    ("x - y", "x - y"),
    ("mail@example.com", "mail@example.com"),
    ("'=already", "'=already"),
    ("line1\nline2", "line1\nline2"),
    ("x\t=y", "x\t=y"),
    ("", ""),
    (None, None),
]


@pytest.mark.parametrize(("value", "expected"), NEUTRALIZE_CASES)
def test_neutralize_cases(value: str | None, expected: str | None) -> None:
    out = neutralize(pl.DataFrame({"c": [value]}, schema={"c": pl.String}))
    assert out["c"].to_list() == [expected]


def test_neutralize_leaves_numbers_and_converts_categoricals() -> None:
    frame = pl.DataFrame(
        {"n": [-1, 2], "f": [-1.5, 2.0], "cat": ["=x", "ok"]},
        schema_overrides={"cat": pl.Categorical},
    )
    out = neutralize(frame)
    assert out["n"].to_list() == [-1, 2]
    assert out["f"].to_list() == [-1.5, 2.0]
    assert out["cat"].to_list() == ["'=x", "ok"]


def test_neutralized_csv_cells_never_start_risky(run_dir: Path) -> None:
    values = [v for v, _ in NEUTRALIZE_CASES]
    frame = pl.DataFrame(
        {"c": values, "d": list(reversed(values))}, schema={"c": pl.String, "d": pl.String}
    )
    write(run_dir, [frame], xlsx=False)
    back = read_csv(run_dir / "report.csv")
    cells = [v for col in back.columns for v in back[col].to_list() if v]
    assert len(cells) == 2 * sum(1 for v in values if v)
    assert not [v for v in cells if starts_risky(v)]


# -- CSV ---------------------------------------------------------------------------------


def test_csv_round_trip_exact_and_in_order(run_dir: Path) -> None:
    batches = [tricky_frame(0), tricky_frame(100, 7), tricky_frame(200)]
    write(run_dir, batches, xlsx=False)
    back = read_csv(run_dir / "report.csv")
    expected = as_text(neutralize(pl.concat(batches)))
    assert back.columns == COLUMNS
    assert back.equals(expected)
    # empty string and null survive as different values
    assert back["note"][0] is None and back["note"][1] == ""


def test_csv_bytes_bom_crlf_and_quoting(run_dir: Path) -> None:
    frame = pl.DataFrame(
        {"a": ['q"q', "x,y", "l1\nl2", "", None, "plain"], "n": [1, 2, 3, 4, 5, 6]}
    )
    write(run_dir, [frame], xlsx=False)
    raw = (run_dir / "report.csv").read_bytes()
    # BOM: Excel reads UTF-8 only with it
    assert raw.startswith(b"\xef\xbb\xbfa,n\r\n")
    assert raw[3:] == b'a,n\r\n"q""q",1\r\n"x,y",2\r\n"l1\nl2",3\r\n"",4\r\n,5\r\nplain,6\r\n'
    # the standard library reads the same table
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [
        ["a", "n"],
        ['q"q', "1"],
        ["x,y", "2"],
        ["l1\nl2", "3"],
        ["", "4"],
        ["", "5"],
        ["plain", "6"],
    ]


def test_risky_header_is_defused(run_dir: Path) -> None:
    frame = pl.DataFrame({"=cmd()": ["a"], "ok": ["b"]})
    write(run_dir, [frame])
    assert read_csv(run_dir / "report.csv").columns == ["'=cmd()", "ok"]
    ws = openpyxl.load_workbook(run_dir / "report.xlsx").active
    assert ws is not None
    header = ws["A1"]
    assert header.value == "=cmd()" and header.data_type == "s"
    assert header.quotePrefix and header.font.b
    assert ws["B1"].font.b and not ws["B1"].quotePrefix


def test_empty_report_has_header_only(run_dir: Path) -> None:
    with ReportWriter(run_dir, COLUMNS, xlsx=True) as writer:
        writer.write(tricky_frame().head(0))
        assert writer.rows_written == 0
    back = read_csv(run_dir / "report.csv")
    assert back.columns == COLUMNS and back.height == 0
    assert sheet_values(run_dir / "report.xlsx") == {"report": [COLUMNS]}


# -- XLSX --------------------------------------------------------------------------------


def test_xlsx_values_text_and_numbers(run_dir: Path) -> None:
    batches = [tricky_frame(0), tricky_frame(50, 5)]
    write(run_dir, batches)
    book = openpyxl.load_workbook(run_dir / "report.xlsx")
    assert book.sheetnames == ["report"]
    ws = book["report"]
    rows = list(ws.iter_rows())
    assert [c.value for c in rows[0]] == COLUMNS
    assert all(c.font.b for c in rows[0])
    assert ws.freeze_panes == "A2"
    data = pl.concat(batches)
    assert len(rows) == data.height + 1
    for cells, expected in zip(rows[1:], data.iter_rows(named=True), strict=True):
        for cell, name in zip(cells, COLUMNS, strict=True):
            assert cell.data_type != "f"
            value = expected[name]
            if name in ("row", "attempts"):
                assert cell.value == value and cell.data_type == "n"
            elif "_x" in (value or "") or re.search(r"[\x00-\x08\x0b-\x1f]", value or ""):
                continue  # openpyxl does not decode Excel's _xHHHH_ escapes; fastexcel does
            else:
                assert cell.value == xlsx_expected(value), name
                assert cell.value is None or isinstance(cell.value, str)
    # "0044…" and 13+ digit numbers stay text
    assert ws["A2"].value == "8613800000000" and ws["A2"].data_type == "s"
    assert ws["B3"].value == "0044123456789" and ws["B3"].data_type == "s"


def test_xlsx_reads_back_exactly_with_fastexcel_and_polars(run_dir: Path) -> None:
    batches = [tricky_frame(0), tricky_frame(7, 30)]
    write(run_dir, batches)
    expected = as_text(pl.concat(batches)).with_columns(
        pl.col(c).map_elements(xlsx_expected, return_dtype=pl.String) for c in COLUMNS
    )
    sheet = fastexcel.read_excel(run_dir / "report.xlsx").load_sheet(0, dtypes="string")
    assert sheet.to_polars().equals(expected)
    via_polars = pl.read_excel(run_dir / "report.xlsx", infer_schema_length=0)
    assert via_polars.columns == COLUMNS and via_polars.height == expected.height
    assert via_polars["phone"].to_list() == expected["phone"].to_list()


RISKY_VALUES = ["=1+2", "+8613812345678", "-x", "@a", "  =b", "\u00a0-c", "\tt", "ok\n=d"]


def test_xlsx_risky_cells_are_text_with_quote_prefix(run_dir: Path) -> None:
    safe = ["plain", "8613812345678", "a=b"]
    frame = pl.DataFrame({"v": RISKY_VALUES + safe, "n": list(range(-1, len(RISKY_VALUES) + 2))})
    frame = frame.with_columns(big=pl.Series([10**15, -(10**16)] + [1] * (frame.height - 2)))
    write(run_dir, [frame])
    ws = openpyxl.load_workbook(run_dir / "report.xlsx").active
    assert ws is not None
    cells = [row[0] for row in ws.iter_rows(min_row=2)]
    assert [c.value for c in cells] == RISKY_VALUES + safe  # visible text unchanged
    assert all(c.data_type == "s" for c in cells)
    assert [bool(c.quotePrefix) for c in cells] == [True] * len(RISKY_VALUES) + [False] * len(safe)
    # negative numbers stay numbers; integers Excel cannot hold exactly become text
    assert ws["B2"].value == -1 and ws["B2"].data_type == "n"
    assert ws["C2"].value == "1000000000000000" and ws["C2"].data_type == "s"
    assert ws["C3"].value == "-10000000000000000" and ws["C3"].quotePrefix
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)


def test_xlsx_package_is_well_formed_without_zip64(run_dir: Path) -> None:
    write(run_dir, [tricky_frame()])
    with zipfile.ZipFile(run_dir / "report.xlsx") as zf:
        assert zf.testzip() is None
        names = set(zf.namelist())
        assert {
            "[Content_Types].xml",
            "_rels/.rels",
            "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels",
            "xl/styles.xml",
            "xl/worksheets/sheet1.xml",
        } <= names
        for info in zf.infolist():
            # Excel accepts only a strict ZIP64 form; the writer never needs it.
            assert info.extract_version < 45, info.filename
            ElementTree.fromstring(zf.read(info))
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet and "<f " not in sheet


def test_xlsx_long_text_is_cut_at_excel_limit(run_dir: Path) -> None:
    long = "é" * 40_000
    write(run_dir, [pl.DataFrame({"t": [long]})])
    assert read_csv(run_dir / "report.csv")["t"][0] == long
    assert sheet_values(run_dir / "report.xlsx")["report"][1] == [long[:32_767]]


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def test_xlsx_cells_are_cut_by_utf16_units_and_the_row_says_so(run_dir: Path) -> None:
    emoji = "😀" * 16_384  # 16,384 code points, 32,768 UTF-16 units: one too many for Excel
    texts = [
        emoji,
        "a" * 32_766 + "😀",  # the cut falls inside the surrogate pair: both halves go
        "😀" * 16_383 + "a",  # exactly 32,767 units: kept whole
        "short",
    ]
    frame = pl.DataFrame(
        {
            "bio": texts,
            "other": [None, "😀" * 20_000, None, None],
            "error": [None, "bad number", None, None],
        }
    )
    with ReportWriter(run_dir, frame.columns, xlsx=True, note_column="error") as writer:
        writer.write(frame)

    assert read_csv(run_dir / "report.csv").equals(frame)  # the CSV keeps everything whole
    rows = sheet_values(run_dir / "report.xlsx")["report"][1:]
    assert [utf16_units(r[0]) for r in rows] == [32_766, 32_766, 32_767, 5]
    assert rows[0][0] == "😀" * 16_383
    assert rows[1][0] == "a" * 32_766
    assert rows[2][0] == texts[2] and rows[3][0] == "short"
    assert rows[1][1] == "😀" * 16_383
    note = "cut to 32,767 characters (Excel's limit); report.csv has the whole text"
    assert rows[0][2] == f"XLSX cell A2 {note}"
    assert rows[1][2] == f"bad number; XLSX cells A3, B3 {note}"
    assert rows[2][2] is None and rows[3][2] is None


def test_xlsx_continues_on_next_sheets(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(XlsxSink, "max_rows", 4)  # header + 3 data rows per sheet
    frame = pl.DataFrame({"v": [f"r{i}" for i in range(10)], "i": list(range(10))})
    with ReportWriter(run_dir, frame.columns, xlsx=True, sheet_name="x" * 31) as writer:
        writer.write(frame.head(2))
        writer.write(frame.slice(2))
    sheets = sheet_values(run_dir / "report.xlsx")
    assert list(sheets) == ["x" * 31, "x" * 29 + "_2", "x" * 29 + "_3", "x" * 29 + "_4"]
    assert all(rows[0] == ["v", "i"] for rows in sheets.values())
    assert [len(rows) for rows in sheets.values()] == [4, 4, 4, 2]
    data = [row for rows in sheets.values() for row in rows[1:]]
    assert data == [[f"r{i}", i] for i in range(10)]
    assert read_csv(run_dir / "report.csv").height == 10


def test_xlsx_sheet_also_ends_before_zip64_size(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(XlsxSink, "max_part_bytes", 1_500)
    frame = pl.DataFrame({"v": [f"value {i} " + "x" * 50 for i in range(60)]})
    write(run_dir, [frame.head(25), frame.slice(25)])
    sheets = sheet_values(run_dir / "report.xlsx")
    assert len(sheets) > 3
    assert [row[0] for rows in sheets.values() for row in rows[1:]] == frame["v"].to_list()
    with zipfile.ZipFile(run_dir / "report.xlsx") as zf:
        sizes = [i.file_size for i in zf.infolist() if i.filename.startswith("xl/worksheets/")]
    assert max(sizes) <= 1_500 + 200  # limit + closing tags


def test_other_dtypes_are_written_as_text(run_dir: Path) -> None:
    frame = pl.DataFrame(
        {
            "none": pl.Series([None, None], dtype=pl.Null),
            "flag": [True, False],
            "ratio": [-1.5, 2.0],
            "day": [date(2026, 1, 2), None],
            "big": pl.Series([2**64 - 1, 7], dtype=pl.UInt64),
        }
    )
    write(run_dir, [frame])
    assert read_csv(run_dir / "report.csv").rows() == [
        (None, "true", "-1.5", "2026-01-02", str(2**64 - 1)),
        (None, "false", "2.0", None, "7"),
    ]
    assert sheet_values(run_dir / "report.xlsx")["report"][1:] == [
        [None, "true", "-1.5", "2026-01-02", str(2**64 - 1)],
        [None, "false", "2.0", None, 7],
    ]


@pytest.mark.parametrize("name", ["", "x" * 32, "a/b", "q?", "'quoted'", "History"])
def test_bad_sheet_name_rejected(run_dir: Path, name: str) -> None:
    with pytest.raises(ValueError, match="sheet name"):
        ReportWriter(run_dir, ["a"], xlsx=True, sheet_name=name)
    assert list(run_dir.iterdir()) == []


# -- atomicity, permissions, misuse ------------------------------------------------------


def test_exception_leaves_no_files(run_dir: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        ReportWriter(run_dir, COLUMNS, xlsx=True) as writer,
    ):
        writer.write(tricky_frame())
        raise RuntimeError("boom")
    assert list(run_dir.iterdir()) == []


def test_exception_keeps_previous_report(run_dir: Path) -> None:
    write(run_dir, [tricky_frame()])
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    assert set(before) == {"report.csv", "report.xlsx"}
    with pytest.raises(KeyboardInterrupt), ReportWriter(run_dir, COLUMNS, xlsx=True) as writer:
        writer.write(tricky_frame(5))
        raise KeyboardInterrupt
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before


def test_failed_write_aborts(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (run_dir / "report.csv").write_text("old")

    def disk_full(self: object, frame: pl.DataFrame) -> None:
        raise OSError(28, "No space left on device")

    writer = ReportWriter(run_dir, COLUMNS, xlsx=True)
    writer.write(tricky_frame())
    monkeypatch.setattr(XlsxSink, "write", disk_full)
    with pytest.raises(OSError, match="No space"):
        writer.write(tricky_frame())
    # a half-written report must never be committed
    with pytest.raises(RuntimeError, match="aborted"):
        writer.close()
    assert [p.name for p in run_dir.iterdir()] == ["report.csv"]
    assert (run_dir / "report.csv").read_text() == "old"


def test_swallowed_write_error_still_fails_the_with(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object, frame: pl.DataFrame) -> None:
        raise OSError("broken pipe")

    monkeypatch.setattr(XlsxSink, "write", broken)
    with pytest.raises(RuntimeError, match="aborted"):
        with ReportWriter(run_dir, COLUMNS, xlsx=True) as writer:
            with pytest.raises(OSError, match="broken"):
                writer.write(tricky_frame())
    assert list(run_dir.iterdir()) == []


def test_wrong_columns_rejected(run_dir: Path) -> None:
    with ReportWriter(run_dir, COLUMNS, xlsx=False) as writer:
        with pytest.raises(ValueError, match="columns"):
            writer.write(tricky_frame().select(reversed(COLUMNS)))
        writer.write(tricky_frame())
    assert read_csv(run_dir / "report.csv").height == len(TRICKY)
    with pytest.raises(RuntimeError, match="closed"):
        writer.write(tricky_frame())


def test_invalid_columns_rejected(run_dir: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        ReportWriter(run_dir, ["a", "a"], xlsx=False)
    with pytest.raises(ValueError, match="at least one"):
        ReportWriter(run_dir, [], xlsx=False)


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_files_are_private(run_dir: Path) -> None:
    (run_dir / "report.csv").write_text("old")
    os.chmod(run_dir / "report.csv", 0o644)
    write(run_dir, [tricky_frame()])
    write_json_atomic(run_dir / "summary.json", {"rows": 1})
    for name in ("report.csv", "report.xlsx", "summary.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name


def test_write_json_atomic(run_dir: Path) -> None:
    from campaigner.statuses import Status

    path = run_dir / "summary.json"
    write_json_atomic(path, {"name": "Zoë", "dir": run_dir, "status": Status.SENT, "n": 3})
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "name": "Zoë",
        "dir": str(run_dir),
        "status": "sent",
        "n": 3,
    }
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    with pytest.raises(ValueError, match="JSON"):
        write_json_atomic(path, {"nan": float("nan")})
    assert path.read_bytes() == before
    assert [p.name for p in run_dir.iterdir()] == ["summary.json"]


# -- property: any text round-trips ------------------------------------------------------

# Characters plus the fragments that matter to the encoders.
FRAGMENTS = [
    "_x",
    "_x0041_",
    "_x005F_",
    "0041",
    "_",
    "\r",
    "\n",
    "\r\n",
    " ",
    "\u00a0",
    "\t",
    "=",
    "+",
    "-",
    "@",
    "'",
    '"',
    ",",
    "&",
    "<",
    ">",
    "\x00",
    "\x0b",
    "\ufffe",
]
cell_text = st.lists(
    st.sampled_from(FRAGMENTS) | st.text(st.characters(codec="utf-8"), max_size=4),
    max_size=8,
).map("".join)
cells = st.none() | cell_text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(cells, cells), min_size=1, max_size=12), st.integers(1, 5))
def test_random_text_round_trips(rows: list[tuple[str | None, str | None]], batch: int) -> None:
    frame = pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String}, orient="row")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        write(run_dir, [frame.slice(i, batch) for i in range(0, frame.height, batch)])

        back = read_csv(run_dir / "report.csv")
        for col in ("a", "b"):
            for original, read in zip(frame[col], back[col], strict=True):
                if original is None:
                    assert read is None
                    continue
                assert read is not None
                if risky_by_spec(original):
                    assert read == "'" + original
                # the prefix is the only change, and only where it is needed
                unprefixed = read[1:] if read != original else read
                assert unprefixed == original
                assert not starts_risky(read)

        sheet = fastexcel.read_excel(run_dir / "report.xlsx").load_sheet(0, dtypes="string")
        got = sheet.to_polars()
        # Readers stop at the last non-empty row, so trailing all-empty rows are not seen.
        padding = [None] * (frame.height - got.height)
        for col in ("a", "b"):
            assert got[col].to_list() + padding == [xlsx_expected(v) for v in frame[col]]
        book = openpyxl.load_workbook(run_dir / "report.xlsx")
        assert not any(c.data_type == "f" for ws in book for row in ws.iter_rows() for c in row)


# -- input columns of any name -----------------------------------------------------------

RESULT_NAMES = ["row", "status", "To", "MessageId", "Code", "Message", "RequestId", "attempts"]
# Every result column, names this code base has used internally, and names polars or a join
# would read specially. Input columns carry them unchanged; result columns move aside.
ANY_NAMES = [
    "phone", *RESULT_NAMES, "error",
    "__row", "__issue", "__status", "__to", "__error", "__render_error", "__to_raw",
    "__to_error", "__call_error", "__f", "__key", "__first", "__first_here", "__slot:To",
    "__k", "__v", "__e", "__state", "__jerror", "status__o", "__o", "e0", "f", "x",
    "status (result)", "^.*$", "count",
]  # fmt: skip
COLLIDING_CAMPAIGN = """\
name = "collide"
input = "list.csv"
[send]
default_region = "CN"
[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "744c4b5c79c9432497a075bdfca3****"
Language = "en"
[message.TemplateParams]
plain = "{{ status }}"
jinja = "{{ __v | upper }}{{ __render_error }}"
"""


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    return subprocess.run(
        [sys.executable, "-m", "campaigner", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("command", ["preview", "send"])
def test_input_columns_of_any_name_are_kept_and_results_move_aside(
    tmp_path: Path, command: str
) -> None:
    header = ANY_NAMES
    rows = [
        ["8613812345678", *(f"a{i} =x" for i in range(1, len(header)))],
        ["0086 138 1234 5678", *(f"b{i}" for i in range(1, len(header)))],
        ["not a phone", *(f"c{i}" for i in range(1, len(header)))],
    ]
    with (tmp_path / "list.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    (tmp_path / "campaign.toml").write_text(COLLIDING_CAMPAIGN)
    out = tmp_path / "out"
    extra = ["--sandbox", "--yes"] if command == "send" else []
    result = run_cli(command, str(tmp_path / "campaign.toml"), "--out", str(out), "--format",
                     "xlsx", *extra)  # fmt: skip
    assert result.returncode == 3, result.stderr  # some rows are not sent, on purpose
    assert "internal error" not in result.stderr
    if command == "preview":  # the templates read the input's columns, not ours
        assert '\\"plain\\":\\"a2 =x\\"' in result.stdout
        v, render_error = header.index("__v"), header.index("__render_error")
        assert f'\\"jinja\\":\\"A{v} =Xa{render_error} =x\\"' in result.stdout
    [run] = [p for p in out.iterdir() if p.is_dir()]  # beside the workspace stores

    results = [*(f"{name} (result)" for name in RESULT_NAMES), "error (result)"]
    results[1] = "status (result) (result)"  # the input has a "status (result)" already
    results += RESULT_COLUMNS[RESULT_COLUMNS.index("error") + 1 :]  # names the input lacks
    sent = "sent" if command == "send" else "would_send"
    with (run / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        report = list(csv.reader(f))
    assert report[0] == [*header, *results]
    for got, given_row in zip(report[1:], rows, strict=True):
        assert got[: len(header)] == given_row  # byte for byte
    assert [r[len(header) : len(header) + 3] for r in report[1:]] == [
        ["2", sent, "8613812345678"],
        ["3", "duplicate", "8613812345678"],
        ["4", "invalid", "not a phone"],
    ]
    assert report[2][report[0].index("error (result)")] == "same recipient as row 2"
    if command == "send":
        assert report[1][len(header) + 3] and report[1][len(header) + 4] == "OK"

    sheet = [list(r) for r in openpyxl.load_workbook(run / "report.xlsx").worksheets[0].values]
    assert sheet[0] == [*header, *results]
    for got_cells, given_row in zip(sheet[1:], rows, strict=True):
        assert got_cells[: len(header)] == given_row
    assert [r[len(header) + 1] for r in sheet[1:]] == [sent, "duplicate", "invalid"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["by_status"] == {sent: 1, "duplicate": 1, "invalid": 1}


# A full disk, for real: RLIMIT_FSIZE makes the kernel fail writes past the limit (EFBIG,
# with SIGXFSZ ignored), in a child process so the limit touches nothing else.
FULL_DISK_SCRIPT = """
import json, os, resource, signal, sys
from pathlib import Path
import polars as pl
from campaigner.report import ReportWriter, write_json_atomic

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
base = Path(sys.argv[1])
frame = pl.DataFrame({"phone": [f"86138{i:08d}" for i in range(2000)], "note": ["x" * 90] * 2000})
outcomes = []
for limit in [0, 1, 3, 100, *range(1_000, 300_000, 9_973)]:
    folder = base / str(limit)
    folder.mkdir()
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    error = None
    try:
        write_json_atomic(folder / "summary.json", {"rows": frame.height, "pad": "y" * 500})
        with ReportWriter(folder, frame.columns, xlsx=True) as writer:
            writer.write(frame.head(1000))
            writer.write(frame.slice(1000))
    except OSError as exc:  # polars reports it without an errno
        error = str(exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    outcomes.append([limit, error, sorted(os.listdir(folder))])
print(json.dumps(outcomes))
"""


def test_a_full_disk_leaves_no_temporary_files(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    outcomes = json.loads(result.stdout)
    done = {"report.csv", "report.xlsx", "summary.json"}
    for limit, error, names in outcomes:
        assert not [n for n in names if n.endswith(".tmp")], (limit, names)
        # Either a write failed and left nothing of its own, or all of it fitted.
        assert set(names) == (done if error is None else set(names) & {"summary.json"})
        assert error is None or limit > 600 or names == []  # summary.json failed too
    assert outcomes[0][1] is not None and outcomes[-1][1] is None  # both cases were seen


def small_campaign(folder: Path) -> Path:
    rows = [["phone", "status"], ["8613812345678", "a"], ["8613812345679", "b"]]
    with (folder / "list.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    (folder / "campaign.toml").write_text(COLLIDING_CAMPAIGN.split("jinja =")[0])
    return folder / "campaign.toml"


def report_line(stdout: str) -> str:
    [line] = [x for x in stdout.splitlines() if x.startswith("Report:")]
    return line


def test_the_report_line_names_every_report_file(tmp_path: Path) -> None:
    campaign = small_campaign(tmp_path)
    preview = run_cli("preview", str(campaign), "--out", str(tmp_path / "p"))
    assert preview.returncode == 0, preview.stderr
    [run] = (tmp_path / "p").iterdir()
    assert report_line(preview.stdout) == f"Report: {run / 'report.csv'}"

    out = tmp_path / "s"
    send = run_cli(
        "send", str(campaign), "--sandbox", "--yes", "--format", "xlsx", "--out", str(out)
    )
    assert send.returncode == 0, send.stderr
    [run] = [p for p in out.iterdir() if p.is_dir()]  # beside the workspace stores
    assert report_line(send.stdout) == f"Report: {run / 'report.csv'}, {run / 'report.xlsx'}"

    # A CSV-only rebuild removes the older XLSX (it would be out of date) and says so.
    rebuilt = run_cli("report", str(run), "--format", "csv")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert report_line(rebuilt.stdout) == f"Report: {run / 'report.csv'}"
    assert not (run / "report.xlsx").exists()
    rebuilt = run_cli("report", str(run), "--format", "xlsx")
    assert report_line(rebuilt.stdout) == f"Report: {run / 'report.csv'}, {run / 'report.xlsx'}"


# -- wide reports --------------------------------------------------------------------------

WIDE_SCRIPT = """
import resource, sys
from pathlib import Path

# Far below what one expression per column needed (1 GB at 1,000 columns, 3 GB at 2,000),
# well above what the cell-wise encoders need (about 1.2 GB of address space here).
limit = 3 * 2**30
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import polars as pl
from campaigner.report import ReportWriter

columns = 16_384
cell = lambda i, j: f"r{i} c{j}" if j % 1000 else f"=r{i}\\nc{j}"
frame = pl.DataFrame({f"c{j}": [cell(i, j) for i in range(3)] for j in range(columns)})
with ReportWriter(Path(sys.argv[1]), frame.columns, xlsx=True) as writer:
    writer.write(frame)
"""


def test_a_report_as_wide_as_excel_allows_completes_in_bounded_memory(run_dir: Path) -> None:
    env = {**os.environ, "POLARS_MAX_THREADS": "2"}  # thread stacks count as address space
    subprocess.run(
        [sys.executable, "-c", WIDE_SCRIPT, str(run_dir)], env=env, timeout=600, check=True
    )
    rows = list(
        openpyxl.load_workbook(run_dir / "report.xlsx", read_only=True).worksheets[0].values
    )
    assert len(rows) == 4 and all(len(r) == 16_384 for r in rows)
    assert rows[0][-1] == "c16383" and rows[3][-1] == "r2 c16383"
    assert rows[2][1000] == "=r1\nc1000"  # text, never a formula
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        assert [len(r) for r in csv.reader(f)] == [16_384] * 4


def test_a_preview_notes_the_xlsx_cells_it_cut(tmp_path: Path) -> None:
    rows = [["phone", "status", "bio"], ["8613812345678", "a", "😀" * 16_384]]
    with (tmp_path / "list.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    (tmp_path / "campaign.toml").write_text(COLLIDING_CAMPAIGN.split("jinja =")[0])
    result = run_cli("preview", str(tmp_path / "campaign.toml"), "--format", "xlsx",
                     "--out", str(tmp_path / "out"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    [run] = (tmp_path / "out").iterdir()
    header, row = sheet_values(run / "report.xlsx")["report"]
    assert row[header.index("status (result)")] == "would_send"
    assert row[header.index("error")].startswith("XLSX cell C2 cut to 32,767 characters")
    with (run / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        [csv_header, csv_row] = list(csv.reader(f))
    assert csv_row[2] == rows[1][2] and csv_row[csv_header.index("error")] == ""


# -- XLSX layout: column widths, wrapped cells ------------------------------------------------


def column_widths(path: Path) -> list[float]:
    """The width of every column, from the first sheet's <cols> ranges."""
    with zipfile.ZipFile(path) as zf:
        sheet = ElementTree.fromstring(zf.read("xl/worksheets/sheet1.xml"))
    ns = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
    widths: list[float] = []
    for col in sheet.iterfind("m:cols/m:col", ns):
        assert int(col.get("min")) == len(widths) + 1 and col.get("customWidth") == "1"
        widths += [float(col.get("width"))] * (int(col.get("max")) - int(col.get("min")) + 1)
    return widths


def test_xlsx_columns_are_sized_from_header_and_values(run_dir: Path) -> None:
    frame = pl.DataFrame(
        {
            "phone": ["8613812345678", "861381234"],
            "status": ["would_send", "sent"],
            "note": ["x" * 500, None],  # capped
            "city": ["北京市朝阳区", None],  # wide characters count twice
            "lines": ["short\nthe longest line here\nmid", None],  # the widest line counts
            "a": [None, None],  # nothing but a short header: the minimum
            "b": [None, None],
            "attempts": pl.Series([1, 12], dtype=pl.Int64),
        }
    )
    write(run_dir, [frame])
    widths = column_widths(run_dir / "report.xlsx")
    assert len(widths) == frame.width
    phone, status, note, city, lines, a, b, attempts = widths
    assert 13 < phone <= 20 and 10 < status <= 16 and note == 60
    assert 12 < city <= 18  # 6 characters, each two columns wide
    assert len("the longest line here") < lines <= 30
    assert a == b == 4
    assert len("attempts") < attempts < 14


def test_xlsx_wraps_exactly_the_cells_with_line_breaks(run_dir: Path) -> None:
    frame = pl.DataFrame(
        {
            "plain": ["one line", "two\nlines", "=x\ny"],
            "multi\nline header": ["cr\ronly", None, "crlf\r\nend"],
        }
    )
    write(run_dir, [frame])
    sheet = openpyxl.load_workbook(run_dir / "report.xlsx").worksheets[0]
    wrapped = [[bool(c.alignment.wrap_text) for c in row] for row in sheet.iter_rows()]
    assert wrapped == [[False, True], [False, True], [True, False], [True, True]]
    header = sheet["B1"]
    assert header.font.b and header.value == "multi\nline header"
    risky = sheet["A4"]
    assert risky.quotePrefix and risky.alignment.wrap_text and risky.value == "=x\ny"
    assert not sheet["A2"].alignment.wrap_text and not sheet["A2"].quotePrefix


def test_a_report_too_wide_for_excel_is_still_written_as_csv(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pl.DataFrame([pl.Series(f"c{j}", ["v"]) for j in range(16_385)])
    write(run_dir, [frame])
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.csv"]
    assert read_csv(run_dir / "report.csv").shape == (1, 16_385)
    assert "report.xlsx not written: the report has 16,385 columns" in caplog.text


def test_wide_reports_are_encoded_like_narrow_ones(tmp_path: Path) -> None:
    # Wide frames take another encoding path (all cells in one expression).
    narrow = tricky_frame()
    copies = [narrow.rename(lambda c, k=k: f"{c} {k}") for k in range(1, 10)]
    wide = pl.concat([narrow, *copies], how="horizontal")
    assert wide.width >= 64
    for name, frame in (("n", narrow), ("w", wide)):
        (tmp_path / name).mkdir()
        write(tmp_path / name, [frame])

    def csv_rows(folder: Path) -> list[list[str]]:
        with (folder / "report.csv").open(encoding="utf-8-sig", newline="") as f:
            return list(csv.reader(f))

    for short, long in zip(csv_rows(tmp_path / "n"), csv_rows(tmp_path / "w"), strict=True):
        assert long[: narrow.width] == short
        assert long[narrow.width : 2 * narrow.width] == short or short == COLUMNS

    def cells(folder: Path) -> list[list[tuple[object, bool, bool, bool]]]:
        sheet = openpyxl.load_workbook(folder / "report.xlsx").worksheets[0]
        return [
            [
                (c.value, bool(c.quotePrefix), bool(c.alignment.wrap_text), bool(c.font.b))
                for c in row
            ]
            for row in sheet.iter_rows()
        ]

    for short, long in zip(cells(tmp_path / "n"), cells(tmp_path / "w"), strict=True):
        assert long[: narrow.width] == short
        assert [c[1:] for c in long[narrow.width : 2 * narrow.width]] == [c[1:] for c in short]
