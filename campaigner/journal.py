"""The run journal: one SQLite database per run, the durable record of every row.

Protocol (docs/row-states.md): a row's ``intent`` is committed (WAL, synchronous=FULL)
before its request leaves the machine; its outcome is committed after the answer is
parsed. A row found in ``intent`` when a run starts again may have been delivered, so
it becomes ``unknown`` and is never resent without ``--resend-unknown``.

States are ``statuses.JournalState``; the ``state`` column stores their values.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from campaigner.checkpointing import Checkpointer
from campaigner.errors import JournalError
from campaigner.statuses import JournalState

__all__ = (
    "Journal",
    "Outcome",
    "RunLock",
    "file_fingerprint",
)

JOURNAL_NAME = "journal.sqlite"
LOCK_NAME = "run.lock"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    row INTEGER PRIMARY KEY,         -- the input row number (header = 1)
    state TEXT NOT NULL,
    recipient TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    message_id TEXT,
    code TEXT,
    message TEXT,
    request_id TEXT,
    error TEXT,
    intent_at REAL,                  -- wall clock (epoch s) of the last intent
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS rows_state ON rows(state);
-- The fingerprint of each sendable row's call (ledger.py), committed with the row, so
-- before its intent: the workspace ledger is rebuilt from these after any crash.
CREATE TABLE IF NOT EXISTS calls (row INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL);
"""

# The rows in each state, kept by triggers as the rows change: a run page reads them several
# times a second, and counting a million rows costs 50 ms of CPU each time (a few µs a
# change instead). Created with the counts of the rows already there (a journal of an
# earlier version), in the same transaction.
_STATE_COUNTS = (
    "CREATE TABLE state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT INTO state_counts(state, n) SELECT state, count(*) FROM rows GROUP BY state",
    """CREATE TRIGGER state_counts_insert AFTER INSERT ON rows BEGIN
        INSERT INTO state_counts(state, n) VALUES (new.state, 1)
            ON CONFLICT(state) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER state_counts_update AFTER UPDATE OF state ON rows
    WHEN old.state IS NOT new.state BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = old.state;
        INSERT INTO state_counts(state, n) VALUES (new.state, 1)
            ON CONFLICT(state) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER state_counts_delete AFTER DELETE ON rows BEGIN
        UPDATE state_counts SET n = n - 1 WHERE state = old.state;
    END""",
)


def file_fingerprint(path: Path) -> dict[str, str]:
    """Path, size and SHA-256 of a file: what resume compares to refuse changed input."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {
        "path": str(path.resolve()),
        "size": str(path.stat().st_size),
        "sha256": digest.hexdigest(),
    }


@dataclass(frozen=True, slots=True)
class Outcome:
    """A row's state change after an answer (or a decision not to send)."""

    row: int
    state: JournalState
    attempts: int
    message_id: str | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    error: str | None = None


class RunLock:
    """One process per run directory: an exclusive, non-blocking flock."""

    def __init__(self, run_dir: Path) -> None:
        self._path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(
                f"another campaigner process is working on {self._path.parent}; "
                "wait for it to finish (one run at a time)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Journal:
    """Synchronous SQLite access; the send pool calls it from one worker thread at a time."""

    def __init__(self, path: Path, *, check: bool = True) -> None:
        """Open (or create) a journal; ``check`` first verifies an existing one page by page,
        so damage is found here rather than halfway through a resume."""
        self.path = path
        self._checkpointer: Checkpointer | None = None
        existing = path.exists() and path.stat().st_size > 0
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"the run journal {path} cannot be opened: {exc}") from None
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if check and existing:
                problems = [r[0] for r in self._db.execute("PRAGMA quick_check(1)")]
                if problems != ["ok"]:
                    raise _Damaged(problems[0] if problems else "no answer")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            self._db.close()
            raise JournalError(_open_error(path, exc)) from None
        self._counted = self._count_states()

    def _has_state_counts(self) -> bool:
        found = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='state_counts'"
        ).fetchone()
        return found is not None

    def _count_states(self) -> bool:
        """True when ``state_counts`` is kept (created here if missing); False when it
        cannot be (a read-only folder): ``counts`` then counts the rows themselves."""
        try:
            if self._has_state_counts():
                return True
            with self._tx():
                if not self._has_state_counts():  # another process may have just made it
                    for statement in _STATE_COUNTS:
                        self._db.execute(statement)
        except sqlite3.Error:
            return False
        return True

    @classmethod
    def in_run(cls, run_dir: Path, *, check: bool = True) -> Journal:
        return cls(run_dir / JOURNAL_NAME, check=check)

    @staticmethod
    def exists_in(run_dir: Path) -> bool:
        return (run_dir / JOURNAL_NAME).exists()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        self._db.close()

    def checkpoint_apart(self) -> None:
        """Commits stop copying the log into the database themselves (50-300 ms each time,
        while the next intents wait): a thread of its own does it (``checkpointing``)."""
        if self._checkpointer is None:
            self._checkpointer = Checkpointer(self.path, self._db)

    # -- metadata ---------------------------------------------------------------------
    def set_meta(self, values: dict[str, str]) -> None:
        with self._tx():
            self._db.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", values.items()
            )

    def meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def switch_meta(
        self, key: str, allowed: Collection[str | None], values: dict[str, str]
    ) -> str | None:
        """Write ``values`` only if ``key`` now holds one of ``allowed`` (None: not set), in
        one transaction: another process may be switching it at the same moment (a run's
        state: ``campaigner cancel`` against the waiting send). Returns what ``key`` held."""
        with self._tx():
            found = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
            held = None if found is None else str(found[0])
            if held in allowed:
                self._db.executemany(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", values.items()
                )
            return held

    # -- writes -----------------------------------------------------------------------
    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def add_rows(
        self,
        rows: Iterable[tuple[int, JournalState, str | None, str | None]],
        calls: Iterable[tuple[int, str]] = (),
    ) -> None:
        """Record newly checked rows: (row, state, recipient, error), and the fingerprints of
        their calls: (row, fingerprint). Existing rows and fingerprints are kept."""
        now = time.time()
        with self._tx():
            self._db.executemany(
                "INSERT OR IGNORE INTO rows(row, state, recipient, error, updated_at) "
                "VALUES (?, ?, ?, ?, ?)",
                ((r, JournalState(s).value, to, err, now) for r, s, to, err in rows),
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO calls(row, fingerprint) VALUES (?, ?)", calls
            )

    def hold_pending(self, rows: Iterable[tuple[int, JournalState, str | None]]) -> int:
        """Rows still ``pending`` that the workspace now holds back (a recipient who opted out
        since the run started): (row, state, error). Rows in any other state are kept."""
        with self._tx():
            cur = self._db.executemany(
                "UPDATE rows SET state=?, error=?, updated_at=? WHERE row=? AND state=?",
                (
                    (JournalState(s).value, err, time.time(), r, JournalState.PENDING.value)
                    for r, s, err in rows
                ),
            )
            return cur.rowcount

    def apply(self, intents: Sequence[int], outcomes: Sequence[Outcome]) -> None:
        """Commit outcomes and intents together, in that order, in one transaction."""
        now = time.time()
        with self._tx():
            if outcomes:
                self._db.executemany(
                    "UPDATE rows SET state=?, attempts=?, message_id=?, code=?, message=?, "
                    "request_id=?, error=?, updated_at=? WHERE row=?",
                    (
                        (
                            JournalState(o.state).value,
                            o.attempts,
                            o.message_id,
                            o.code,
                            o.message,
                            o.request_id,
                            o.error,
                            now,
                            o.row,
                        )
                        for o in outcomes
                    ),
                )
            if intents:
                self._db.executemany(
                    "UPDATE rows SET state=?, intent_at=?, updated_at=? WHERE row=?",
                    ((JournalState.INTENT.value, now, now, r) for r in intents),
                )
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def note_pending(self, rows: Iterable[tuple[int, str]]) -> None:
        """Why rows still ``pending`` are not sent (a send window that does not open before
        the deadline): (row, error). Rows in any other state are kept."""
        with self._tx():
            self._db.executemany(
                "UPDATE rows SET error=?, updated_at=? WHERE row=? AND state=?",
                ((err, time.time(), r, JournalState.PENDING.value) for r, err in rows),
            )

    def settle_interrupted(self) -> int:
        """Rows left in ``intent`` by a crash may have been delivered: mark them unknown."""
        with self._tx():
            cur = self._db.execute(
                "UPDATE rows SET state=?, code=coalesce(code, 'Interrupted'), "
                "message='the run stopped while this message was in flight; it may have "
                "been delivered (run `campaigner reconcile`)', updated_at=? WHERE state=?",
                (JournalState.UNKNOWN.value, time.time(), JournalState.INTENT.value),
            )
            return cur.rowcount

    def give_up(self, rows: Iterable[int]) -> int:
        """Rows left pending after answers that provably were not accepted (throttling,
        503) become failed, keeping their code: a retry run sends them now, so a resume of
        this run must not."""
        with self._tx():
            cur = self._db.executemany(
                "UPDATE rows SET state=?, updated_at=? WHERE row=? AND state=?",
                (
                    (JournalState.FAILED.value, time.time(), r, JournalState.PENDING.value)
                    for r in rows
                ),
            )
            return cur.rowcount

    def reopen_unknown(self) -> int:
        """``--resend-unknown``: unknown rows go back to pending."""
        with self._tx():
            cur = self._db.execute(
                "UPDATE rows SET state=?, updated_at=? WHERE state=?",
                (JournalState.PENDING.value, time.time(), JournalState.UNKNOWN.value),
            )
            return cur.rowcount

    # -- reads ------------------------------------------------------------------------
    def states(self) -> dict[int, str]:
        return dict(self._db.execute("SELECT row, state FROM rows").fetchall())

    def states_between(self, lo: int, hi: int) -> dict[int, str]:
        return dict(
            self._db.execute("SELECT row, state FROM rows WHERE row BETWEEN ? AND ?", (lo, hi))
        )

    def rows_between(self, lo: int, hi: int) -> list[tuple[object, ...]]:
        """(row, state, attempts, message_id, code, message, request_id, error, recipient)
        by row."""
        return self._db.execute(
            "SELECT row, state, attempts, message_id, code, message, request_id, error, "
            "recipient FROM rows WHERE row BETWEEN ? AND ?",
            (lo, hi),
        ).fetchall()

    def counts(self) -> dict[str, int]:
        """The number of rows in each state (states with none left out)."""
        if self._counted:
            query = "SELECT state, n FROM state_counts WHERE n > 0"
        else:
            query = "SELECT state, count(*) FROM rows GROUP BY state"
        return dict(self._db.execute(query).fetchall())

    def iter_rows(self, batch: int = 50_000) -> Iterator[list[tuple[object, ...]]]:
        cur = self._db.execute(
            "SELECT row, state, recipient, attempts, message_id, code, message, request_id, "
            "error, intent_at FROM rows ORDER BY row"
        )
        while chunk := cur.fetchmany(batch):
            yield chunk

    def delivered_calls(self) -> list[tuple[int, str | None, str, str]]:
        """(row, recipient, state, fingerprint) of the rows sent or possibly delivered
        (``sent``, ``unknown``, ``intent``) whose call has a fingerprint."""
        states = (JournalState.SENT, JournalState.UNKNOWN, JournalState.INTENT)
        return self._db.execute(
            "SELECT rows.row, recipient, state, fingerprint FROM rows JOIN calls USING (row) "
            "WHERE state IN (?, ?, ?) ORDER BY rows.row",
            tuple(s.value for s in states),
        ).fetchall()

    def unknown_rows(self) -> list[tuple[int, str | None, float | None]]:
        return self._db.execute(
            "SELECT row, recipient, intent_at FROM rows WHERE state=? ORDER BY row",
            (JournalState.UNKNOWN.value,),
        ).fetchall()

    def integrity_ok(self) -> bool:
        return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


class _Damaged(sqlite3.DatabaseError):
    """``PRAGMA quick_check`` found a problem."""


def _open_error(path: Path, exc: sqlite3.Error) -> str:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    detail = " ".join(str(exc).split())  # quick_check's findings span several lines
    if isinstance(exc, _Damaged) or code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        # Damaged rows may be ones that were sent: nothing here can say what was delivered.
        return (
            f"the run journal {path} is damaged ({detail}); rows may have been sent that it no "
            "longer shows, so resume, report and reconcile cannot rely on it: keep the run "
            "folder as it is and check in the CAMS console what was sent before sending again"
        )
    return f"the run journal {path} cannot be used: {detail}"


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type else "COMMIT")
