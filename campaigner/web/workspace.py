"""The web app's workspace: the ``--out`` folder of run folders (the CLI's too), plus a
hidden folder for the web app's own files (password hash, session key, drafts, and what
it knows of its runs: paused, cancelled, scheduled, sending).

Names from requests (run ids, draft ids) are looked up among existing entries, never
joined into paths as they come."""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campaigner.errors import CampaignerError
from campaigner.journal import Journal
from campaigner.runstate import RunState, lock_held, shown_state

__all__ = ("RunInfo", "Workspace")

WEB_DIR = ".campaigner-web"
_WEB_STOPS = ("paused", "cancelled")  # RunControl reasons the run page shows as states
_DRAFT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


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


class Workspace:
    def __init__(self, out: Path) -> None:
        self.out = out
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

    def info(self, run_id: str) -> RunInfo | None:
        run_dir = self.run_dir(run_id)
        if run_dir is None:
            return None
        try:
            journal = Journal.in_run(run_dir, check=False)
        except CampaignerError:
            return RunInfo(run_id, run_dir, run_id, "interrupted")
        try:
            meta = journal.meta()
            counts = journal.counts()
        finally:
            journal.close()
        meta.pop("campaign_text", None)  # large, and not for pages
        state = shown_state(meta, lock_held(run_dir)).value
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
