"""The SpreadsheetML of report rows: cells, styles, Excel's cell limit and column widths,
built with vectorized polars string expressions over all cells at once."""

# Time and memory follow the number of cells up to Excel's 16,384 columns (``stack_cells``).
# Text is always an inline-string cell, so phone numbers and codes such as ``0044…`` stay
# exact text; integers below 10**15 are numbers. A risky value (same rule as the CSV) keeps
# its visible text and gets the ``quotePrefix`` style, so Excel does not turn it into a
# formula when the cell is edited. Column widths come from the header and the first rows
# (capped); a cell with a line break wraps. Excel's limits handled here:
#
# - a cell holds 32,767 UTF-16 units (an emoji counts 2): longer text is cut there, never
#   inside a character, and the row's note column (the report's ``error``) says which cells
#   were cut (the CSV keeps them whole);
# - an empty string and null are both an empty cell;
# - control characters XML 1.0 forbids, and CR, are written as Excel's ``_xHHHH_`` escapes,
#   and a literal ``_xHHHH`` is escaped as ``_x005F_xHHHH``, so Excel and calamine (fastexcel,
#   polars) read the original text back; openpyxl does not decode these escapes. The
#   noncharacters U+FFFE and U+FFFF are dropped.

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final

import polars as pl

from campaigner.limits import EXCEL_MAX_CELL_CHARS, column_letter
from campaigner.report.cells import STACK_WIDTH, stack_cells, unstack_cells
from campaigner.report.safety import is_risky

__all__ = (
    "NS_MAIN",
    "NS_PKG_REL",
    "NS_REL",
    "STYLES_XML",
    "XML_DECL",
    "cols_xml",
    "column_widths",
    "sheet_rows",
)

_ROW_MAJOR_WIDTH: Final = 1_024  # wider rows are joined from an array, not from columns
# Column widths (in widths of "0"): the widest line of the header and of a sample of the
# first rows, plus padding, within bounds. East Asian wide characters and emoji count 2.
_WIDTH_MIN: Final = 4.0
_WIDTH_MAX: Final = 60.0
_WIDE_CHARS: Final = (
    "[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua000-\ua4cf"
    "\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6"
    "\U0001f300-\U0001faff\U00020000-\U0003fffd]"
)

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

NS_MAIN: Final = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_REL: Final = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NS_PKG_REL: Final = "http://schemas.openxmlformats.org/package/2006/relationships"
XML_DECL: Final = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def _xf(index: int) -> str:
    attrs = f'numFmtId="0" fontId="{1 if index & _STYLE_HEADER else 0}" fillId="0" borderId="0"'
    attrs += ' xfId="0"' + (' applyFont="1"' if index & _STYLE_HEADER else "")
    attrs += ' quotePrefix="1"' if index & _STYLE_RISKY else ""
    if index & _STYLE_WRAP:
        return f'<xf {attrs} applyAlignment="1"><alignment wrapText="1"/></xf>'
    return f"<xf {attrs}/>"


STYLES_XML: Final = (
    f'{XML_DECL}<styleSheet xmlns="{NS_MAIN}">'
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
    text = stack_cells(frame)
    # Only a cell of more than half the limit in code points can exceed it.
    long = (text.str.len_chars() > EXCEL_MAX_CELL_CHARS // 2).fill_null(False)
    if not long.any():
        return frame
    positions = long.arg_true().to_list()
    updates: dict[int, str] = {}
    cut_refs: dict[int, list[str]] = {}
    for position, value in zip(positions, text.gather(positions).to_list(), strict=True):
        cut = _cut_utf16(value, EXCEL_MAX_CELL_CHARS)
        if cut != value:
            updates[position] = cut
            column, row = divmod(position, height)
            cut_refs.setdefault(row, []).append(f"{column_letter(column)}{first_row + row}")
    if note_index is not None:
        for row, refs in cut_refs.items():
            position = note_index * height + row
            note = (
                f"XLSX cell{'s' if len(refs) > 1 else ''} {', '.join(refs)} cut to "
                f"{EXCEL_MAX_CELL_CHARS:,} characters (Excel's limit); "
                "report.csv has the whole text"
            )
            current = updates.get(position, text[position])
            if current:
                note = "; " + note
            room = EXCEL_MAX_CELL_CHARS - _utf16_units(note)
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
    risky, wrap = is_risky(t), t.str.contains_any(["\n", "\r"])
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


def sheet_rows(
    frame: pl.DataFrame, first_row: int, *, header: bool = False, note_index: int | None = None
) -> pl.DataFrame:
    """One String column ``x`` holding the ``<row>`` XML of each row of ``frame``.

    ``note_index``: the column that tells, in the XLSX only, which cells were cut.
    """
    frame = _fit_frame(frame, first_row, note_index)
    width, height = frame.width, frame.height
    number = pl.int_range(first_row, first_row + pl.len(), dtype=pl.Int64).cast(pl.String)
    if width < STACK_WIDTH:
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
    cells_xml = pl.DataFrame({"t": stack_cells(frame)}).lazy().select(xml).collect().to_series()
    joined = _join_rows(cells_xml, width, height)
    return pl.DataFrame({"x": joined}).select(
        pl.concat_str(
            [pl.lit('<row r="'), number, pl.lit('">'), pl.col("x"), pl.lit("</row>")]
        ).alias("x")
    )


def _join_rows(cells: pl.Series, width: int, height: int) -> pl.Series:
    """Each row's cells (``cells`` as ``stack_cells`` makes them) joined, nulls left out."""
    if width <= _ROW_MAJOR_WIDTH:  # one concat_str over the columns: fastest when narrow
        return (
            unstack_cells(cells, width, height)
            .select(pl.concat_str(pl.all(), ignore_nulls=True))
            .to_series()
        )
    position = pl.int_range(0, width * height, dtype=pl.Int64, eager=True)
    row_major = cells.gather(position % width * height + position // width)
    return row_major.reshape((height, width)).arr.join("", ignore_nulls=True)


def _line_widths(cells: pl.Series, width: int, height: int) -> list[float]:
    """The widest line among each column's cells (``cells`` as ``stack_cells`` makes them)."""
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


def column_widths(columns: Sequence[str], sample: pl.DataFrame) -> list[float]:
    width = len(columns)
    header = _line_widths(pl.Series(list(columns), dtype=pl.String), width, 1)
    values = (
        _line_widths(stack_cells(sample), width, sample.height) if sample.height else [0.0] * width
    )
    # The header is bold, about a tenth wider.
    return [
        round(max(_WIDTH_MIN, min(max(h * 1.1, v) + 2, _WIDTH_MAX)), 1)
        for h, v in zip(header, values, strict=True)
    ]


def cols_xml(widths: list[float]) -> bytes:
    """``<cols>``, one ``<col>`` per run of equal widths."""
    parts, start = [], 0
    for end in range(1, len(widths) + 1):
        if end == len(widths) or widths[end] != widths[start]:
            width = widths[start]
            parts.append(f'<col min="{start + 1}" max="{end}" width="{width}" customWidth="1"/>')
            start = end
    return f"<cols>{''.join(parts)}</cols>".encode()
