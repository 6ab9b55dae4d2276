"""WAL checkpoints off the committing thread.

By default SQLite copies the write-ahead log back into the database on the commit that
takes the log past 1,000 pages, and fsyncs the database there and then: that commit takes
50-300 ms instead of a few. For the send journal it is the commit of the next intents, so
the sends wait (measured as a dip of up to 60 messages in one second at 250/s). A
``Checkpointer`` turns that off for one connection and checkpoints from a connection of its
own in a thread of its own instead, at most once a second, without blocking the writer
(``PASSIVE``). A log that still grows past ``restart_bytes`` (every checkpoint raced a
commit) is restarted once with ``RESTART``, which waits for the writer's current commit
only: by then almost every page is copied already.

Checkpointing moves no data a crash could lose: the log stays the durable copy until
SQLite has copied it, whoever runs the checkpoint and whenever it stops.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ("Checkpointer",)

_log = logging.getLogger(__name__)

_EVERY_S = 1.0
_RESTART_BYTES = 64 * 1024 * 1024


class Checkpointer:
    """Checkpoints the WAL database at ``path`` in a background thread; ``writer`` (the
    connection that commits) stops checkpointing itself. ``poke`` after commits."""

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        *,
        every_s: float = _EVERY_S,
        restart_bytes: int = _RESTART_BYTES,
    ) -> None:
        self._path = path
        self._wal = path.with_name(path.name + "-wal")
        self._every_s = every_s
        self._restart_bytes = restart_bytes
        self._due = threading.Event()
        self._closing = False
        self._last = time.monotonic()
        writer.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """A commit happened: checkpoint if the last one is a while ago (cheap to call)."""
        if time.monotonic() - self._last >= self._every_s:
            self._due.set()

    def close(self) -> None:
        """Stop the thread (a checkpoint under way finishes first)."""
        self._closing = True
        self._due.set()
        self._thread.join()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(self._path, isolation_level=None, timeout=10.0)
            while True:
                self._due.wait()
                self._due.clear()
                if self._closing:
                    return
                self._checkpoint(db)
                self._last = time.monotonic()
        except sqlite3.Error as exc:
            # The writer's own commits meet any real problem (disk full, I/O error) and say
            # so; without checkpoints the log only grows until SQLite checkpoints at close.
            _log.debug("WAL checkpoints of %s stopped: %s", self._path, exc)
        finally:
            if db is not None:
                db.close()

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        try:
            size = self._wal.stat().st_size
        except OSError:
            size = 0
        mode = "RESTART" if size > self._restart_bytes else "PASSIVE"
        db.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
