"""Files replaced atomically: a private temporary file, fsync, rename; and the lock that keeps
a report writer's temporary files from being cleaned up while it works."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import IO

__all__ = (
    "REPORT_LOCK",
    "AtomicFile",
    "fsync_dir",
    "remove_stale_report_temps",
    "report_writing",
    "write_json_atomic",
)


class AtomicFile:
    """A 0600 temporary file next to ``target`` that replaces it on ``commit``."""

    def __init__(self, target: Path) -> None:
        self.target = target
        # mkstemp creates the file 0600 whatever the umask, and with a name nobody else has.
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        self.temp = Path(name)
        self.fh: IO[bytes] = os.fdopen(fd, "wb")

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()

    def commit(self) -> None:
        os.replace(self.temp, self.target)

    def discard(self) -> None:
        """Remove the temporary file (it holds phone numbers) whatever happens on the way."""
        try:
            # A full disk fails the flush in close() again; the caller is already raising
            # the first error, so this one is dropped.
            with contextlib.suppress(OSError):
                self.fh.close()
        finally:
            self.temp.unlink(missing_ok=True)


def fsync_dir(directory: Path) -> None:
    """Make the renames durable; POSIX only (Windows cannot open a directory)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json_atomic(path: Path, data: object) -> None:
    """Write ``data`` as UTF-8 JSON to ``path`` (mode 0600): temp file, fsync, rename.

    Serialization happens first, so a value JSON cannot hold leaves no file behind.
    Paths, dates, enums, sets and dataclasses are converted; NaN is refused.
    """
    text = json.dumps(data, ensure_ascii=False, indent=2, allow_nan=False, default=_json_default)
    out = AtomicFile(path)
    try:
        out.fh.write(text.encode("utf-8") + b"\n")
        out.sync()
        out.commit()
    except BaseException:
        out.discard()
        raise
    fsync_dir(path.parent)


# -- report temporary files -----------------------------------------------------------------

REPORT_LOCK = "report.lock"
_REPORT_TEMPS = ".report.*.tmp"  # what the report writer names its files until they are done


@contextlib.contextmanager
def report_writing(run_dir: Path) -> Iterator[None]:
    """Held (shared) while a report is written, so that nobody removes its temporary files."""
    fd = os.open(run_dir / REPORT_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing drops the flock


def remove_stale_report_temps(run_dir: Path) -> int:
    """Delete the report temporary files a killed writer left; none while a writer is at work."""
    if not any(run_dir.glob(_REPORT_TEMPS)):
        return 0
    try:
        fd = os.open(run_dir / REPORT_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return 0  # a read-only folder: leave them
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # a report is being written right now
        removed = 0
        for temp in run_dir.glob(_REPORT_TEMPS):  # with the lock held: no writer owns these
            try:
                temp.unlink()
                removed += 1
            except OSError:
                pass
        return removed
    finally:
        os.close(fd)
