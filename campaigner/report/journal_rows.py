"""A run's journal rows for each report batch, read one batch ahead in a thread of their own.

Reading a million journal rows costs about a quarter of a report rebuild, most of it inside
SQLite with the GIL released: read while the previous batch is joined and written, it
overlaps the rest of the work instead of adding to it. The reader has its own read-only
connection, so the run's ``Journal`` is untouched.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Final

import polars as pl

from campaigner.columns import ROW, internal
from campaigner.journal import JOURNAL_NAME
from campaigner.report.readahead import ReadAhead

__all__ = ("JOURNAL_RECIPIENT", "JOURNAL_ERROR", "JOURNAL_STATE", "JournalRows", "rows_frame")

# The journal's own state, error and recipient while joined to a batch (internal: no input
# collides).
JOURNAL_STATE: Final = internal("journal:state")
JOURNAL_ERROR: Final = internal("journal:error")
JOURNAL_RECIPIENT: Final = internal("journal:recipient")
_SCHEMA: Final = {
    ROW: pl.Int64,
    JOURNAL_STATE: pl.String,
    "attempts": pl.Int64,
    "MessageId": pl.String,
    "Code": pl.String,
    "Message": pl.String,
    "RequestId": pl.String,
    JOURNAL_ERROR: pl.String,
    JOURNAL_RECIPIENT: pl.String,
}


# The rows of a range as one text, a JSON array per line: one step of SQLite instead of one
# per row. Each row fetched gives up the GIL and takes it back, and with the report's main
# thread busy meanwhile every taking back waited its turn.
_ROWS_SQL: Final = """
SELECT group_concat(json_object('row', row, 'state', state, 'attempts', attempts,
    'message_id', message_id, 'code', code, 'message', message, 'request_id', request_id,
    'error', error, 'recipient', recipient), char(10))
FROM rows WHERE row BETWEEN ? AND ?
"""
# The same columns under the names the lines have, in _SCHEMA's order.
_LINE_NAMES: Final = (
    "row",
    "state",
    "attempts",
    "message_id",
    "code",
    "message",
    "request_id",
    "error",
    "recipient",
)
_LINE_SCHEMA: Final = dict(zip(_LINE_NAMES, _SCHEMA.values(), strict=True))


def rows_frame(rows: list[tuple[object, ...]]) -> pl.DataFrame:
    """``Journal.rows_between``'s rows as a frame with the names above."""
    return pl.DataFrame(rows, schema=_SCHEMA, orient="row")


def _lines_frame(text: str | None) -> pl.DataFrame:
    if not text:
        return pl.DataFrame(schema=_SCHEMA)
    frame = pl.read_ndjson(text.encode(), schema=_LINE_SCHEMA)
    return frame.rename(dict(zip(_LINE_NAMES, _SCHEMA, strict=True)))


class JournalRows:
    """``between(lo, hi)`` for batches in row order, all of a size but the last: the next
    range, as long, is read ahead meanwhile."""

    def __init__(self, run_dir: Path) -> None:
        uri = (run_dir / JOURNAL_NAME).resolve().as_uri() + "?mode=ro"
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-rows")
        self._ahead = ReadAhead(self._read, self._worker)

    def between(self, lo: int, hi: int) -> pl.DataFrame:
        return self._ahead.get(lo, hi)

    def _read(self, lo: int, hi: int) -> pl.DataFrame:
        (text,) = self._db.execute(_ROWS_SQL, (lo, hi)).fetchone()
        return _lines_frame(text)

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._db.close()
