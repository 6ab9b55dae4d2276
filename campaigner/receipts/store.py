"""receipts.sqlite: the workspace's status receipts, inbound messages and opt-outs.

One SQLite database (WAL, synchronous=FULL) in the workspace (the ``--out`` folder), shared
by every run in it and read directly with SQL by the report and the lookup. A write returns
only after its commit is on disk, so the receiver can answer 200 after it. Receipts are
idempotent on (message_id, status), inbound messages on message_id: CAMS retries and repeats.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from campaigner.errors import StorageError, storage_problem
from campaigner.receipts.parse import Inbound, Receipt, phone_key
from campaigner.receipts.stopwords import MAX_STOP_WORD_LENGTH, normalize_stop_word, stop_word_set
from campaigner.receipts.suppression import ANY_BUSINESS, Action, Event, Suppression, resolve

__all__ = ("RECEIPTS_NAME", "ReceiptStore", "Stored")

RECEIPTS_NAME = "receipts.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL,
    status TEXT NOT NULL,
    ts_ms INTEGER,                   -- when CAMS says it happened (the receipt's Timestamp)
    error_code TEXT,
    error_description TEXT,
    recipient TEXT,                  -- phone_key(To)
    sender TEXT,                     -- phone_key(From): our business number
    source TEXT NOT NULL,            -- push | queue | lookup
    received_ms INTEGER NOT NULL,
    raw TEXT NOT NULL,
    -- Not a WITHOUT ROWID key: rows this large (~500 bytes) would make each commit rewrite
    -- a page per receipt; with a rowid they are appended, and only the small index entries
    -- land all over (half the CPU per receipt stored). A store made before keeps its table.
    UNIQUE (message_id, status)
);
CREATE INDEX IF NOT EXISTS receipts_opt ON receipts(sender, recipient)
    WHERE status IN ('unsubscribe', 'subscribe');
CREATE TABLE IF NOT EXISTS inbound (
    message_id TEXT PRIMARY KEY,
    sender TEXT,                     -- phone_key(From): the user
    recipient TEXT,                  -- phone_key(To): our business number
    type TEXT,
    text TEXT,
    payload TEXT,
    ts_ms INTEGER,
    source TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbound_by_pair ON inbound(sender, recipient, ts_ms);
CREATE INDEX IF NOT EXISTS inbound_short ON inbound(recipient)
    WHERE type IN ('TEXT', 'REPLY');
CREATE TABLE IF NOT EXISTS suppression_events (
    id INTEGER PRIMARY KEY,
    business TEXT NOT NULL,          -- phone_key of the sender number, or '*' for any
    recipient TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    at_ms INTEGER NOT NULL,
    reason TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS suppression_events_by_business ON suppression_events(business);
"""

_RECEIPT_INSERT = (
    "INSERT INTO receipts(message_id, status, ts_ms, error_code, error_description, "
    "recipient, sender, source, received_ms, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    # A lookup learns a state without its time: the pushed receipt that brings the time
    # fills it in; any other repeat changes nothing.
    "ON CONFLICT(message_id, status) DO UPDATE SET ts_ms = excluded.ts_ms, "
    "source = excluded.source, raw = excluded.raw "
    "WHERE receipts.ts_ms IS NULL AND excluded.ts_ms IS NOT NULL"
)
_INBOUND_INSERT = (
    "INSERT OR IGNORE INTO inbound(message_id, sender, recipient, type, text, payload, ts_ms, "
    "source, received_ms, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Stored:
    """How many of a write's receipts and inbound messages were new."""

    receipts: int = 0
    inbound: int = 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ReceiptStore:
    """One connection to receipts.sqlite; writes are serialized by a lock, so one store may
    be shared by threads (the receiver's writer, the web app's handlers)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(_in_words(path, exc)) from None
        try:
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise StorageError(_in_words(path, exc)) from None

    @classmethod
    def open(cls, workspace: Path) -> ReceiptStore:
        """The workspace's store, created (with the workspace folder) if missing."""
        return cls(workspace / RECEIPTS_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ReceiptStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(_in_words(self.path, exc)) from exc

    def add(
        self,
        receipts: Iterable[Receipt] = (),
        inbound: Iterable[Inbound] = (),
        source: str = "push",
    ) -> Stored:
        """Store receipts and inbound messages in one transaction, durable on return."""
        now = _now_ms()
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                _RECEIPT_INSERT,
                (
                    (
                        r.message_id,
                        r.status,
                        r.ts_ms,
                        r.error_code,
                        r.error_description,
                        r.recipient,
                        r.sender,
                        source,
                        now,
                        r.raw,
                    )
                    for r in receipts
                ),
            )
            middle = db.total_changes
            db.executemany(
                _INBOUND_INSERT,
                (
                    (
                        m.message_id,
                        m.sender,
                        m.recipient,
                        m.type,
                        m.text,
                        m.payload,
                        m.ts_ms,
                        source,
                        now,
                        m.raw,
                    )
                    for m in inbound
                ),
            )
            return Stored(receipts=middle - before, inbound=db.total_changes - middle)

    def add_receipts(self, receipts: Iterable[Receipt], source: str = "push") -> int:
        """Store status receipts; the number that were new. Durable on return."""
        return self.add(receipts=receipts, source=source).receipts

    def add_inbound(self, messages: Iterable[Inbound], source: str = "push") -> int:
        """Store inbound messages; the number that were new. Durable on return."""
        return self.add(inbound=messages, source=source).inbound

    # -- suppression --------------------------------------------------------------------
    def add_suppression(
        self, business: str, recipient: str, reason: str, source: str = "manual"
    ) -> None:
        """Suppress ``recipient`` for ``business`` (``*`` or empty: every business) from now."""
        self._manual(((business, recipient, reason, None),), Action.ADD, source)

    def add_suppressions(
        self, entries: Iterable[tuple[str, str, str, int | None]], source: str = "import"
    ) -> int:
        """Many (business, recipient, reason, since_ms or None for now) in one transaction;
        how many were given."""
        return self._manual(entries, Action.ADD, source)

    def remove_suppression(self, business: str, recipient: str) -> None:
        """Lift ``recipient``'s suppression for ``business`` (``*`` or empty: every business)."""
        self._manual(((business, recipient, "removed by hand", None),), Action.REMOVE, "manual")

    def _manual(
        self, entries: Iterable[tuple[str, str, str, int | None]], action: Action, source: str
    ) -> int:
        now = _now_ms()
        rows = [
            (_business_key(business), phone_key(recipient), action.value, at or now, reason, source)
            for business, recipient, reason, at in entries
        ]
        rows = [row for row in rows if row[1]]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO suppression_events(business, recipient, action, at_ms, reason, "
                "source) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def suppressed(
        self, business: str, extra_stop_words: Sequence[str] = ()
    ) -> dict[str, Suppression]:
        """Everyone ``business`` must not send to now, keyed by ``phone_key(recipient)``.

        ``extra_stop_words`` are a campaign's own (``[send] stop_words``), added to the
        defaults for this answer only.
        """
        key = _business_key(business)
        words = stop_word_set(extra_stop_words)
        with self._lock:
            events = list(self._events(key, words))
            if key != ANY_BUSINESS:
                events.extend(self._manual_events(ANY_BUSINESS))
        return resolve(events)

    def list_suppressions(self, business: str | None = None) -> list[Suppression]:
        """The suppressions in force: for one business by recipient (those for any business
        included), or for all by business and recipient."""
        if business is not None:
            return sorted(self.suppressed(business).values(), key=lambda s: s.recipient)
        found: list[Suppression] = []
        for key in self._businesses():
            found.extend(s for s in self.suppressed(key).values() if s.business == key)
        return sorted(found, key=lambda s: (s.business, s.recipient))

    def _businesses(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT business FROM suppression_events UNION "
                "SELECT sender FROM receipts WHERE status IN ('unsubscribe', 'subscribe') "
                "AND sender IS NOT NULL UNION "
                "SELECT DISTINCT recipient FROM inbound WHERE type IN ('TEXT', 'REPLY') "
                "AND recipient IS NOT NULL"
            ).fetchall()
        return sorted({row[0] for row in rows} | {ANY_BUSINESS})

    def _events(self, business: str, words: frozenset[str]) -> Iterator[Event]:
        yield from self._manual_events(business)
        if business == ANY_BUSINESS:
            return
        # Only the latest opt-out or opt-in of each recipient can decide, so SQLite picks it
        # (a bare column beside max() comes from the row holding the max).
        for recipient, status, at_ms in self._db.execute(
            "SELECT recipient, status, max(coalesce(ts_ms, received_ms)) FROM receipts "
            "WHERE status IN ('unsubscribe', 'subscribe') AND sender = ? "
            "AND recipient IS NOT NULL GROUP BY recipient",
            (business,),
        ):
            action = Action.ADD if status == "unsubscribe" else Action.REMOVE
            yield Event(business, recipient, at_ms, action, f"Viber {status}", "receipt")
        stop_texts = self._stop_texts(business, words)
        if not stop_texts:
            return
        listed = json.dumps(sorted(stop_texts), ensure_ascii=False)
        for recipient, text, payload, at_ms in self._db.execute(
            "SELECT sender, text, payload, max(coalesce(ts_ms, received_ms)) FROM inbound "
            "WHERE type IN ('TEXT', 'REPLY') AND recipient = ? AND sender IS NOT NULL "
            "AND (text IN (SELECT value FROM json_each(?)) "
            "OR payload IN (SELECT value FROM json_each(?))) GROUP BY sender",
            (business, listed, listed),
        ):
            said = text if text in stop_texts else payload
            yield Event(business, recipient, at_ms, Action.ADD, f"replied {said!r}", "inbound")

    def _stop_texts(self, business: str, words: frozenset[str]) -> set[str]:
        """The texts and payloads sent to ``business`` that are stop words, as written: each
        distinct one is normalized once (replies repeat: "ok", "yes", "STOP")."""
        rows = self._db.execute(
            "SELECT text FROM inbound WHERE type IN ('TEXT', 'REPLY') AND recipient = ? "
            "AND length(text) <= ? UNION "
            "SELECT payload FROM inbound WHERE type IN ('TEXT', 'REPLY') AND recipient = ? "
            "AND length(payload) <= ?",
            (business, MAX_STOP_WORD_LENGTH, business, MAX_STOP_WORD_LENGTH),
        )
        return {said for (said,) in rows if normalize_stop_word(said) in words}

    def _manual_events(self, business: str) -> Iterator[Event]:
        for order, recipient, action, at_ms, reason, source in self._db.execute(
            "SELECT id, recipient, action, at_ms, reason, source FROM suppression_events "
            "WHERE business = ?",
            (business,),
        ):
            yield Event(business, recipient, at_ms, Action(action), reason, source, order)


def _business_key(business: str | None) -> str:
    text = (business or "").strip()
    if text in ("", ANY_BUSINESS):
        return ANY_BUSINESS
    return phone_key(text) or text


def _in_words(path: Path, exc: BaseException) -> str:
    problem = storage_problem(exc)
    if problem is not None:
        return f"the receipts store {path} cannot be written: {problem.what}; {problem.remedy}"
    return f"the receipts store {path} cannot be used: {exc}"
