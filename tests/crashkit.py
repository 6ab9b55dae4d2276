"""Test-only helpers for the crash tests: waiting on a `campaigner send` child's run folder
(the process harness and the crash check are campaigner.sim.harness and .crashcheck).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from campaigner.sim.crashcheck import run_dir


def wait_for_run(out: Path, timeout: float = 20) -> Path | None:
    """The run folder of a send that is starting (None if none appeared in time)."""
    deadline = time.monotonic() + timeout
    while (found := run_dir(out)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def wait_for_sent(folder: Path, at_least: int = 1, timeout: float = 60) -> None:
    """Until the run has journaled ``at_least`` sent rows: it is past its start, sending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(folder / "journal.sqlite", timeout=5)
            try:
                (sent,) = db.execute("SELECT count(*) FROM rows WHERE state='sent'").fetchone()
            finally:
                db.close()
            if sent >= at_least:
                return
        except sqlite3.Error:
            pass  # the table is not there yet
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} sent rows in {folder} after {timeout} s")
