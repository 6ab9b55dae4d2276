"""A run's counts by state, as a run page reads them several times a second: from the
journal's ``state_counts`` (kept by triggers) against counting every row, on a journal of
``--rows`` rows (default 1,000,000), and what the triggers cost the journal's writes.

    .venv/bin/python -u bench/run_counts.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from campaigner.journal import Journal, Outcome
from campaigner.statuses import JournalState

_BATCH = 5_000


def cpu_ms(func: Callable[[], object], times: int = 5) -> float:
    """The least CPU time of ``times`` calls, in ms."""
    best = float("inf")
    for _ in range(times):
        started = time.process_time()
        func()
        best = min(best, time.process_time() - started)
    return best * 1000


def fill(journal: Journal, rows: int) -> tuple[float, float]:
    """Rows added in batches, then a tenth of them sent (intent, then outcome, 8 at a time
    as the send pool commits); CPU seconds of each part."""
    started = time.process_time()
    for first in range(2, rows + 2, _BATCH):
        last = min(first + _BATCH, rows + 2)
        journal.add_rows(
            (r, JournalState.PENDING, f"86139{r:08d}", None) for r in range(first, last)
        )
    added = time.process_time() - started
    started = time.process_time()
    for first in range(2, rows // 10 + 2, 8):
        chunk = list(range(first, first + 8))
        journal.apply(chunk, [])
        journal.apply([], [Outcome(r, JournalState.SENT, 1, message_id=f"m{r}") for r in chunk])
    return added, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        counted = Path(folder) / "counted"
        counted.mkdir()
        journal = Journal.in_run(counted)
        added, sent = fill(journal, args.rows)
        path = counted / "journal.sqlite"
        kept = cpu_ms(journal.counts)
        with sqlite3.connect(path) as db:
            by_rows = cpu_ms(
                lambda: db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall()
            )
            assert dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state")) == (
                journal.counts()
            )
            for trigger in ("insert", "update", "delete"):
                db.execute(f"DROP TRIGGER state_counts_{trigger}")
        journal.close()
        # The same writes without the triggers (a journal of an earlier version would have
        # them added on opening: this measures the writes alone, on a bare copy).
        bare = Path(folder) / "bare"
        bare.mkdir()
        journal = Journal.in_run(bare)
        with sqlite3.connect(bare / "journal.sqlite") as db:
            for trigger in ("insert", "update", "delete"):
                db.execute(f"DROP TRIGGER state_counts_{trigger}")
        bare_added, bare_sent = fill(journal, args.rows)
        journal.close()
    print(
        f"counts of a {args.rows:,}-row journal: {kept:.3f} ms of CPU from state_counts, "
        f"{by_rows:.1f} ms counting the rows ({by_rows / max(kept, 1e-3):,.0f}x)"
    )
    per_change = (sent - bare_sent) / (args.rows // 10 * 2) * 1e6
    print(
        f"the triggers' cost: adding the rows {added:.2f} s of CPU ({bare_added:.2f} s without), "
        f"sending a tenth {sent:.2f} s ({bare_sent:.2f} s without): "
        f"{per_change:.1f} µs per state change"
    )


if __name__ == "__main__":
    main()
