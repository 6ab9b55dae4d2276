"""The XLSX zip package: hostile-file checks on the zip and its XML parts, the workbook's
sheets (which one is read, its date system) and the cell styles that are percentages.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from campaigner.inputs.sniff import MIB, unreadable

__all__ = (
    "MAX_COMPRESSION_RATIO",
    "MAX_UNCOMPRESSED_BYTES",
    "MAX_ZIP_ENTRIES",
    "RATIO_CHECK_MIN_BYTES",
    "Percents",
    "RefusedWorkbook",
    "SheetEntry",
    "Workbook",
    "inspect_workbook",
    "open_member",
    "short_reason",
)

# These bound what calamine may allocate: it has no limit of its own on decompressed size.
MAX_ZIP_ENTRIES = 10_000
MAX_UNCOMPRESSED_BYTES = 1024 * MIB
MAX_COMPRESSION_RATIO = 200
RATIO_CHECK_MIN_BYTES = 16 * MIB

# Percent number formats: style index -> (fewest, most) decimals shown.
Percents = dict[int, tuple[int, int]]
_BUILTIN_PERCENT = {9: "0%", 10: "0.00%"}
_DTD_MARKERS = (
    b"<!DOCTYPE",
    b"<!ENTITY",
    "<!DOCTYPE".encode("utf-16-le"),
    "<!DOCTYPE".encode("utf-16-be"),
    "<!ENTITY".encode("utf-16-le"),
    "<!ENTITY".encode("utf-16-be"),
)
_DAYS_1900_TO_1904 = 1462
_MAIN_NAMESPACES = (
    "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}",
    "{http://purl.oclc.org/ooxml/spreadsheetml/main}",
)


class RefusedWorkbook(Exception):
    """The workbook is refused; str() is the reason."""


@dataclass(frozen=True, slots=True)
class SheetEntry:
    """A sheet the workbook lists: name, XML part, relationship type, visibility."""

    name: str
    part: str | None
    kind: str  # relationship type: "worksheet", "chartsheet", ... or "?"
    visible: bool


@dataclass(frozen=True, slots=True)
class Workbook:
    """What the package says about the sheet to read."""

    entry: SheetEntry
    part: zipfile.ZipInfo  # the sheet's XML
    percents: Percents  # decimals of the percent styles
    date_shift: int  # days to add to calamine's dates (see _sheet_list)


def inspect_workbook(path: Path, zf: zipfile.ZipFile, sheet: str | int | None) -> Workbook:
    """Check the package and find the sheet to read; raises RefusedWorkbook."""
    infos = zf.infolist()
    _check_zip_entries(infos)
    # Some writers store Windows separators; calamine accepts them, so do we.
    names = {info.filename.replace("\\", "/"): info for info in infos}
    if not names:
        raise RefusedWorkbook("it is an empty zip archive, not a workbook")
    if "xl/workbook.bin" in names:
        raise RefusedWorkbook(
            "it is an Excel binary workbook (XLSB) with an .xlsx name; "
            "open it in Excel and save as .xlsx"
        )
    if "mimetype" in names:
        mimetype = _read_small(zf, names["mimetype"], 512)
        if b"opendocument" in mimetype:
            raise RefusedWorkbook(
                "it is an OpenDocument spreadsheet (ODS) with an .xlsx name; save it as .xlsx"
            )
    workbook_part = _workbook_part(zf, names)
    if workbook_part is None:
        raise RefusedWorkbook("it is a zip archive but not an Excel workbook")
    sheets, date_shift = _sheet_list(zf, names, workbook_part)
    entry = _choose_sheet(path, sheets, sheet)
    if entry.kind != "worksheet" or entry.part is None or entry.part not in names:
        what = "a chart sheet" if entry.kind == "chartsheet" else "not a table of cells"
        raise RefusedWorkbook(
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
    return Workbook(entry, names[entry.part], percents, date_shift)


def short_reason(exc: BaseException) -> str:
    """The first line of an exception's text, at most 200 characters."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return first[:200]


def _check_zip_entries(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_ZIP_ENTRIES:
        raise RefusedWorkbook(f"the zip has {len(infos)} entries (limit {MAX_ZIP_ENTRIES})")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise RefusedWorkbook("its zip entries are encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise RefusedWorkbook("it uses an unsupported zip compression method")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_CHECK_MIN_BYTES and ratio > MAX_COMPRESSION_RATIO:
            raise RefusedWorkbook(
                f"{info.filename} expands {ratio:.0f}:1 to {info.file_size // MIB} MiB "
                "(a decompression bomb)"
            )
    if total > MAX_UNCOMPRESSED_BYTES:
        mib = MIB
        raise RefusedWorkbook(
            f"it expands to {total // mib} MiB (limit {MAX_UNCOMPRESSED_BYTES // mib} MiB)"
        )


def open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> IO[bytes]:
    """A member's bytes, never more than its declared size."""
    # ZipExtFile never returns more than the declared size and checks the CRC at the end,
    # so a size that lies in the header ends in BadZipFile, not in a bomb.
    return zf.open(info)


def _read_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise RefusedWorkbook(f"{info.filename} is unexpectedly large ({info.file_size} bytes)")
    with open_member(zf, info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise RefusedWorkbook(f"{info.filename} is unexpectedly large")
    if any(marker in data for marker in _DTD_MARKERS):
        raise RefusedWorkbook(f"{info.filename} declares a DTD or XML entities")
    return data


def _check_xml_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Read the part to the end (CRC check) and refuse any DTD/entity declaration."""
    tail = b""
    with open_member(zf, info) as fh:
        while True:
            block = fh.read(4 * MIB)
            if not block:
                return
            data = tail + block
            if any(marker in data for marker in _DTD_MARKERS):
                raise RefusedWorkbook(f"{info.filename} declares a DTD or XML entities")
            tail = data[-32:]


def _parse_xml(data: bytes, name: str) -> Any:
    from defusedxml import ElementTree as SafeET  # no DTDs, no entity expansion

    try:
        return SafeET.fromstring(data)
    except Exception as exc:  # ParseError and defusedxml's own refusals
        raise RefusedWorkbook(f"{name} is not valid XML ({short_reason(exc)})") from None


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
    root = _parse_xml(_read_small(zf, info, 16 * MIB), rels_name)
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
) -> tuple[list[SheetEntry], int]:
    """The workbook's sheets, and the days to add to calamine's dates (see below)."""
    root = _parse_xml(_read_small(zf, names[workbook_part], 64 * MIB), workbook_part)
    rels = _relationships(zf, names, workbook_part)
    sheets: list[SheetEntry] = []
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
        sheets.append(SheetEntry(element.get("name", ""), part, kind, visible))
    if not sheets:
        raise RefusedWorkbook("the workbook lists no sheets")
    shift = (int(bool(truth)) - int(calamine)) * _DAYS_1900_TO_1904
    return sheets, shift


def _sheet_names_text(sheets: list[SheetEntry]) -> str:
    return "sheets: " + ", ".join(repr(s.name) for s in sheets)


def _choose_sheet(path: Path, sheets: list[SheetEntry], sheet: str | int | None) -> SheetEntry:
    if sheet is None:
        # The first visible worksheet: what Excel shows on opening, never a chart.
        worksheets = [s for s in sheets if s.kind == "worksheet"]
        visible = [s for s in worksheets if s.visible]
        return (visible or worksheets or sheets)[0]
    if isinstance(sheet, int):
        if 0 <= sheet < len(sheets):
            return sheets[sheet]
        raise unreadable(
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
    raise unreadable(path, f"has no sheet named {sheet!r} ({_sheet_names_text(sheets)}).")


def _percent_styles(
    zf: zipfile.ZipFile, names: dict[str, zipfile.ZipInfo], workbook_part: str
) -> Percents:
    """Cell styles (s="...") whose number format is a percentage, and its decimals."""
    part = next(
        (t for kind, t in _relationships(zf, names, workbook_part).values() if kind == "styles"),
        None,
    )
    if part is None or part not in names:
        return {}
    root = _parse_xml(_read_small(zf, names[part], 64 * MIB), part)
    codes: dict[int, str] = dict(_BUILTIN_PERCENT)
    percents: Percents = {}
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
