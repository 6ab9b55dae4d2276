"""A run's folder and the per-user record of runs. Shared by preview and send."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

__all__ = (
    "PARTIAL_MARK",
    "RunRegistry",
    "new_run_dir",
    "run_folder_stem",
)


PARTIAL_MARK = ".partial-"  # in the hidden name a run folder has while it is prepared
# A file name holds at most 255 bytes; the stem leaves room for "-<UTC time>-<n>" and for
# the hidden ".<stem>-<time>.partial-XXXXXXXX" a folder has while it is prepared.
_MAX_STEM_BYTES = 150


def run_folder_stem(name: str) -> str:
    """A run folder's name before ``-<UTC time>``: the campaign name, or, when that is too
    long for a file name (multibyte characters count by their UTF-8 bytes), its first
    characters and a short hash of the whole name, so that long names never share folders."""
    encoded = name.encode("utf-8")
    if len(encoded) <= _MAX_STEM_BYTES:
        return name
    digest = hashlib.sha256(encoded).hexdigest()[:10]
    head = encoded[: _MAX_STEM_BYTES - len(digest) - 1].decode("utf-8", "ignore")  # whole chars
    return f"{head}-{digest}"


def new_run_dir(
    out: Path,
    name: str,
    now: datetime | None = None,
    *,
    prepare: Callable[[Path], None] | None = None,
) -> Path:
    """``<out>/<name>-<UTC timestamp>/``, created with private permissions.

    With ``prepare``, the folder is filled under a hidden temporary name and renamed into
    place once ``prepare`` returns: a crash never leaves a half-made run folder behind.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{run_folder_stem(name)}-{stamp}"
    names = (base.with_name(f"{base.name}-{n}") if n > 1 else base for n in range(1, 10_000))
    if prepare is None:
        for candidate in names:
            try:
                candidate.mkdir(mode=0o700)
                return candidate
            except FileExistsError:
                continue
        raise FileExistsError(f"no free run folder name for {base}")
    partial = Path(tempfile.mkdtemp(prefix=f".{base.name}{PARTIAL_MARK}", dir=out))  # 0700
    try:
        prepare(partial)
        for candidate in names:
            try:
                os.rename(partial, candidate)  # refused when the name holds a non-empty folder
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                    continue
                raise
            _fsync_dir(out)  # the rename is durable before anything is sent from the folder
            return candidate
        raise FileExistsError(f"no free run folder name for {base}")
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def private_umask() -> None:
    """Reports and journals hold phone numbers: files default to owner-only."""
    os.umask(0o077)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the per-user record of run folders -----------------------------------------------------


def _state_dir() -> Path | None:
    """``$XDG_STATE_HOME/campaigner`` (``~/.local/state/campaigner`` when unset)."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec ignores a relative value
        return Path(xdg) / "campaigner"
    try:
        return Path.home() / ".local" / "state" / "campaigner"
    except RuntimeError:  # no home folder to be found
        return None


class RunRegistry:
    """The run folders of each campaign name, kept per user, so that an earlier run is found
    whatever ``--out`` it used: one JSON line per run in ``runs.jsonl`` in the state folder.

    A record that cannot be read or written is a warning, given once; earlier runs are then
    looked for under ``--out`` only.
    """

    def __init__(self, warn: Callable[[str], None], path: Path | None = None) -> None:
        if path is None:
            state = _state_dir()
            path = state / "runs.jsonl" if state is not None else None
        self.path = path
        self._warn = warn
        self._warned = False

    def _warn_once(self, what: str) -> None:
        if not self._warned:
            self._warned = True
            self._warn(f"{what}; earlier runs are looked for only under --out")

    def folders(self, name: str) -> list[Path]:
        """Recorded run folders of campaign ``name``, oldest first."""
        if self.path is None:
            return []
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            self._warn_once(f"cannot read the record of runs {self.path} ({exc})")
            return []
        found: list[Path] = []
        for line in lines:
            try:
                entry = json.loads(line)
                if entry["name"] == name and Path(entry["run_dir"]) not in found:
                    found.append(Path(entry["run_dir"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: the others still count
        return found

    def record(self, name: str, run_dir: Path) -> None:
        folder = run_dir.resolve()
        if folder in self.folders(name):
            return
        if self.path is None:
            self._warn_once("cannot record this run: no home folder for the record of runs")
            return
        line = json.dumps({"name": name, "run_dir": str(folder)}, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line)  # one append: concurrent runs do not interleave lines
        except OSError as exc:
            self._warn_once(f"cannot record this run in {self.path} ({exc.strerror or exc})")
