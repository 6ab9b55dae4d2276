"""Pre-scan of the chosen sheet's XML: bounds the cell grid calamine would build and finds
the cells whose text needs fixing (booleans, errors, formulas without values, numbers).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from campaigner.inputs.sniff import MIB
from campaigner.inputs.xlsx_package import Percents, RefusedWorkbook, open_member
from campaigner.limits import EXCEL_MAX_COLUMNS, EXCEL_MAX_ROWS

__all__ = ("MAX_SHEET_CELLS", "SPECIAL_SCHEMA", "ScanState", "scan_sheet")

MAX_SHEET_CELLS = 20_000_000
_MAX_ROW_XML = 64 * MIB

# Cells whose fastexcel text must be replaced, one frame per scanned part:
# row and col (1-based), ref ("C7"), kind ("e" error, "b" boolean, "f" formula
# without a cached value, "n" number to render ourselves, "p" number in a percent
# format), raw <v> text and style (the cell's s="..." for "p", else null).
SPECIAL_SCHEMA = {
    "row": pl.Int64,
    "col": pl.Int64,
    "ref": pl.String,
    "kind": pl.String,
    "raw": pl.String,
    "style": pl.Int64,
}


@dataclass(slots=True)
class ScanState:
    """What the scan found: grid bounds, percent styles, and the special cells."""

    pattern: str = ""
    prefix: str = ""
    max_col: int = 26  # exact once a reference beyond column Z is seen
    max_row: int = 99_999  # exact once a reference beyond row 99,999 is seen
    irregular: bool = False  # some cells lack r="..."; bounds come from counting
    percents: Percents = field(default_factory=dict)
    row_cursor: int = 0  # last row seen while counting (carries across parts)
    specials: list[pl.DataFrame] = field(default_factory=list)


_ATTR = re.compile(r"""([\w:.-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_REF = re.compile(r"^([A-Z]{1,12})([0-9]{1,12})$")
# A numeric <v> whose fastexcel text differs from our rendering: 16+ digits, 10+
# decimals, 16+ significant digits, an exponent, a tiny value, negative zero.
_NUMBER_CANDIDATE = (
    r"-?\d{16,}(?:\.\d*)?(?:[eE][-+]?\d+)?|-?\d*\.\d{10,}(?:[eE][-+]?\d+)?|-?\d{7,}\.\d+"
    r"|-?[\d.]+[eE][-+]?\d+|-?0\.0000\d*|-0(?:\.0*)?"
)


def _sheet_pattern(prefix: str, percent_styles: Iterable[int] = ()) -> str:
    """One Rust regex pass finds everything the pre-scan needs in a block of sheet XML."""
    p = re.escape(prefix)
    formula = rf"<{p}f[^>]*(?:/>|>[^<]*</{p}f>)"
    styles = "|".join(str(s) for s in sorted(percent_styles))
    percent = (
        # cells in a percent format (numbers among them are rendered as the user sees them)
        [
            rf"<{p}c\s[^>]*\bs\s*=\s*[\"'](?:{styles})[\"'][^>]*>\s*(?:{formula}\s*)?<{p}v>[^<]*</{p}v>"
        ]
        if styles
        else []
    )
    return "|".join(
        (
            r"<!(?:DOCTYPE|ENTITY)",
            *percent,
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


def scan_sheet(zf: zipfile.ZipFile, info: zipfile.ZipInfo, percents: Percents) -> ScanState:
    """Stream the sheet XML once: bound the cell grid, find the cells that need care."""
    state = ScanState(percents=percents)
    carry = b""
    first = True
    end_tag = b"</row>"
    with open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * MIB)
            buf = carry + block
            if first:
                first = False
                head = buf[:65536]
                if head.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in head[:256]:
                    raise RefusedWorkbook("the sheet XML is not UTF-8")
                found = re.search(rb"<(?:([A-Za-z_][\w.-]*):)?worksheet[\s>]", head)
                if found and found.group(1):
                    state.prefix = found.group(1).decode("ascii") + ":"
                    end_tag = b"</" + found.group(1) + b":row>"
                state.pattern = _sheet_pattern(state.prefix, percents)
                _check_dimension(head, state.prefix.encode("ascii"))
            if block:
                cut = buf.rfind(end_tag)
                if cut < 0:
                    if len(buf) > _MAX_ROW_XML:
                        raise RefusedWorkbook("a single sheet row is larger than 64 MiB")
                    carry = buf
                    continue
                cut += len(end_tag)
                part, carry = buf[:cut], buf[cut:]
            else:
                part, carry = buf, b""
            _scan_part(part, state)
            if not block:
                break
    if state.max_col > EXCEL_MAX_COLUMNS:
        raise RefusedWorkbook(
            f"the sheet uses {state.max_col} columns (Excel's limit is {EXCEL_MAX_COLUMNS})"
        )
    if state.max_row > EXCEL_MAX_ROWS:
        raise RefusedWorkbook(f"the sheet claims {state.max_row} rows (Excel's limit is 1,048,576)")
    if state.max_row * state.max_col > MAX_SHEET_CELLS and not state.irregular:
        # max_row may still be the 99,999 default: count before refusing a wide sheet.
        state.max_row = _exact_max_row(zf, info, state.prefix.encode("ascii"))
    if state.max_row * state.max_col > MAX_SHEET_CELLS:
        raise RefusedWorkbook(
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
    with open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * MIB)
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
            raise RefusedWorkbook("the sheet has an invalid <dimension>")
        if match.group(1) and _column_number(match.group(1).upper()) > EXCEL_MAX_COLUMNS:
            raise RefusedWorkbook("the sheet's <dimension> goes beyond column XFD")
        if match.group(2) and int(match.group(2)) > EXCEL_MAX_ROWS:
            raise RefusedWorkbook("the sheet's <dimension> goes beyond row 1,048,576")


def _scan_part(part: bytes, state: ScanState) -> None:
    text = part.decode("utf-8", errors="replace")
    found = pl.Series("m", [text]).str.extract_all(state.pattern).explode().drop_nulls()
    if found.len() == 0:
        return
    if found.str.starts_with("<!").any():
        raise RefusedWorkbook("the sheet declares a DTD or XML entities")
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
        style=tags.str.extract(rf"""\bs{quoted}([0-9]+)""").cast(pl.Int64, strict=False)
        if state.percents
        else pl.lit(None, pl.Int64),
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
    percent = pl.col("style").is_in(list(state.percents)).fill_null(False)
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
        .when((t == "n") & value.is_not_null() & (value != "") & percent)
        .then(pl.lit("p"))
        .when((t == "n") & value.is_not_null() & (value != ""))
        .then(pl.lit("n"))
    )
    specials = parts.select(
        "row",
        "col",
        "ref",
        kind.alias("kind"),
        value.str.strip_chars().fill_null("").alias("raw"),
        pl.when(percent).then(pl.col("style")).alias("style"),
    ).filter(pl.col("kind").is_not_null())
    if specials.height:
        state.specials.append(specials)
    if state.irregular:
        _scan_structure(part, state)


def _scan_structure(part: bytes, state: ScanState) -> None:
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
        if state.max_col > EXCEL_MAX_COLUMNS or state.max_row > EXCEL_MAX_ROWS:
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


def _column_number(letters: bytes) -> int:
    """Excel letters -> 1-based column number."""
    number = 0
    for ch in letters:
        number = number * 26 + (ch - 64)
    return number
