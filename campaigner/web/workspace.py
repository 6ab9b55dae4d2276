"""The web app's workspace: the ``--out`` folder of run folders (the CLI's too), plus a
hidden folder for the web app's own files (password hash, session key, drafts, and what
it knows of its runs: paused, cancelled, scheduled, sending).

Names from requests (run ids, draft ids) are looked up among existing entries, never
joined into paths as they come."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaigner.errors import CampaignerError
from campaigner.journal import JOURNAL_NAME, Journal
from campaigner.runstate import RunState, lock_held, shown_state

__all__ = ("RunInfo", "Workspace")

WEB_DIR = ".campaigner-web"
_WEB_STOPS = ("paused", "cancelled")  # RunControl reasons the run page shows as states
_DRAFT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_MAX_OPEN = 32  # journals kept open for watched runs
_KEPT_OPEN_STATES = (RunState.SENDING.value, RunState.SCHEDULED.value)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole: a crash leaves the old file or the new one."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    temp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temp, path)


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class RunInfo:
    """One run folder as the campaigns list shows it."""

    run_id: str
    run_dir: Path
    name: str
    state: str  # scheduled | sending | paused | done | stopped | interrupted | cancelled
    counts: dict[str, int] = field(default_factory=dict)  # journal states
    meta: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0

    def count(self, state: str) -> int:
        return self.counts.get(state, 0)


class _OpenJournals:
    """The journals of watched runs, open between reads (each guarded by a lock of its
    own: the page updates of several watchers read from worker threads), at most
    ``_MAX_OPEN``, least recently used closed first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[str, tuple[int, Journal, threading.Lock]] = OrderedDict()

    @contextlib.contextmanager
    def reading(self, run_id: str, run_dir: Path, keep_open: bool) -> Iterator[Journal]:
        if not keep_open:
            with self._once(run_dir) as journal:
                yield journal
            return
        try:  # a run folder deleted and made again has a journal of its own
            inode = (run_dir / JOURNAL_NAME).stat().st_ino
        except OSError:
            inode = -1
        with self._lock:
            entry = self._open.get(run_id)
            if entry is not None and entry[0] != inode:
                self._close(run_id)
                entry = None
            if entry is None:
                entry = (inode, Journal.in_run(run_dir, check=False), threading.Lock())
                self._open[run_id] = entry
                while len(self._open) > _MAX_OPEN:
                    self._close(next(iter(self._open)))
            self._open.move_to_end(run_id)
        _, journal, lock = entry
        try:
            with lock:  # not under self._lock: _close takes self._lock, then this
                if self._open.get(run_id) is not entry:  # closed by another thread meanwhile
                    with self._once(run_dir) as once:
                        yield once
                    return
                yield journal
        except sqlite3.Error:
            self.drop(run_id)
            raise

    @staticmethod
    @contextlib.contextmanager
    def _once(run_dir: Path) -> Iterator[Journal]:
        journal = Journal.in_run(run_dir, check=False)
        try:
            yield journal
        finally:
            journal.close()

    def drop(self, run_id: str) -> None:
        with self._lock:
            self._close(run_id)

    def _close(self, run_id: str) -> None:
        entry = self._open.pop(run_id, None)
        if entry is not None:
            with entry[2]:
                entry[1].close()


class Workspace:
    def __init__(self, out: Path) -> None:
        self.out = out
        self._journals = _OpenJournals()
        self.web_dir = out / WEB_DIR
        self.drafts_dir = self.web_dir / "drafts"
        self.runs_state_dir = self.web_dir / "runs"
        for folder in (self.out, self.web_dir, self.drafts_dir, self.runs_state_dir):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

    # -- drafts ---------------------------------------------------------------------------
    def new_draft(self) -> tuple[str, Path]:
        draft_id = secrets.token_urlsafe(16)
        folder = self.drafts_dir / draft_id
        folder.mkdir(mode=0o700)
        return draft_id, folder

    def draft(self, draft_id: str) -> Path | None:
        if not _DRAFT_ID.fullmatch(draft_id):
            return None
        folder = self.drafts_dir / draft_id
        return folder if folder.is_dir() else None

    # -- runs -----------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path | None:
        """The run folder named ``run_id``, when it is one (a direct child with a journal).
        A name with a separator, a NUL, or a leading dot (``..``, hidden folders) is none."""
        if not run_id or run_id.startswith(".") or "/" in run_id or "\0" in run_id:
            return None
        folder = self.out / run_id
        if folder.parent != self.out or folder.is_symlink() or not folder.is_dir():
            return None
        return folder if Journal.exists_in(folder) else None

    def web_state(self, run_id: str) -> dict[str, Any]:
        return read_json(self.runs_state_dir / f"{run_id}.json")

    def set_web_state(self, run_id: str, **values: Any) -> None:
        path = self.runs_state_dir / f"{run_id}.json"
        write_json(path, {**read_json(path), **values})

    def run_ids(self) -> list[str]:
        try:
            entries = [e for e in os.scandir(self.out) if e.is_dir() and not e.name.startswith(".")]
        except OSError:
            return []
        return [e.name for e in entries if Journal.exists_in(Path(e.path))]

    def info(self, run_id: str, *, keep_open: bool = False) -> RunInfo | None:
        """``keep_open``: a watched run's journal stays open while the run sends, so that
        its page's updates do not each pay for opening it."""
        run_dir = self.run_dir(run_id)
        if run_dir is None:
            self._journals.drop(run_id)
            return None
        try:
            with self._journals.reading(run_id, run_dir, keep_open) as journal:
                meta = journal.meta()
                counts = journal.counts()
        except CampaignerError:
            return RunInfo(run_id, run_dir, run_id, "interrupted")
        meta.pop("campaign_text", None)  # large, and not for pages
        state = shown_state(meta, lock_held(run_dir)).value
        if state not in _KEPT_OPEN_STATES:
            # Closed once the send is over: the last connection's close checkpoints the
            # journal and removes its -wal file, as after a CLI run.
            self._journals.drop(run_id)
        if state == RunState.STOPPED and meta.get("stop_reason") in _WEB_STOPS:
            state = meta["stop_reason"]  # the web app's Pause or Cancel
        try:
            created = float(meta.get("created_at", "0"))
        except ValueError:
            created = 0.0
        return RunInfo(run_id, run_dir, meta.get("name", run_id), state, counts, meta, created)

    def runs(self) -> list[RunInfo]:
        found = [self.info(run_id) for run_id in self.run_ids()]
        return sorted((r for r in found if r is not None), key=lambda r: -r.created_at)
