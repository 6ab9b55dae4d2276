"""Where a run stands: the states a run goes through, recorded in its journal's meta, and
the list of a workspace's runs (``campaigner runs``).

A send records ``scheduled`` (waiting for ``--at``), ``sending`` (or ``paused``), then
``done`` or ``stopped`` (it ended with rows left: ``--limit``, a signal, an outage); a
cancelled scheduled run records ``cancelled``. What a process records cannot say that the
process was killed, so the state shown also asks whether anyone holds the run's lock: a
run nobody holds that is not done, stopped or cancelled was ``interrupted``.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from campaigner.errors import JournalError
from campaigner.journal import LOCK_NAME, Journal
from campaigner.retriable import RetryPlan, matching_rows

__all__ = (
    "META_NOT_ATTEMPTED_REASON",
    "META_NOT_IN_RUN_REASON",
    "META_RETRIED_IN",
    "META_RETRY_CODES",
    "META_RETRY_OF",
    "META_RETRY_OF_CODES",
    "META_SCHEDULED_FOR",
    "META_STATE",
    "PAUSE_REASON",
    "RunInfo",
    "RunState",
    "ending_meta",
    "link_retry",
    "list_runs",
    "lock_held",
    "read_run",
    "resumed_retry",
    "retry_meta",
    "shown_state",
    "starting_meta",
)


class RunState(StrEnum):
    """A run's state as ``campaigner runs`` shows it."""

    SCHEDULED = "scheduled"  # validated, waiting for its --at time
    SENDING = "sending"
    PAUSED = "paused"  # paused (the web app's Pause), or alive but holding its sends
    DONE = "done"  # every row settled
    STOPPED = "stopped"  # ended with rows left to send (--limit, a signal, an outage): --resume
    INTERRUPTED = "interrupted"  # its process died mid-way: --resume (or reconcile) it
    CANCELLED = "cancelled"  # a scheduled run cancelled before it sent anything


# Journal meta keys (the journal's ``meta`` table) this module and the send write.
META_STATE = "state"  # a RunState value, as the process last recorded it
META_SCHEDULED_FOR = "scheduled_for"  # ISO 8601 with offset: when a scheduled run sends
META_RETRY_OF = "retry_of"  # the run this one retries
META_RETRIED_IN = "retried_in"  # the run that retried this one
META_RETRY_CODES = "retry_codes"  # the codes (patterns, comma-separated) that retry took
META_RETRY_OF_CODES = "retry_of_codes"  # ... and those this run, a retry, retries
# The reason the report gives for not_attempted rows: every one of them, or only those
# the run never journaled (the rows a retry left out). Empty: none.
META_NOT_ATTEMPTED_REASON = "not_attempted_reason"
META_NOT_IN_RUN_REASON = "not_in_run_reason"

# The stop reason of a Pause (``RunControl.stop("paused")``): shown as paused.
PAUSE_REASON = "paused"
# Recorded states a process leaves behind on purpose: shown as they are.
_ENDED = frozenset({RunState.DONE, RunState.STOPPED, RunState.CANCELLED})
_ALIVE = frozenset({RunState.SCHEDULED, RunState.SENDING, RunState.PAUSED})


@dataclass(frozen=True)
class RunInfo:
    """One run of a workspace, as of the moment it was read."""

    run_dir: Path
    name: str  # the campaign's name
    state: RunState
    counts: dict[str, int] = field(default_factory=dict)  # journal state -> rows
    created_at: datetime | None = None
    scheduled_for: datetime | None = None
    retry_of: Path | None = None
    retried_in: Path | None = None
    stop_reason: str | None = None


def starting_meta(at: datetime | None) -> dict[str, str]:
    """The journal meta of a run as a send starts it: scheduled (until ``at``) or sending."""
    values = {META_STATE: RunState.SENDING.value, META_NOT_ATTEMPTED_REASON: ""}
    values["finished"] = "no"
    if at is not None:
        values |= {META_STATE: RunState.SCHEDULED.value, META_SCHEDULED_FOR: at.isoformat()}
    return values


def ending_meta(stopped: str | None, limited: str | None, resume_with: str) -> dict[str, str]:
    """The journal meta of a run as its send ends: done, or stopped with rows left (a stop
    the pool was asked for, ``stopped``; or ``--limit``, ``limited``)."""
    finished = stopped is None and limited is None
    values = {
        "finished": "yes" if finished else "no",
        META_STATE: RunState.DONE.value if finished else RunState.STOPPED.value,
        "stop_reason": stopped or limited or "",
    }
    if limited is not None and stopped is None:
        values[META_NOT_ATTEMPTED_REASON] = f"not sent yet: {limited}; continue with: {resume_with}"
    return values


def lock_held(run_dir: Path) -> bool:
    """Whether a process holds the run's lock (a send, a reconcile) right now.

    A shared, non-blocking probe released at once: it never waits, and it creates no lock
    file. (A process taking the lock in the same microsecond would be told the run is
    busy, and can try again.)"""
    try:
        fd = os.open(run_dir / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def shown_state(meta: dict[str, str], held: bool) -> RunState:
    """The state of a run from what it recorded and whether its lock is held."""
    recorded = meta.get(META_STATE)
    if recorded is None and meta.get("finished") == "yes":  # a run from before states
        recorded = RunState.DONE.value
    if recorded == RunState.STOPPED and meta.get("stop_reason") == PAUSE_REASON:
        return RunState.PAUSED  # stopped by a Pause (the web app's): resumable like stopped
    if recorded in _ENDED:
        return RunState(recorded)
    if held:
        return RunState(recorded) if recorded in _ALIVE else RunState.SENDING
    return RunState.INTERRUPTED


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        try:
            return datetime.fromtimestamp(float(value), UTC)  # created_at: epoch seconds
        except (ValueError, OverflowError, OSError):
            return None


def read_run(run_dir: Path) -> RunInfo:
    """One run's ``RunInfo``; ``JournalError`` when ``run_dir`` is no run folder."""
    if not Journal.exists_in(run_dir):
        raise JournalError(f"{run_dir} is not a campaigner run folder (no journal)")
    held = lock_held(run_dir)
    journal = Journal.in_run(run_dir, check=False)  # a look: the run may be sending
    try:
        meta = journal.meta()
        counts = journal.counts()
    finally:
        journal.close()
    return RunInfo(
        run_dir,
        meta.get("name", run_dir.name),
        shown_state(meta, held),
        counts,
        _when(meta.get("created_at")),
        _when(meta.get(META_SCHEDULED_FOR)),
        Path(meta[META_RETRY_OF]) if meta.get(META_RETRY_OF) else None,
        Path(meta[META_RETRIED_IN]) if meta.get(META_RETRIED_IN) else None,
        meta.get("stop_reason") or None,
    )


def list_runs(out: Path) -> list[RunInfo]:
    """The runs under ``out`` (a workspace's ``--out`` folder), oldest first. Folders that
    are no run (a preview's, a run being created) are left out, and so is a run whose
    journal cannot be read (``campaigner report`` on it says why)."""
    if not out.is_dir():
        return []
    runs = []
    for folder in sorted(out.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or not Journal.exists_in(folder):
            continue
        try:
            runs.append(read_run(folder))
        except (JournalError, OSError, sqlite3.Error):
            continue
    epoch = datetime.fromtimestamp(0, UTC)
    return sorted(runs, key=lambda r: (r.created_at or epoch, r.run_dir.name))


def retry_meta(retry: RetryPlan) -> dict[str, str]:
    """The journal meta of a retry run: what it retries (a resume of it reads them back)."""
    return {
        META_RETRY_OF: str(retry.of.resolve()),
        META_RETRY_OF_CODES: ",".join(retry.codes),
        META_NOT_IN_RUN_REASON: f"not retried: its outcome is in {retry.of.resolve()}",
    }


def resumed_retry(meta: dict[str, str]) -> RetryPlan | None:
    """The rows a retry run sends, read back when it is resumed (None: no retry run): the
    rows of the run it retries that failed with its codes (failed rows never change)."""
    if not meta.get(META_RETRY_OF):
        return None
    of = Path(meta[META_RETRY_OF])
    codes = tuple(c for c in meta.get(META_RETRY_OF_CODES, "").split(",") if c)
    if not Journal.exists_in(of):
        raise JournalError(f"cannot resume this retry: the run it retries ({of}) is gone")
    journal = Journal.in_run(of, check=False)
    try:
        return RetryPlan(of, matching_rows(journal, codes), codes)
    finally:
        journal.close()


def link_retry(retry: RetryPlan, run_dir: Path) -> None:
    """Record in the retried run that ``run_dir`` retries its rows (and with which codes:
    its report's ``retried_in`` column and a second retry read them)."""
    journal = Journal.in_run(retry.of, check=False)
    try:
        journal.give_up(sorted(retry.rows))  # no resume of the old run sends them too
        link = {META_RETRIED_IN: str(run_dir.resolve()), META_RETRY_CODES: ",".join(retry.codes)}
        journal.set_meta(link)
    finally:
        journal.close()
