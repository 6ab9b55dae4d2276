"""The workspace ledger: which recipient already got which call of each campaign.

``<workspace>/ledger.sqlite`` holds one fingerprint per call sent (or possibly delivered):
campaign name, destination, recipient, and ``call_fingerprint`` of the exact query that
went out. ``send --only-new`` holds back a row whose recipient already got the same call
in an earlier run of the campaign.

Crash consistency: the ledger is derived, never the first record. Each run's journal holds
every sendable row's fingerprint, committed with the row and so before its intent
(``Journal.add_rows``); ``sync`` copies the fingerprints of the rows each run's journal
calls sent, unknown or in flight into the ledger. A send syncs its workspace before it
decides and again when it ends, so a process killed before its own sync misses nothing:
the next ``--only-new`` reads that run's journal. Each read replaces what the ledger held
for that run, so a row reconcile proves unsent is sendable again. A run is read again until
it has finished with nothing pending, in flight or unknown; a folder deleted later keeps its
entries, but one deleted before any sync is lost to the ledger (its journal was the only
record).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from campaigner.errors import JournalError
from campaigner.journal import Journal
from campaigner.statuses import JournalState

__all__ = ("LEDGER_NAME", "Ledger", "LedgerEntry", "call_fingerprint")

LEDGER_NAME = "ledger.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    campaign TEXT NOT NULL,
    destination TEXT NOT NULL,      -- sandbox | simulator | cams (runs.destination)
    recipient TEXT NOT NULL,        -- the normalized To (E.164 digits, or the user ID)
    fingerprint TEXT NOT NULL,      -- call_fingerprint of the query sent
    run TEXT NOT NULL,              -- the run folder's name in the workspace
    row INTEGER NOT NULL,
    state TEXT NOT NULL,            -- sent, unknown or intent in that run's journal
    recorded_at REAL NOT NULL,
    PRIMARY KEY (campaign, destination, recipient, fingerprint, run)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sent_by_call ON sent(campaign, recipient, fingerprint);
CREATE INDEX IF NOT EXISTS sent_by_run ON sent(run);
CREATE TABLE IF NOT EXISTS runs (
    run TEXT PRIMARY KEY,           -- a run folder's name in the workspace
    campaign TEXT NOT NULL,
    complete INTEGER NOT NULL       -- finished, nothing pending, in flight or unknown: read
);
"""


def call_fingerprint(query: Mapping[str, str]) -> str:
    """A hash of one call's query parameters (recipient included). Nothing in them varies
    per attempt: signing, nonce and time are added by the client."""
    text = json.dumps(sorted(query.items()), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An earlier send of a call: the run folder (name in the workspace), its row, and
    whether that run's journal says ``sent`` or only possibly (``unknown``/``intent``)."""

    run: str
    row: int
    state: str

    @property
    def certain(self) -> bool:
        return self.state == JournalState.SENT.value


class Ledger:
    """``ledger.sqlite`` in one workspace (WAL, synchronous=FULL)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        workspace.mkdir(parents=True, exist_ok=True)
        path = workspace / LEDGER_NAME
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=30000")  # another run may be syncing
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise JournalError(f"the workspace ledger {path} cannot be used: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes -----------------------------------------------------------------------
    def record(
        self,
        campaign: str,
        destination: str,
        run: str,
        entries: Iterable[tuple[int, str, str, str]],
    ) -> int:
        """Record (row, recipient, state, fingerprint) of what one run's journal says now,
        in place of what it said before (reconcile may have proved an unknown row sent, or
        not sent)."""
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM sent WHERE run=?", (run,))
            cur = self._db.executemany(
                "INSERT INTO sent(campaign, destination, recipient, fingerprint, run, row, "
                "state, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO UPDATE SET state=excluded.state, row=excluded.row",
                (
                    (campaign, destination, key, fp, run, row, state, now)
                    for row, key, state, fp in entries
                ),
            )
            count = cur.rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return count

    def sync(self, campaign: str, *, also: Sequence[Path] = ()) -> int:
        """Copy into the ledger what the journals of the workspace's runs of ``campaign``
        (and of the run folders ``also``) say was sent or possibly delivered. Runs read
        complete earlier are skipped. Returns the entries written."""
        known = dict(
            self._db.execute("SELECT run, complete FROM runs WHERE campaign=?", (campaign,))
        )
        others = {
            r for (r,) in self._db.execute("SELECT run FROM runs WHERE campaign!=?", (campaign,))
        }
        folders = {p.resolve() for p in also}
        if self.workspace.is_dir():
            folders |= {p.resolve() for p in self.workspace.iterdir() if p.is_dir()}
        written = 0
        for folder in sorted(folders):
            name = folder.name
            if name in others or known.get(name) or not Journal.exists_in(folder):
                continue
            try:
                journal = Journal.in_run(folder, check=False)
                try:
                    meta = journal.meta()
                    if meta.get("name") != campaign:
                        if "name" in meta:  # another campaign's run: never read again
                            self._mark(name, meta["name"], complete=True)
                        continue
                    counts = journal.counts()
                    rows = journal.delivered_calls()
                finally:
                    journal.close()
            except (JournalError, sqlite3.Error, OSError):
                continue  # a damaged or foreign folder: its own commands say so
            destination = meta.get("destination", "cams")
            written += self.record(
                campaign,
                destination,
                name,
                ((row, to or "", state, fp) for row, to, state, fp in rows),
            )
            # Pending rows may be sent, in-flight and unknown ones settled, later.
            unsettled = sum(
                counts.get(s, 0)
                for s in (JournalState.PENDING, JournalState.INTENT, JournalState.UNKNOWN)
            )
            self._mark(name, campaign, complete=meta.get("finished") == "yes" and not unsettled)
        return written

    def _mark(self, run: str, campaign: str, *, complete: bool) -> None:
        self._db.execute(
            "INSERT INTO runs(run, campaign, complete) VALUES (?, ?, ?) "
            "ON CONFLICT DO UPDATE SET campaign=excluded.campaign, complete=excluded.complete",
            (run, campaign, int(complete)),
        )

    # -- reads ------------------------------------------------------------------------
    def earlier(
        self,
        campaign: str,
        destination: str | None,
        calls: Iterable[tuple[str, str]],
        *,
        exclude_run: str | None = None,
    ) -> list[LedgerEntry | None]:
        """For each (recipient, fingerprint): the earliest send of it by another run to
        ``destination`` (None: to any), a certain one (``sent``) before a possible one;
        None when there is none. One query for the whole list (a batch)."""
        wanted = list(calls)
        found: list[LedgerEntry | None] = [None] * len(wanted)
        self._db.execute("BEGIN")
        try:
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS wanted "
                "(i INTEGER PRIMARY KEY, recipient TEXT NOT NULL, fingerprint TEXT NOT NULL)"
            )
            self._db.execute("DELETE FROM wanted")
            self._db.executemany(
                "INSERT INTO wanted(i, recipient, fingerprint) VALUES (?, ?, ?)",
                ((i, key, fp) for i, (key, fp) in enumerate(wanted)),
            )
            # wanted first (CROSS JOIN keeps that order): one index lookup per call.
            hits = self._db.execute(
                "SELECT wanted.i, sent.run, sent.row, sent.state FROM wanted "
                "CROSS JOIN sent INDEXED BY sent_by_call ON sent.campaign = :campaign "
                "AND sent.recipient = wanted.recipient AND sent.fingerprint = wanted.fingerprint "
                "WHERE sent.run IS NOT :exclude "
                "AND (:destination IS NULL OR sent.destination = :destination)",
                {"campaign": campaign, "exclude": exclude_run, "destination": destination},
            ).fetchall()
        finally:
            self._db.execute("COMMIT")
        for i, run, row, state in hits:
            entry = LedgerEntry(run, int(row), state)
            known = found[i]
            if known is None or (not entry.certain, run) < (not known.certain, known.run):
                found[i] = entry
        return found

    def count(self, campaign: str) -> int:
        return int(
            self._db.execute("SELECT count(*) FROM sent WHERE campaign=?", (campaign,)).fetchone()[
                0
            ]
        )
