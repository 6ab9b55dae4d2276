"""report.xlsx: a SpreadsheetML package streamed sheet by sheet in bounded memory and
deflated by ``zipfile`` at level 1."""

# It beat rustpy-xlsxwriter (100k x 17: 0.55-0.85 s against 0.9-1.05 s), which also needs the
# whole table at once and can style columns but not single cells (see bench/report.py). The
# header row is bold and frozen. A sheet holds 1,048,576 rows: the data continues on
# ``<sheet_name>_2``, ``_3``, …, each with the header row again. A sheet also ends early before
# its XML reaches 2 GiB, so the zip never needs ZIP64, which Excel reads only in a stricter
# form than ``zipfile`` writes. The rows themselves are built by ``xlsx_rows``.

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, ClassVar, Final
from xml.sax.saxutils import quoteattr

import polars as pl

from campaigner.limits import EXCEL_MAX_ROWS, column_letter
from campaigner.report.atomic import AtomicFile
from campaigner.report.cells import header_frame
from campaigner.report.xlsx_rows import (
    NS_MAIN,
    NS_PKG_REL,
    NS_REL,
    STYLES_XML,
    XML_DECL,
    cols_xml,
    column_widths,
    sheet_rows,
)

__all__ = ("XlsxSink", "check_sheet_name")

_CHUNK_ROWS: Final = 25_000  # bounds the XML built in memory at once ...
_CHUNK_CELLS: Final = 500_000  # ... also for wide reports
_WIDTH_SAMPLE_ROWS: Final = 1_000  # column widths come from the header and these first rows
_WIDTH_SAMPLE_CELLS: Final = 100_000
_SHEET_NAME_FORBIDDEN: Final = frozenset("[]:*?/\\")


def _sheet_name(base: str, number: int) -> str:
    if number == 1:
        return base
    suffix = f"_{number}"
    return base[: 31 - len(suffix)] + suffix


def check_sheet_name(name: str) -> None:
    if not 1 <= len(name) <= 31:
        raise ValueError(f"sheet name must have 1 to 31 characters: {name!r}")
    if _SHEET_NAME_FORBIDDEN & set(name) or name[0] == "'" or name[-1] == "'":
        raise ValueError(f"sheet name may not contain []:*?/\\ or start/end with ': {name!r}")
    if any(ord(c) < 0x20 for c in name) or name.lower() == "history":
        raise ValueError(f"sheet name not allowed by Excel: {name!r}")


class XlsxSink:
    """report.xlsx streamed batch by batch into an ``AtomicFile``: sheets, then the package."""

    # Class attributes so tests can lower them.
    max_rows: ClassVar[int] = EXCEL_MAX_ROWS
    # Below zipfile's ZIP64 threshold (2**31 - 1) with room for the closing tags.
    max_part_bytes: ClassVar[int] = 2**31 - 2**20

    def __init__(
        self, target: Path, columns: Sequence[str], sheet_name: str, note_column: str | None
    ) -> None:
        self._base = sheet_name
        self._columns = list(columns)
        self._note_index = None if note_column is None else self._columns.index(note_column)
        self._sheets: list[str] = []
        self._part: IO[bytes] | None = None
        self._rows = 0  # rows in the current sheet, header included
        self._bytes = 0  # XML bytes in the current sheet part
        self._chunk_rows = max(1, min(_CHUNK_ROWS, _CHUNK_CELLS // len(columns)))
        self._cols: bytes | None = None  # set from the first rows written
        header = sheet_rows(header_frame(tuple(columns)), 1, header=True)
        self._header = header["x"].item().encode()
        last = column_letter(len(columns) - 1)
        self._footer = (
            # Digits stored as text are deliberate here (phone numbers, codes).
            f'</sheetData><ignoredErrors><ignoredError sqref="A1:{last}{EXCEL_MAX_ROWS}"'
            ' numberStoredAsText="1"/></ignoredErrors></worksheet>'
        ).encode()
        self.file = AtomicFile(target)
        try:
            self._zip = zipfile.ZipFile(
                self.file.fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1
            )
        except BaseException:
            self.file.discard()
            raise

    def _open_sheet(self) -> None:
        self._close_sheet()
        number = len(self._sheets) + 1
        self._sheets.append(_sheet_name(self._base, number))
        selected = ' tabSelected="1"' if number == 1 else ""
        head = (
            f'{XML_DECL}<worksheet xmlns="{NS_MAIN}" xmlns:r="{NS_REL}">'
            f'<sheetViews><sheetView workbookViewId="0"{selected}>'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            "</sheetView></sheetViews>"
        ).encode()
        if self._cols is None:
            self._cols = cols_xml(column_widths(self._columns, pl.DataFrame()))
        head += self._cols + b"<sheetData>" + self._header
        # A name, not a ZipInfo: only then does zipfile apply the archive's compresslevel.
        self._part = self._zip.open(f"xl/worksheets/sheet{number}.xml", "w")
        self._part.write(head)
        self._rows = 1
        self._bytes = len(head)

    def _close_sheet(self) -> None:
        if self._part is not None:
            self._part.write(self._footer)
            self._part.close()
            self._part = None

    def write(self, frame: pl.DataFrame) -> None:
        if self._cols is None and frame.height:
            sample = max(1, min(_WIDTH_SAMPLE_ROWS, _WIDTH_SAMPLE_CELLS // frame.width))
            self._cols = cols_xml(column_widths(self._columns, frame.head(sample)))
        done = 0
        while done < frame.height:
            if self._part is None or self._rows >= self.max_rows:
                self._open_sheet()
            assert self._part is not None
            take = min(frame.height - done, self.max_rows - self._rows, self._chunk_rows)
            rows = sheet_rows(frame.slice(done, take), self._rows + 1, note_index=self._note_index)
            # polars writes one row per line; count those line feeds too.
            sizes = rows["x"].str.len_bytes() + 1
            fits = int((sizes.cum_sum() <= self.max_part_bytes - self._bytes).sum())
            if fits < take:
                if fits == 0 and self._rows > 1:
                    self._open_sheet()  # the sheet is full by size: start the next one
                    continue
                take = max(fits, 1)
                rows = rows.head(take)
            rows.write_csv(self._part, include_header=False, quote_style="never")
            self._bytes += int(sizes.head(take).sum())
            self._rows += take
            done += take

    def finish(self) -> None:
        if not self._sheets:
            self._open_sheet()  # a header-only report
        self._close_sheet()
        count = len(self._sheets)
        sheets = "".join(
            f'<sheet name={quoteattr(name)} sheetId="{i}" r:id="rId{i}"/>'
            for i, name in enumerate(self._sheets, 1)
        )
        parts = {
            "[Content_Types].xml": (
                f"{XML_DECL}<Types"
                ' xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                '<Default Extension="rels"'
                ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/xl/workbook.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                + "".join(
                    f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
                    'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                    for i in range(1, count + 1)
                )
                + '<Override PartName="/xl/styles.xml" ContentType="application/'
                'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'
            ),
            "_rels/.rels": (
                f'{XML_DECL}<Relationships xmlns="{NS_PKG_REL}">'
                f'<Relationship Id="rId1" Type="{NS_REL}/officeDocument"'
                ' Target="xl/workbook.xml"/></Relationships>'
            ),
            "xl/workbook.xml": (
                f'{XML_DECL}<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}">'
                f'<bookViews><workbookView activeTab="0"/></bookViews><sheets>{sheets}</sheets>'
                "</workbook>"
            ),
            "xl/_rels/workbook.xml.rels": (
                f'{XML_DECL}<Relationships xmlns="{NS_PKG_REL}">'
                + "".join(
                    f'<Relationship Id="rId{i}" Type="{NS_REL}/worksheet"'
                    f' Target="worksheets/sheet{i}.xml"/>'
                    for i in range(1, count + 1)
                )
                + f'<Relationship Id="rId{count + 1}" Type="{NS_REL}/styles"'
                ' Target="styles.xml"/></Relationships>'
            ),
            "xl/styles.xml": STYLES_XML,
        }
        for name, text in parts.items():
            self._zip.writestr(name, text)
        self._zip.close()

    def abort(self) -> None:
        # Close the zip objects before deleting the file, or their finalizers would later
        # write to a closed file and print "Exception ignored" noise.
        try:
            with contextlib.suppress(Exception):
                if self._part is not None:
                    self._part.close()
            self._part = None
            with contextlib.suppress(Exception):
                self._zip.close()
        finally:
            self.file.discard()
