"""What the workspace's receipts.sqlite knows about one run's sent messages, read with SQL
a batch of rows at a time: the I/O shell of ``report.delivery``.

The run's journal is the main database of a read-only connection and receipts.sqlite is
attached to it, so each batch is one range scan of the journal joined on the receipts'
primary key (message_id, status): only this run's receipts are read, already folded per row
by SQLite, however many other runs the workspace holds. Receipts that came before the
journal had the MessageId (at 250/s they do), or for MessageIds of no run, simply wait in
the store until a journal row matches them.

The next batch's rows are read in a worker thread while the report works on this one
(SQLite releases the GIL while it steps): the join costs about as much as the rest of a
batch, so on two cores most of it is hidden.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import polars as pl

from campaigner.columns import ROW, TO
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
    reply_candidates,
)
from campaigner.report.funnel import Funnel
from campaigner.report.readahead import ReadAhead
from campaigner.rows import Plan
from campaigner.statuses import DELIVERY_RANK, Delivery

__all__ = ("LOOKUP_CHANNELS", "DeliverySource")

_log = logging.getLogger(__name__)

# Channels ListChatappMessage answers for (`campaigner status`); Messenger and Instagram
# messages can be known only from pushed receipts.
LOOKUP_CHANNELS: Final = frozenset({"whatsapp", "viber"})

# The contract's tables, empty, for a workspace that never received anything: one code path.
_EMPTY_STORE: Final = """
CREATE TABLE rc.receipts(message_id TEXT NOT NULL, status TEXT NOT NULL, ts_ms INTEGER,
    error_code TEXT, error_description TEXT, recipient TEXT, sender TEXT, source TEXT NOT NULL,
    received_ms INTEGER NOT NULL, raw TEXT NOT NULL, UNIQUE (message_id, status));
CREATE TABLE rc.inbound(message_id TEXT PRIMARY KEY, sender TEXT, recipient TEXT, type TEXT,
    text TEXT, payload TEXT, ts_ms INTEGER, source TEXT NOT NULL, received_ms INTEGER NOT NULL,
    raw TEXT NOT NULL);
"""

# One line per sent row of the range, comma-separated integers: the row, its send time
# (ms: the last intent) and its receipts folded: the highest statuses.DELIVERY_RANK among
# them (Sent 1 < Delivered 2 < Read 3 < Failed 4), the Delivered and Read Timestamps. The
# LEFT JOIN keeps sent rows without receipts: they may still have a reply. Integers only:
# the few Failed rows' error texts are read apart (_ERRORS_SQL). One text for the whole
# range, not a row per row: each row fetched gives up the GIL and takes it back, and with
# the report's main thread busy meanwhile every taking back waited its turn. ``+j.state``:
# the range of rows read by row number, not through the state index (a fifth faster).
_BATCH_SQL: Final = """
SELECT group_concat(
    row || ',' || ifnull(sent_ms, '') || ',' || state || ',' || ifnull(delivered_ms, '')
        || ',' || ifnull(read_ms, ''),
    char(10))
FROM (
    SELECT j.row AS row, CAST(coalesce(j.intent_at, j.updated_at) * 1000 AS INTEGER) AS sent_ms,
        max(CASE r.status WHEN 'Sent' THEN 1 WHEN 'Delivered' THEN 2 WHEN 'Read' THEN 3
            WHEN 'Failed' THEN 4 ELSE 0 END) AS state,
        max(CASE WHEN r.status = 'Delivered' THEN r.ts_ms END) AS delivered_ms,
        max(CASE WHEN r.status = 'Read' THEN r.ts_ms END) AS read_ms
    FROM rows AS j LEFT JOIN rc.receipts AS r ON r.message_id = j.message_id
    WHERE j.row BETWEEN ? AND ? AND +j.state = 'sent' AND j.message_id IS NOT NULL
    GROUP BY j.row
)
"""
# The Failed receipts' errors, for the rows (a JSON array) the fold found failed.
_ERRORS_SQL: Final = """
SELECT j.row, r.error_code, r.error_description
FROM rows AS j JOIN rc.receipts AS r ON r.message_id = j.message_id AND r.status = 'Failed'
WHERE j.row IN (SELECT value FROM json_each(?))
"""
_FOLD_SCHEMA: Final = {name: dtype for name, dtype in RECEIPT_SCHEMA.items() if dtype == pl.Int64}
_ERRORS_SCHEMA: Final = {
    name: dtype for name, dtype in RECEIPT_SCHEMA.items() if name == ROW or dtype == pl.String
}
_INBOUND_SQL: Final = """
SELECT sender, recipient, coalesce(ts_ms, received_ms) AS ts, type, text, payload
FROM rc.inbound WHERE coalesce(ts_ms, received_ms) > ? {business}
ORDER BY ts, received_ms, message_id
"""
_FIRST_SEND_SQL: Final = """
SELECT CAST(min(coalesce(intent_at, updated_at)) * 1000 AS INTEGER) FROM rows
WHERE state = 'sent' AND message_id IS NOT NULL
"""


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
        # Used by the one worker thread only (after __init__): one query at a time.
        self._db = sqlite3.connect(
            _read_only(run_dir / JOURNAL_NAME), uri=True, check_same_thread=False
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receipts")
        self._ahead = ReadAhead(self._read, self._worker)
        try:
            store = run_dir.parent / RECEIPTS_NAME  # the workspace's
            if not (store.exists() and self._attach(store)):
                self._db.execute("ATTACH DATABASE ':memory:' AS rc")
                self._db.executescript(_EMPTY_STORE)
        except BaseException:
            self.close()
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

    @property
    def needs_rendering(self) -> bool:
        """Whether batches must carry the rendered ``From`` (it differs row by row)."""
        return self._sender_column is not None

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)
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
        lo, hi = prepared.select(pl.col(ROW).min(), pl.col(ROW).max().alias("hi")).row(0)
        fetched = self._ahead.get(lo or 0, hi or 0)  # the folded receipts, RECEIPT_SCHEMA
        columns = delivery_columns(fetched)
        inbound = self._worker.submit(self._inbound_messages).result()
        replies = first_replies(self._sent(fetched, prepared), inbound)
        out = columns.join(replies, on=ROW, how="left", maintain_order="left")
        self.funnel.add(out)
        return out.select(ROW, *DELIVERY_COLUMNS)

    def _read(self, lo: int, hi: int) -> pl.DataFrame:
        (text,) = self._db.execute(_BATCH_SQL, (lo, hi)).fetchone()
        folded = (
            pl.read_csv(text.encode(), has_header=False, schema=_FOLD_SCHEMA)
            if text
            else pl.DataFrame(schema=_FOLD_SCHEMA)
        )
        failed = folded.filter(pl.col("state") == DELIVERY_RANK[Delivery.FAILED])[ROW]
        errors = pl.DataFrame(
            self._db.execute(_ERRORS_SQL, (json.dumps(failed.to_list()),)).fetchall()
            if len(failed)
            else [],
            schema=_ERRORS_SCHEMA,
            orient="row",
        )
        return folded.join(errors, on=ROW, how="left", maintain_order="left").select(
            list(RECEIPT_SCHEMA)
        )

    def _sent(self, fetched: pl.DataFrame, prepared: pl.DataFrame) -> pl.DataFrame:
        """The reply join's keys: who each sent row went to (the prepared ``To``, which is
        what was sent) and from which number."""
        keys = [phone_key(pl.col(TO)).alias("to_key")]
        if self._sender_column is not None:
            keys.append(phone_key(pl.col(self._sender_column)).alias("from_key"))
        else:
            keys.append(pl.lit(self._sender_key, pl.String).alias("from_key"))
        fetched = fetched.join(
            prepared.select(ROW, *keys), on=ROW, how="left", maintain_order="left"
        )
        return fetched.select(list(SENT_SCHEMA)).cast(SENT_SCHEMA)  # type: ignore[arg-type]

    def _inbound_messages(self) -> pl.DataFrame:
        """The inbound messages after the run's first send as ``reply_candidates``, read
        once per report (in the worker thread, like every query)."""
        if self._inbound is None:
            first = self._db.execute(_FIRST_SEND_SQL).fetchone()[0]
            rows: list[tuple[object, ...]] = []
            if first is not None:
                business, params = "", [first]
                if self._sender_key is not None:
                    business, params = "AND recipient = ?", [first, self._sender_key]
                rows = self._db.execute(_INBOUND_SQL.format(business=business), params).fetchall()
            inbound = pl.DataFrame(rows, schema=INBOUND_SCHEMA, orient="row")
            self._inbound = reply_candidates(inbound)
        return self._inbound
