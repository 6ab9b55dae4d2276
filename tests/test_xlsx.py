"""Tests for campaigner.inputs.xlsx: real workbooks written by openpyxl, read through
open_input as the text a user sees in Excel."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import polars as pl
import pytest

from campaigner.columns import ISSUE, ROW
from campaigner.errors import EmptyInputError, UnreadableInputError
from campaigner.inputs import InputTable, open_input


def save(tmp_path: Path, workbook: openpyxl.Workbook, name: str = "list.xlsx") -> Path:
    path = tmp_path / name
    workbook.save(path)
    return path


def sheet_of(rows: list[list[object]]) -> openpyxl.Workbook:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    return workbook


def read(table: InputTable) -> list[dict[str, object]]:
    frame = pl.concat(list(table.batches(2)))
    assert frame.columns == [*table.columns, ROW, ISSUE]
    return frame.to_dicts()


def test_cells_read_as_shown(tmp_path: Path) -> None:
    workbook = sheet_of(
        [
            ["phone", "code", "amount", "big", "when", "at"],
            [
                8613812345678,
                "007",
                12.5,
                8613812345678901234,
                dt.date(2025, 2, 20),
                dt.time(10, 30),
            ],
        ]
    )
    table = open_input(save(tmp_path, workbook))
    assert table.kind == "xlsx" and table.sheet == "Sheet"
    assert table.columns == ("phone", "code", "amount", "big", "when", "at")
    [row] = read(table)
    assert row == {
        "phone": "8613812345678",  # a number, never 8.61381E+12 nor 8613812345678.0
        "code": "007",  # text keeps its leading zeros
        "amount": "12.5",
        "big": "8.61381E+18",  # Excel's General format for a huge integer
        "when": "2025-02-20",
        "at": "10:30:00",
        ROW: 2,
        ISSUE: None,
    }


def test_percent_format_as_excel_shows_it(tmp_path: Path) -> None:
    workbook = sheet_of([["share", "exact"], [0.5, 0.125]])
    sheet = workbook.active
    assert sheet is not None
    sheet["A2"].number_format = "0%"
    sheet["B2"].number_format = "0.00%"
    [row] = read(open_input(save(tmp_path, workbook)))
    assert (row["share"], row["exact"]) == ("50%", "12.50%")


def test_header_row_names_and_numbers(tmp_path: Path) -> None:
    # The header is the first non-blank row; an empty header cell over data is named by its
    # letter, an empty column is dropped, duplicates are renamed; rows keep Excel's numbers.
    workbook = sheet_of(
        [
            [],
            ["phone", None, "phone", None],
            ["1", "x", "2", None],
            [],
            ["3", None, "4", None],
        ]
    )
    table = open_input(save(tmp_path, workbook))
    assert table.columns == ("phone", "column_B", "phone_2")
    assert [(r["phone"], r["column_B"], r[ROW]) for r in read(table)] == [
        ("1", "x", 3),
        ("3", None, 5),
    ]


def test_booleans_and_error_cells(tmp_path: Path) -> None:
    workbook = sheet_of([["phone", "flag"], ["1", True], ["2", "=1/0"]])
    sheet = workbook.active
    assert sheet is not None
    sheet["B3"].value = "#DIV/0!"
    sheet["B3"].data_type = "e"
    rows = read(open_input(save(tmp_path, workbook)))
    assert (rows[0]["flag"], rows[0][ISSUE]) == ("TRUE", None)
    assert rows[1][ISSUE] == "cell B3 is an Excel error (#DIV/0!)"


def test_sheet_choice(tmp_path: Path) -> None:
    workbook = sheet_of([["col"], ["hidden"]])
    first = workbook.active
    assert first is not None
    first.title = "Old"
    first.sheet_state = "hidden"
    second = workbook.create_sheet("Main")
    second.append(["col"])
    second.append(["main"])
    path = save(tmp_path, workbook)
    assert read(open_input(path))[0]["col"] == "main"  # the first visible worksheet
    assert read(open_input(path, sheet="old"))[0]["col"] == "hidden"  # names fold case
    assert read(open_input(path, sheet=0))[0]["col"] == "hidden"
    with pytest.raises(
        UnreadableInputError, match=r"no sheet named 'Nope' \(sheets: 'Old', 'Main'\)"
    ):
        open_input(path, sheet="Nope")


def test_empty_and_mislabelled_workbooks(tmp_path: Path) -> None:
    with pytest.raises(EmptyInputError, match="has a header row but no data rows"):
        open_input(save(tmp_path, sheet_of([["phone"]])))
    fake = tmp_path / "fake.xlsx"
    fake.write_text("phone\n1\n")
    with pytest.raises(UnreadableInputError, match="not a zip archive.*rename it to .csv"):
        open_input(fake)
