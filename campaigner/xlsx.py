"""Reading XLSX recipient lists: hostile-file checks, then every cell as the user sees it.

The public entry point is ``readers.open_input``; this module holds the XLSX half of it
(the CSV half and the shared helpers live in ``readers``). Limits are read from
``readers`` at call time, so there is one place that states them.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import IO, Any

import polars as pl

from campaigner import readers
from campaigner.errors import EmptyInputError
from campaigner.readers import (
    ISSUE_COLUMN,
    ROW_COLUMN,
    InputTable,
    _column_number,
    _fail,
    _is_panic,
    _looks_like_html,
    _nonblank,
    _ole_problem,
    _unique_names,
    column_letter,
)

__all__ = ("open_xlsx", "XlsxData")


@dataclass(frozen=True, slots=True)
class XlsxData:
    frame: pl.DataFrame


@dataclass(frozen=True, slots=True)
class _SheetEntry:
    name: str
    part: str | None
    kind: str  # relationship type: "worksheet", "chartsheet", ... or "?"
    visible: bool


# Cells whose fastexcel text must be replaced, one frame per scanned part:
# row and col (1-based), ref ("C7"), kind ("e" error, "b" boolean, "f" formula
# without a cached value, "n" number to render ourselves, "p" number in a percent
# format), raw <v> text and style (the cell's s="..." for "p", else null).
_SPECIAL_SCHEMA = {
    "row": pl.Int64,
    "col": pl.Int64,
    "ref": pl.String,
    "kind": pl.String,
    "raw": pl.String,
    "style": pl.Int64,
}

# Percent number formats: style index -> (fewest, most) decimals shown.
_Percents = dict[int, tuple[int, int]]
_BUILTIN_PERCENT = {9: "0%", 10: "0.00%"}


@dataclass(slots=True)
class _ScanState:
    pattern: str = ""
    prefix: str = ""
    max_col: int = 26  # exact once a reference beyond column Z is seen
    max_row: int = 99_999  # exact once a reference beyond row 99,999 is seen
    irregular: bool = False  # some cells lack r="..."; bounds come from counting
    percents: _Percents = field(default_factory=dict)
    row_cursor: int = 0  # last row seen while counting (carries across parts)
    specials: list[pl.DataFrame] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _LoadedSheet:
    frame: pl.DataFrame  # fastexcel output; row i is sheet row i + 1
    columns: tuple[int, ...]  # 1-based sheet column of each frame column
    specials: pl.DataFrame  # _SPECIAL_SCHEMA
    percents: _Percents  # decimals of the percent styles


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


def open_xlsx(path: Path, size: int, head: bytes, sheet: str | int | None) -> InputTable:
    if head.startswith(readers._OLE_MAGIC):
        raise _fail(path, _ole_problem(path))
    if not head.startswith(readers._ZIP_MAGICS):
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
    if size > readers.MAX_XLSX_FILE_BYTES:
        raise _fail(
            path,
            f"is too large ({size // readers._MiB} MiB; the limit for XLSX is "
            f"{readers.MAX_XLSX_FILE_BYTES // readers._MiB} MiB). Save it as CSV instead.",
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
        percents = _percent_styles(zf, names, workbook_part)
        scan = _scan_sheet(zf, names[entry.part], percents)
    return entry, _load_sheet(path, entry, scan, date_shift)


def _check_zip_entries(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > readers.MAX_ZIP_ENTRIES:
        raise _HostileError(f"the zip has {len(infos)} entries (limit {readers.MAX_ZIP_ENTRIES})")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise _HostileError("its zip entries are encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _HostileError("it uses an unsupported zip compression method")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > readers.RATIO_CHECK_MIN_BYTES and ratio > readers.MAX_COMPRESSION_RATIO:
            raise _HostileError(
                f"{info.filename} expands {ratio:.0f}:1 to {info.file_size // readers._MiB} MiB "
                "(a decompression bomb)"
            )
    if total > readers.MAX_UNCOMPRESSED_BYTES:
        mib = readers._MiB
        raise _HostileError(
            f"it expands to {total // mib} MiB (limit {readers.MAX_UNCOMPRESSED_BYTES // mib} MiB)"
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
            block = fh.read(4 * readers._MiB)
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
    root = _parse_xml(_read_small(zf, info, 16 * readers._MiB), rels_name)
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
    root = _parse_xml(_read_small(zf, names[workbook_part], 64 * readers._MiB), workbook_part)
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


def _percent_styles(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], workbook_part: str
) -> _Percents:
    """Cell styles (s="...") whose number format is a percentage, and its decimals."""
    part = next(
        (t for kind, t in _relationships(zf, names, workbook_part).values() if kind == "styles"),
        None,
    )
    if part is None or part not in names:
        return {}
    root = _parse_xml(_read_small(zf, names[part], 64 * readers._MiB), part)
    codes: dict[int, str] = dict(_BUILTIN_PERCENT)
    percents: _Percents = {}
    for element in root.iter():
        if _local(element.tag) == "numFmt":
            number = element.get("numFmtId", "")
            if number.isdigit():
                codes[int(number)] = element.get("formatCode", "")
        elif _local(element.tag) == "cellXfs":
            for index, xf in enumerate(x for x in element if _local(x.tag) == "xf"):
                number = xf.get("numFmtId", "0")
                code = codes.get(int(number)) if number.isdigit() else None
                decimals = _percent_decimals(code) if code else None
                if decimals is not None:
                    percents[index] = decimals
    return percents


def _percent_decimals(code: str) -> tuple[int, int] | None:
    """(fewest, most) decimals of a percent format's first section; None if not a percent.

    "0%" -> (0, 0), "0.00%" -> (2, 2), "0.0#%" -> (1, 2). Formats with date or time parts,
    or text, are not percentages here.
    """
    section = re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', code, maxsplit=1)[0]
    bare = re.sub(r'"[^"]*"|\\.|\[[^\]]*\]|_.|\*.', "", section)  # literals, colours, fills
    if "%" not in bare or re.search(r"[yYmMdDhHsS@eE]", bare):
        return None
    digits = bare.split("%", 1)[0]
    fraction = digits.split(".", 1)[1] if "." in digits else ""
    return fraction.count("0"), sum(fraction.count(c) for c in "0#?")


def _scan_sheet(zf: zipfile.ZipFile, info: zipfile.ZipInfo, percents: _Percents) -> _ScanState:
    """Stream the sheet XML once: bound the cell grid, find the cells that need care."""
    state = _ScanState(percents=percents)
    carry = b""
    first = True
    end_tag = b"</row>"
    with _open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * readers._MiB)
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
                state.pattern = _sheet_pattern(state.prefix, percents)
                _check_dimension(head, state.prefix.encode("ascii"))
            if block:
                cut = buf.rfind(end_tag)
                if cut < 0:
                    if len(buf) > readers._MAX_ROW_XML:
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
    if state.max_col > readers.MAX_SHEET_COLUMNS:
        raise _HostileError(
            f"the sheet uses {state.max_col} columns (Excel's limit is {readers.MAX_SHEET_COLUMNS})"
        )
    if state.max_row > readers.MAX_SHEET_ROWS:
        raise _HostileError(f"the sheet claims {state.max_row} rows (Excel's limit is 1,048,576)")
    if state.max_row * state.max_col > readers.MAX_SHEET_CELLS and not state.irregular:
        # max_row may still be the 99,999 default: count before refusing a wide sheet.
        state.max_row = _exact_max_row(zf, info, state.prefix.encode("ascii"))
    if state.max_row * state.max_col > readers.MAX_SHEET_CELLS:
        raise _HostileError(
            f"the sheet spans {state.max_row:,} rows x {state.max_col:,} columns, more than "
            f"{readers.MAX_SHEET_CELLS:,} cells; save it as CSV instead"
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
            block = fh.read(4 * readers._MiB)
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
        if match.group(1) and _column_number(match.group(1).upper()) > readers.MAX_SHEET_COLUMNS:
            raise _HostileError("the sheet's <dimension> goes beyond column XFD")
        if match.group(2) and int(match.group(2)) > readers.MAX_SHEET_ROWS:
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
        if state.max_col > readers.MAX_SHEET_COLUMNS or state.max_row > readers.MAX_SHEET_ROWS:
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


def _special_values(group: pl.DataFrame, before: pl.Series, percents: _Percents) -> pl.Series:
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
        text = (header[i] or "").strip(readers.CELL_EDGE_CHARS)
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
        _source=XlsxData(result),
    )
