"""What kind of file an input is: its head bytes read once, the file-level refusals that
follow from its kind (archives, OLE, HTML, PDF, ODS, XLSB), and a CSV's byte-order mark.
"""

from __future__ import annotations

import codecs
import re
import zipfile
from pathlib import Path

from campaigner.errors import EmptyInputError, UnreadableInputError

__all__ = (
    "CSV_SUFFIXES",
    "MAX_XLSX_FILE_BYTES",
    "MIB",
    "SAMPLE_BYTES",
    "XLSX_SUFFIXES",
    "csv_encoding",
    "is_panic",
    "read_head",
    "refuse_compressed",
    "refuse_non_csv",
    "refuse_non_xlsx",
    "refuse_other_kind",
    "unreadable",
)

MIB = 1 << 20
# The XLSX size limit bounds what calamine may allocate (see xlsx_package's zip limits).
MAX_XLSX_FILE_BYTES = 200 * MIB
SAMPLE_BYTES = 64 * 1024  # the head read up front, and a CSV's first sample

CSV_SUFFIXES = frozenset({".csv", ".tsv", ".txt", ".tab"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_COMPRESSED_SUFFIXES = frozenset({".gz", ".zip", ".bz2", ".xz", ".7z", ".zst", ".rar", ".tgz"})

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ARCHIVE_MAGICS = (b"\x1f\x8b\x08", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07")

_HTML_PROBLEM = "is an HTML page, not a CSV. Download or export the data as CSV or XLSX instead."


def unreadable(path: Path, message: str) -> UnreadableInputError:
    """The file-level error for ``path``: its name, then ``message``."""
    return UnreadableInputError(f"{path.name} {message}")


def is_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust panic from polars or fastexcel (a file they cannot read)."""
    # pyo3 turns Rust panics into PanicException, a BaseException subclass.
    return type(exc).__name__ == "PanicException"


def read_head(path: Path) -> tuple[int, bytes]:
    """The file's size and first ``SAMPLE_BYTES``; refuses what is not a non-empty file."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise unreadable(path, "is not a regular file")
        with path.open("rb") as fh:
            head = fh.read(SAMPLE_BYTES)
    except OSError as exc:
        raise unreadable(path, f"cannot be opened ({exc.strerror or exc})") from None
    if size == 0 or not head:
        raise EmptyInputError(f"{path.name} is empty (0 bytes).")
    return size, head


def refuse_compressed(path: Path, head: bytes) -> None:
    """Refuse compressed archives, by extension or by content."""
    if (
        path.suffix.lower() in _COMPRESSED_SUFFIXES
        or head.startswith(_ARCHIVE_MAGICS)
        or re.match(rb"BZh[1-9]1AY&SY", head)
    ):
        raise unreadable(
            path,
            "is a compressed archive; compressed inputs are not supported. "
            "Extract the .csv or .xlsx file and use that.",
        )


def refuse_other_kind(path: Path, head: bytes) -> UnreadableInputError:
    """The error for a file that is neither CSV nor XLSX by its extension."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        if head.startswith(_OLE_MAGIC):
            return unreadable(path, _ole_problem(path))
        if head.startswith(_ZIP_MAGICS):
            return unreadable(path, f"is {_zip_kind(path)} with an .xls name; rename it to .xlsx.")
        if _looks_like_html(head):
            # Web applications often export an HTML table under an .xls name.
            return unreadable(
                path, "is an HTML page with an .xls name. Open it in Excel, save as .xlsx."
            )
        return unreadable(
            path, "is not a legacy Excel file. Save it as .xlsx or .csv and try again."
        )
    if suffix == ".xlsb":
        return unreadable(
            path, "is an Excel binary workbook (XLSB). Open it in Excel and save as .xlsx."
        )
    if suffix in {".ods", ".fods"}:
        return unreadable(path, "is an OpenDocument spreadsheet (ODS). Save it as .xlsx or .csv.")
    # Unknown extension: say what the content is when we can tell.
    if _looks_like_html(head):
        return unreadable(path, _HTML_PROBLEM)
    if head.startswith(_ZIP_MAGICS):
        return unreadable(path, f"is {_zip_kind(path)}; give it the right extension (.xlsx).")
    if head.startswith(_OLE_MAGIC):
        return unreadable(path, _ole_problem(path))
    shown = suffix or "(no extension)"
    return unreadable(path, f"has an unsupported file type {shown}; use a .csv or .xlsx file.")


def refuse_non_csv(path: Path, head: bytes) -> None:
    """Refuse a file with a CSV name whose content is a zip, OLE, PDF or HTML file."""
    if head.startswith(_ZIP_MAGICS):
        kind = _zip_kind(path)
        raise unreadable(path, f"is {kind}, not a CSV file. Rename it to the right extension.")
    if head.startswith(_OLE_MAGIC):
        raise unreadable(path, _ole_problem(path))
    if head.startswith(b"%PDF"):
        raise unreadable(path, "is a PDF document, not a CSV file.")
    if _looks_like_html(head):
        raise unreadable(path, _HTML_PROBLEM)


def refuse_non_xlsx(path: Path, size: int, head: bytes) -> None:
    """Refuse a file with an XLSX name that is no zip archive, or too large to open."""
    if head.startswith(_OLE_MAGIC):
        raise unreadable(path, _ole_problem(path))
    if not head.startswith(_ZIP_MAGICS):
        if _looks_like_html(head):
            raise unreadable(
                path, "is an HTML page saved with an Excel name, not an XLSX workbook."
            )
        if head.startswith(b"%PDF"):
            raise unreadable(path, "is a PDF document, not an XLSX workbook.")
        if head.lstrip().startswith(b"<?xml"):
            raise unreadable(
                path, "is an XML file, not an XLSX workbook. Save it as .xlsx in Excel."
            )
        raise unreadable(
            path,
            "is not an XLSX workbook (it is not a zip archive). If it is CSV text, "
            "rename it to .csv; otherwise save it from Excel as .xlsx.",
        )
    if size > MAX_XLSX_FILE_BYTES:
        raise unreadable(
            path,
            f"is too large ({size // MIB} MiB; the limit for XLSX is "
            f"{MAX_XLSX_FILE_BYTES // MIB} MiB). Save it as CSV instead.",
        )


def csv_encoding(path: Path, head: bytes, encoding: str | None) -> tuple[str, int]:
    """The Python codec of a CSV file and the BOM bytes to skip: a BOM wins, then
    ``encoding``, else UTF-8 (UTF-16 without a BOM is refused with advice)."""
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        return "utf-32", 0
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16", 0
    if encoding:
        try:
            return codecs.lookup(encoding).name, 0
        except LookupError:
            raise unreadable(path, f"cannot be read: unknown encoding {encoding!r}.") from None
    nul = head.count(b"\x00")
    if nul * 5 > len(head):
        raise unreadable(
            path,
            "looks like UTF-16 text without a byte-order mark. Set the input encoding "
            "('utf-16-le' or 'utf-16-be'), or save it from Excel as 'CSV UTF-8'.",
        )
    return "utf-8", 0


def _ole_problem(path: Path) -> str:
    """Describe an OLE/CFB file (password-protected OOXML or legacy .xls)."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_XLSX_FILE_BYTES)
    except OSError:
        data = b""
    # Directory entry names are stored as UTF-16LE; a plain search finds them.
    if any(name.encode("utf-16-le") in data for name in ("EncryptedPackage", "EncryptionInfo")):
        return (
            "is encrypted with a password. Remove the password in Excel "
            "(File > Info > Protect Workbook > Encrypt with Password) and save it again."
        )
    if any(name.encode("utf-16-le") in data for name in ("Workbook", "Book")):
        return "is a legacy Excel 97-2003 (.xls) workbook. Open it in Excel and save as .xlsx."
    return "is an old Microsoft Office (OLE) file, not a spreadsheet this tool reads."


def _looks_like_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    starts = (b"<!doctype html", b"<html", b"<head", b"<body", b"<table", b"<meta")
    return text.startswith(starts) or (text.startswith(b"<!--") and b"<html" in text)


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "a zip archive"
    if "xl/workbook.bin" in names:
        return "an Excel binary workbook (XLSB)"
    if "mimetype" in names or "content.xml" in names:
        return "an OpenDocument spreadsheet (ODS)"
    if any(n.startswith("xl/") for n in names):
        return "an Excel workbook (XLSX)"
    return "a zip archive"
