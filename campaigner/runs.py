"""A run's folder, its report columns and its running tally. Shared by preview and send."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, TO, by_name, internal
from campaigner.statuses import RESULT_COLUMNS, Status

__all__ = (
    "PARTIAL_MARK",
    "ReportLayout",
    "RunRegistry",
    "Tally",
    "new_run_dir",
    "remove_stale_report_temps",
    "report_writing",
    "run_folder_stem",
)

_MAX_EXAMPLE_ROWS = 5
# Result columns while a report batch is assembled, and send outcomes while joined to it:
# internal names, so that input columns of any name sit next to them untouched.
_RESULT = {c: ROW if c == "row" else internal("result:" + c) for c in RESULT_COLUMNS}
_OUTCOME = {c: internal("outcome:" + c) for c in RESULT_COLUMNS}


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


@dataclass(frozen=True)
class ReportLayout:
    """Report columns: every input column unchanged, then the result columns.

    A result column whose name the input already uses gets a ``(result)`` suffix so that
    no input column is ever renamed.
    """

    input_columns: tuple[str, ...]
    result_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_input(cls, columns: Sequence[str]) -> ReportLayout:
        taken = set(columns)
        names = {}
        for col in RESULT_COLUMNS:
            name = col
            while name in taken:
                name = f"{name} (result)"
            names[col] = name
            taken.add(name)
        return cls(tuple(columns), names)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.input_columns, *(self.result_names[c] for c in RESULT_COLUMNS))

    def frame(self, prepared: pl.DataFrame, outcomes: pl.DataFrame | None = None) -> pl.DataFrame:
        """Report rows for a prepared batch, joined with send outcomes when given.

        ``outcomes`` has the internal ROW column plus any of status, MessageId, Code,
        Message, RequestId, attempts, error; its non-null values win over the preparation's.
        """
        base = prepared.select(
            by_name(self.input_columns),
            ROW,
            pl.col(STATUS).alias(_RESULT["status"]),
            pl.col(TO).alias(_RESULT["To"]),
            pl.lit(None, pl.String).alias(_RESULT["MessageId"]),
            pl.lit(None, pl.String).alias(_RESULT["Code"]),
            pl.lit(None, pl.String).alias(_RESULT["Message"]),
            pl.lit(None, pl.String).alias(_RESULT["RequestId"]),
            pl.lit(0, pl.Int64).alias(_RESULT["attempts"]),
            pl.col(ERROR).alias(_RESULT["error"]),
        )
        if outcomes is not None and not outcomes.is_empty():
            updates = [c for c in outcomes.columns if c != ROW]
            theirs = outcomes.rename({c: _OUTCOME[c] for c in updates})
            joined = base.join(theirs, on=ROW, how="left", maintain_order="left")
            base = joined.with_columns(
                pl.coalesce(_OUTCOME[c], _RESULT[c]).alias(_RESULT[c]) for c in updates
            ).drop(_OUTCOME[c] for c in updates)
        return base.select(
            by_name(self.input_columns),
            *(pl.col(_RESULT[c]).alias(self.result_names[c]) for c in RESULT_COLUMNS),
        )


@dataclass
class Tally:
    """Counts by status and invalid reasons with their first rows, batch by batch."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    # (status, reason) -> [count, first rows]
    reasons: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)

    def add(self, report: pl.DataFrame, names: Mapping[str, str]) -> None:
        """Count a report batch; ``names`` maps result columns to their report names."""
        status_col, error_col, row_col, code_col = (
            names["status"],
            names["error"],
            names["row"],
            names["Code"],
        )
        self.rows += report.height
        for status, count in report[status_col].value_counts().iter_rows():
            self.by_status[status] = self.by_status.get(status, 0) + count
        unsent = report.filter(
            pl.col(status_col).is_in([Status.INVALID.value, Status.FAILED.value])
        ).select(
            pl.col(status_col).alias("status"),
            # A failed row's reason is CAMS's answer; an invalid row's is our check.
            pl.coalesce(
                error_col, pl.concat_str(code_col, pl.lit(": "), pl.col(names["Message"]))
            ).alias("reason"),
            pl.col(row_col).alias("row"),
        )
        if not unsent.is_empty():
            groups = unsent.group_by("status", "reason", maintain_order=True).agg(
                pl.len().alias("n"), pl.col("row").head(_MAX_EXAMPLE_ROWS).alias("rows")
            )
            for status, reason, n, rows in groups.iter_rows():
                entry = self.reasons.setdefault((status, str(reason)), [0, []])
                entry[0] += n
                entry[1] = (entry[1] + list(rows))[:_MAX_EXAMPLE_ROWS]
        codes = report.filter(pl.col(code_col).is_not_null())
        if not codes.is_empty():
            for code, count in codes[code_col].value_counts().iter_rows():
                self.by_code[code] = self.by_code.get(code, 0) + count

    def count(self, status: Status) -> int:
        return self.by_status.get(status.value, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "by_status": dict(sorted(self.by_status.items())),
            "by_code": dict(sorted(self.by_code.items())),
            "invalid_reasons": [
                {"status": status, "reason": r, "count": c, "first_rows": rows}
                for (status, r), (c, rows) in sorted(self.reasons.items(), key=lambda kv: -kv[1][0])
            ],
        }


def private_umask() -> None:
    """Reports and journals hold phone numbers: files default to owner-only."""
    os.umask(0o077)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- report temporary files -----------------------------------------------------------------

REPORT_LOCK = "report.lock"
_REPORT_TEMPS = ".report.*.tmp"  # what the report writer names its files until they are done


@contextmanager
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
