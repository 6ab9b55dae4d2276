"""Reading an XLSX sheet as the text the user sees: fastexcel's cells, fixed where the
pre-scan found they differ, with the header, row numbers and row issues of every input.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path

import polars as pl

from campaigner.columns import ISSUE, ROW
from campaigner.errors import EmptyInputError
from campaigner.inputs.names import header_name, unique_names, unnamed_column
from campaigner.inputs.sniff import is_panic, refuse_non_xlsx, unreadable
from campaigner.inputs.xlsx_package import (
    Percents,
    RefusedWorkbook,
    SheetEntry,
    inspect_workbook,
    short_reason,
)
from campaigner.inputs.xlsx_scan import SPECIAL_SCHEMA, ScanState, scan_sheet
from campaigner.limits import column_letter

__all__ = ("XlsxSheet", "open_xlsx")


@dataclass(frozen=True, slots=True)
class XlsxSheet:
    """A read sheet: its name, column names and data rows (the RowSource of an XLSX file)."""

    sheet: str
    columns: tuple[str, ...]
    frame: pl.DataFrame

    def frames(self) -> Iterator[pl.DataFrame]:
        """The data rows: ``columns``, then ``ROW`` and ``ISSUE``, in input order."""
        yield self.frame


@dataclass(frozen=True, slots=True)
class _LoadedSheet:
    frame: pl.DataFrame  # fastexcel output; row i is sheet row i + 1
    columns: tuple[int, ...]  # 1-based sheet column of each frame column
    specials: pl.DataFrame  # SPECIAL_SCHEMA
    percents: Percents  # decimals of the percent styles


_DATE_LIKE = r"^(?:\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})"
_DATE_ONLY = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"
_DATE_TIME = r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$"
_TIME_ONLY = r"^1899-12-3[01] (\d{2}:\d{2}:\d{2}(?:\.\d+)?)$"
_FASTEXCEL_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
_FAR_DATE = r"^[+-]\d{5,}-\d{2}-\d{2}"


def open_xlsx(path: Path, size: int, head: bytes, sheet: str | int | None) -> XlsxSheet:
    """Check the workbook and read ``sheet`` (name or 0-based index; by default the first
    visible worksheet)."""
    refuse_non_xlsx(path, size, head)
    try:
        entry, loaded = _read_xlsx(path, sheet)
    except RefusedWorkbook as exc:
        raise unreadable(path, f"was refused: {exc}.") from None
    except NotImplementedError as exc:
        raise unreadable(
            path, f"uses a zip feature that is not supported ({short_reason(exc)})."
        ) from None
    except OSError as exc:
        raise unreadable(path, f"cannot be read ({exc.strerror or short_reason(exc)}).") from None
    except Exception as exc:  # zipfile/zlib/XML damage surfaces as many types (KeyError, ...)
        raise unreadable(path, f"is a damaged XLSX workbook ({short_reason(exc)}).") from None
    if loaded is None:
        raise EmptyInputError(f"Sheet {entry.name!r} of {path.name} is empty.")
    return _finish_xlsx(path, entry, loaded)


def _read_xlsx(path: Path, sheet: str | int | None) -> tuple[SheetEntry, _LoadedSheet | None]:
    with zipfile.ZipFile(path) as zf:
        workbook = inspect_workbook(path, zf, sheet)
        scan = scan_sheet(zf, workbook.part, workbook.percents)
    return workbook.entry, _load_sheet(path, workbook.entry, scan, workbook.date_shift)


def _load_sheet(
    path: Path, entry: SheetEntry, scan: ScanState, date_shift: int
) -> _LoadedSheet | None:
    import fastexcel

    try:
        reader = fastexcel.read_excel(str(path))
        sheet = reader.load_sheet(entry.name, header_row=None, skip_rows=0, dtypes="string")
        columns = tuple(info.absolute_index + 1 for info in sheet.available_columns())
        frame = sheet.to_polars()
    except BaseException as exc:
        if not isinstance(exc, Exception) and not is_panic(exc):
            raise
        message = short_reason(exc).removeprefix("calamine error: ")
        if "password" in message.lower():
            raise RefusedWorkbook("it is encrypted with a password") from None
        raise RefusedWorkbook(f"the workbook is damaged ({message})") from None
    if frame.width == 0 or frame.height == 0:
        return None
    if date_shift:
        frame = frame.with_columns(_shift_dates(name, date_shift) for name in frame.columns)
    specials = pl.concat(scan.specials) if scan.specials else pl.DataFrame(schema=SPECIAL_SCHEMA)
    return _LoadedSheet(frame, columns, specials, scan.percents)


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


def _render_percent(raw: str, decimals: tuple[int, int]) -> str | None:
    """A number in a percent format as Excel shows it: 0.5 in 0% is 50%, 0.125 is 13%."""
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    fewest, most = decimals
    with localcontext() as ctx:
        ctx.rounding = ROUND_HALF_UP  # Excel rounds halves away from zero
        ctx.prec = 15  # and shows no more than 15 significant digits
        value = +value
        ctx.prec = 400  # room for the whole number part of any double
        text = f"{value.scaleb(2).quantize(Decimal(1).scaleb(-most)):f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(fewest, "0")
    if whole == "-0" and not fraction.strip("0"):
        whole = "0"  # a small negative number shows as 0%
    return f"{whole}.{fraction}%" if fraction else f"{whole}%"


def _special_values(group: pl.DataFrame, before: pl.Series, percents: Percents) -> pl.Series:
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
    in_percent = (kind == "p").arg_true()
    if in_percent.len():
        cache: dict[tuple[str, int], str | None] = {}
        for key in zip(raw.gather(in_percent), group["style"].gather(in_percent), strict=True):
            if key not in cache:
                cache[key] = _render_percent(key[0], percents[key[1]])
        texts = [
            cache[key]
            for key in zip(raw.gather(in_percent), group["style"].gather(in_percent), strict=True)
        ]
        rendered.scatter(in_percent, pl.Series(texts, dtype=pl.String))
    boolean = pl.when(raw.str.to_lowercase().is_in(["1", "true"])).then(pl.lit("TRUE"))
    return pl.select(
        pl.when(kind == "p")
        .then(rendered)
        .when(kind == "n")
        .then(pl.when(is_date).then(None).otherwise(rendered))
        .when(kind == "b")
        .then(boolean.otherwise(pl.lit("FALSE")))
        .otherwise(None)
    ).to_series()


def _finish_xlsx(path: Path, entry: SheetEntry, loaded: _LoadedSheet) -> XlsxSheet:
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
        values = _special_values(group, before, loaded.percents)
        keep = values.is_not_null() | ~group["kind"].is_in(["n", "p"])
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
        text = header_name(header[i] or "")
        if not text:
            if not column_used[i]:
                continue  # no header and no data: not a column
            text = unnamed_column(loaded.columns[i] - 1)
        kept.append((name, text))
    if not kept:
        raise EmptyInputError(f"Sheet {entry.name!r} of {path.name} has no named columns.")
    final = unique_names([text for _, text in kept])

    issue = pl.Series(ISSUE, [None] * data.height, dtype=pl.String)
    if issue_rows:
        issue.scatter(
            [index - header_index - 1 for index in issue_rows],
            pl.Series([issues[index] for index in issue_rows], dtype=pl.String),
        )
    first_row = header_index + 2
    result = data.with_columns(
        pl.int_range(first_row, first_row + data.height, dtype=pl.Int64).alias(ROW),
        issue,
    )
    result = result.filter(data_used | issue.is_not_null()).select(
        *[pl.col(n).alias(t) for (n, _), t in zip(kept, final, strict=True)],
        ROW,
        ISSUE,
    )
    return XlsxSheet(sheet=entry.name, columns=tuple(final), frame=result)


def _nonblank(column: str) -> pl.Expr:
    return pl.col(column).str.contains(r"\S").fill_null(False)
