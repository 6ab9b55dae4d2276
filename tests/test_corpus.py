"""Every file of the shared bad-input corpus opens cleanly or fails with one InputError."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from campaigner.columns import ISSUE, ROW
from campaigner.errors import InputError
from campaigner.inputs import open_input
from tests.conftest import CORPUS

SKIP_NAMES = {"README.md", "MANIFEST.tsv"}


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        path
        for path in CORPUS.rglob("*")
        if path.is_file()
        and path.name not in SKIP_NAMES
        and "LICENSES" not in path.relative_to(CORPUS).parts
    )


FILES = corpus_files()


@pytest.mark.corpus
def test_corpus_is_not_empty() -> None:
    assert len(FILES) > 100


@pytest.mark.corpus
@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(CORPUS)) for p in FILES])
def test_corpus_file(path: Path) -> None:
    try:
        table = open_input(path)
    except InputError as exc:
        assert str(exc).strip(), f"{path}: empty message"
        assert "Traceback" not in str(exc)
        return
    assert len(set(table.columns)) == len(table.columns)
    assert not {ROW, ISSUE} & set(table.columns)
    previous = 0
    for batch in table.batches(batch_rows=1000):
        assert batch.columns == [*table.columns, ROW, ISSUE]
        assert batch.schema[ROW] == pl.Int64
        assert all(batch.schema[name] == pl.String for name in table.columns)
        numbers = batch[ROW].to_list()
        assert numbers == sorted(numbers) and numbers[0] > previous >= 0
        previous = numbers[-1]
        issues = batch[ISSUE].drop_nulls().to_list()
        assert all(isinstance(i, str) and i for i in issues)


# A few files whose outcome is known, so the walk above cannot pass by refusing everything.
KNOWN = [
    ("csv/duckdb/phonenumbers.csv", "ok", "+"),
    ("csv/duckdb/leading_zeros.csv", "ok", "0"),
    ("csv/csvkit/test_utf16_little.csv", "ok", ""),
    ("csv/duckdb/latin1.csv", "UnreadableInputError", "encoding"),
    ("csv/duckdb/header_only.csv", "EmptyInputError", "no data rows"),
    ("csv/duckdb/empty.csv", "EmptyInputError", "empty"),
    ("csv/tabulator-py/table.csv.html", "UnreadableInputError", "HTML"),
    ("csv/duckdb/line_too_long.csv.gz", "UnreadableInputError", "compressed"),
    ("xlsx/python-calamine/password.xlsx", "UnreadableInputError", "encrypted"),
    ("xlsx/calamine/pass_protected.xlsx", "UnreadableInputError", "encrypted"),
    ("xlsx/openpyxl/null_file.xlsx", "EmptyInputError", "empty"),
    ("xlsx/openpyxl/null_archive.xlsx", "UnreadableInputError", "workbook"),
    ("xlsx/calamine/issue_419.xlsx", "EmptyInputError", "no data rows"),
    ("xlsx/calamine/issue_530.xlsx", "ok", ""),
    ("xlsx/calamine/issue_174.xlsx", "ok", ""),
    ("other-formats/calamine/any_sheets.xls", "UnreadableInputError", ".xlsx"),
    ("other-formats/calamine/any_sheets.xlsb", "UnreadableInputError", "XLSB"),
    ("other-formats/calamine/any_sheets.ods", "UnreadableInputError", "ODS"),
]


@pytest.mark.corpus
@pytest.mark.parametrize(("name", "outcome", "needle"), KNOWN, ids=[k[0] for k in KNOWN])
def test_corpus_known_outcomes(name: str, outcome: str, needle: str) -> None:
    path = CORPUS / name
    if not path.exists():
        pytest.skip(f"{name} is not in this copy of the corpus")
    if outcome == "ok":
        table = open_input(path)
        values = [v for b in table.batches() for c in table.columns for v in b[c].drop_nulls()]
        assert values and any(v.startswith(needle) for v in values)
        return
    with pytest.raises(InputError) as info:
        open_input(path)
    assert type(info.value).__name__ == outcome
    assert needle in str(info.value)
