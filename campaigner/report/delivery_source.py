"""What the workspace's receipts.sqlite knows about one run's sent messages, read with SQL
a batch of rows at a time: the I/O shell of ``report.delivery``.

The run's journal is the main database of a read-only connection and receipts.sqlite is
attached to it, so each batch is one range scan of the journal joined on the receipts'
primary key (message_id, status): only this run's receipts are read, already folded per row
by SQLite, however many other runs the workspace holds. Receipts that came before the
journal had the MessageId (at 250/s they do), or for MessageIds of no run, simply wait in
the store until a journal row matches them.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import polars as pl

from campaigner.columns import ROW
from campaigner.journal import JOURNAL_NAME
from campaigner.receipts.parse import phone_key as scalar_phone_key
from campaigner.receipts.store import RECEIPTS_NAME
from campaigner.report.delivery import (
    DELIVERY_COLUMNS,
    INBOUND_SCHEMA,
    RECEIPT_SCHEMA,
    SENT_SCHEMA,
    delivery_columns,
    first_replies,
    phone_key,
)
from campaigner.report.funnel import Funnel
from campaigner.rows import Plan

__all__ = ("LOOKUP_CHANNELS", "DeliverySource")

_log = logging.getLogger(__name__)

# Channels ListChatappMessage answers for (`campaigner status`); Messenger and Instagram
# messages can be known only from pushed receipts.
LOOKUP_CHANNELS: Final = frozenset({"whatsapp", "viber"})

# The contract's tables, empty, for a workspace that never received anything: one code path.
_EMPTY_STORE: Final = """
CREATE TABLE rc.receipts(message_id TEXT NOT NULL, status TEXT NOT NULL, ts_ms INTEGER,
    error_code TEXT, error_description TEXT, recipient TEXT, sender TEXT, source TEXT NOT NULL,
    received_ms INTEGER NOT NULL, raw TEXT NOT NULL, PRIMARY KEY (message_id, status))
    WITHOUT ROWID;
CREATE TABLE rc.inbound(message_id TEXT PRIMARY KEY, sender TEXT, recipient TEXT, type TEXT,
    text TEXT, payload TEXT, ts_ms INTEGER, source TEXT NOT NULL, received_ms INTEGER NOT NULL,
    raw TEXT NOT NULL);
"""

# One row per sent row of the range: its send (in ms: the last intent) and its receipts
# folded: the highest rank of Sent (1) < Delivered (2) < Read (3) (statuses.DELIVERY_RANK),
# whether a Failed came, the Delivered and Read Timestamps, the Failed receipt's error.
# The LEFT JOIN keeps sent rows without receipts: they may still have a reply.
_BATCH_SQL: Final = """
SELECT j.row, j.recipient, CAST(coalesce(j.intent_at, j.updated_at) * 1000 AS INTEGER),
    max(CASE r.status WHEN 'Sent' THEN 1 WHEN 'Delivered' THEN 2 WHEN 'Read' THEN 3 ELSE 0 END),
    max(r.status = 'Failed'),
    max(CASE WHEN r.status = 'Delivered' THEN r.ts_ms END),
    max(CASE WHEN r.status = 'Read' THEN r.ts_ms END),
    max(CASE WHEN r.status = 'Failed' THEN r.error_code END),
    max(CASE WHEN r.status = 'Failed' THEN r.error_description END)
FROM rows AS j LEFT JOIN rc.receipts AS r ON r.message_id = j.message_id
WHERE j.row BETWEEN ? AND ? AND j.state = 'sent' AND j.message_id IS NOT NULL
GROUP BY j.row
"""
_INBOUND_SQL: Final = """
SELECT sender, recipient, coalesce(ts_ms, received_ms) AS ts, type, text, payload
FROM rc.inbound WHERE coalesce(ts_ms, received_ms) > ? {business}
ORDER BY ts, received_ms, message_id
"""
_FIRST_SEND_SQL: Final = """
SELECT CAST(min(coalesce(intent_at, updated_at)) * 1000 AS INTEGER) FROM rows
WHERE state = 'sent' AND message_id IS NOT NULL
"""
# What _BATCH_SQL returns, in its order.
_FETCHED: Final = {
    ROW: pl.Int64,
    "to": pl.String,
    "sent_ms": pl.Int64,
    **{name: dtype for name, dtype in RECEIPT_SCHEMA.items() if name != ROW},
}


def _read_only(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


class DeliverySource:
    """The delivery columns of a run's report batches, and its funnel as they go.

    ``sender``: the campaign's fixed ``From``; ``sender_column``: the prepared batch's
    column holding a per-row ``From`` instead. Batches come in row order.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        sender: str | None = None,
        sender_column: str | None = None,
        lookup: bool = True,
    ) -> None:
        self._sender_key = None if sender is None else scalar_phone_key(sender)
        self._sender_column = sender_column
        self.funnel = Funnel(lookup=lookup)
        self._inbound: pl.DataFrame | None = None
        self._db = sqlite3.connect(_read_only(run_dir / JOURNAL_NAME), uri=True)
        try:
            store = run_dir.parent / RECEIPTS_NAME  # the workspace's
            if not (store.exists() and self._attach(store)):
                self._db.execute("ATTACH DATABASE ':memory:' AS rc")
                self._db.executescript(_EMPTY_STORE)
        except BaseException:
            self._db.close()
            raise

    def _attach(self, store: Path) -> bool:
        """Attach receipts.sqlite; False (and a warning) when it cannot be read: the report
        is still written, with empty delivery columns, rather than not at all."""
        try:
            self._db.execute("ATTACH DATABASE ? AS rc", (_read_only(store),))
            self._db.execute("SELECT 1 FROM rc.receipts, rc.inbound LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            _log.warning("%s cannot be read (%s): the delivery columns stay empty", store, exc)
            if any(name == "rc" for _, name, _ in self._db.execute("PRAGMA database_list")):
                self._db.execute("DETACH DATABASE rc")
            return False
        return True

    @classmethod
    def for_plan(cls, run_dir: Path, plan: Plan) -> DeliverySource:
        """The source for a run of ``plan``'s campaign (its ``From``, fixed or per row)."""
        slot = plan.template.slot("From")
        fixed = slot is not None and slot.kind == "static"
        return cls(
            run_dir,
            sender=slot.parts[0][1] if slot is not None and fixed else None,
            sender_column=slot.column if slot is not None and not fixed else None,
            lookup=plan.channel in LOOKUP_CHANNELS,
        )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def batch(self, prepared: pl.DataFrame) -> pl.DataFrame:
        """ROW and the delivery columns of the sent rows among ``prepared``'s rows."""
        lo, hi = prepared[ROW].min(), prepared[ROW].max()
        rows = self._db.execute(_BATCH_SQL, (lo, hi)).fetchall()
        fetched = pl.DataFrame(rows, schema=_FETCHED, orient="row")
        columns = delivery_columns(fetched)
        replies = first_replies(self._sent(fetched, prepared), self._inbound_messages())
        out = columns.join(replies, on=ROW, how="left", maintain_order="left")
        self.funnel.add(out)
        return out.select(ROW, *DELIVERY_COLUMNS)

    def _sent(self, fetched: pl.DataFrame, prepared: pl.DataFrame) -> pl.DataFrame:
        if self._sender_column is not None:
            senders = prepared.select(ROW, phone_key(pl.col(self._sender_column)).alias("from_key"))
            fetched = fetched.join(senders, on=ROW, how="left", maintain_order="left")
        else:
            fetched = fetched.with_columns(pl.lit(self._sender_key, pl.String).alias("from_key"))
        return fetched.select(
            ROW, phone_key(pl.col("to")).alias("to_key"), "from_key", "sent_ms"
        ).cast(SENT_SCHEMA)  # type: ignore[arg-type]

    def _inbound_messages(self) -> pl.DataFrame:
        """The inbound messages after the run's first send, read once per report."""
        if self._inbound is None:
            first = self._db.execute(_FIRST_SEND_SQL).fetchone()[0]
            if first is None:
                self._inbound = pl.DataFrame(schema=INBOUND_SCHEMA)
            else:
                business, params = "", [first]
                if self._sender_key is not None:
                    business, params = "AND recipient = ?", [first, self._sender_key]
                rows = self._db.execute(_INBOUND_SQL.format(business=business), params).fetchall()
                self._inbound = pl.DataFrame(rows, schema=INBOUND_SCHEMA, orient="row")
        return self._inbound
