"""Run folders: creating one crash-safely, the per-user record of runs, and what a resume
checks (the campaign and list a run recorded, earlier runs of the same campaign)."""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
import shutil
import sqlite3
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from campaigner.config import Campaign, parse_campaign
from campaigner.crashpoints import crash_point
from campaigner.errors import ConfirmationDeclined, JournalError
from campaigner.inputs import InputTable
from campaigner.journal import LOCK_NAME, Journal, RunLock, file_fingerprint
from campaigner.rows import Plan, open_campaign_input
from campaigner.statuses import JournalState

__all__ = (
    "PARTIAL_MARK",
    "EarlierRun",
    "RunRegistry",
    "campaign_meta",
    "check_earlier_runs",
    "create_run",
    "destination",
    "find_earlier_runs",
    "load_run",
    "new_run_dir",
    "open_run",
    "recorded_input",
    "resume_changes",
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

    def folders(self, name: str, like: Mapping[str, str] | None = None) -> list[Path]:
        """Recorded run folders of campaign ``name``, oldest first; with ``like`` (a run's
        meta), only those recorded with the same campaign file, list and destination (or
        recorded before records held them): the others need not be opened to be ruled out."""
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
                if entry["name"] != name or (like is not None and not _alike(entry, like)):
                    continue
                if Path(entry["run_dir"]) not in found:
                    found.append(Path(entry["run_dir"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: the others still count
        return found

    def record(self, name: str, run_dir: Path, meta: Mapping[str, str] | None = None) -> None:
        folder = run_dir.resolve()
        if folder in self.folders(name):
            return
        if self.path is None:
            self._warn_once("cannot record this run: no home folder for the record of runs")
            return
        entry = {"name": name, "run_dir": str(folder)}
        entry |= {k: meta[k] for k in _SAME_RUN_KEYS if meta is not None and k in meta}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line)  # one append: concurrent runs do not interleave lines
        except OSError as exc:
            self._warn_once(f"cannot record this run in {self.path} ({exc.strerror or exc})")


# What makes an earlier run one of the same campaign and list, to the same destination.
_SAME_RUN_KEYS = ("campaign_sha256", "input_sha256", "destination")


def _alike(entry: Mapping[str, object], meta: Mapping[str, str]) -> bool:
    return all(entry[k] == meta[k] for k in _SAME_RUN_KEYS if k in entry and k in meta)


# -- resume: what a run recorded, earlier runs of the same campaign, new run folders -----

# Journal states of rows that were sent or may have been delivered (in flight).
_DELIVERED = (JournalState.SENT, JournalState.UNKNOWN, JournalState.INTENT)


def campaign_meta(campaign: Campaign, input_path: Path) -> dict[str, str]:
    """What a run's journal records of its campaign and list (a resume checks them)."""
    meta = {"name": campaign.name, "campaign_text": "", "created_at": str(time.time())}
    if campaign.source is not None:
        fp = file_fingerprint(campaign.source)
        meta |= {f"campaign_{k}": v for k, v in fp.items()}
        meta["campaign_text"] = campaign.source.read_text("utf-8-sig")
    meta |= {f"input_{k}": v for k, v in file_fingerprint(input_path).items()}
    meta["campaign_settings"] = json.dumps(
        {"sheet": campaign.sheet, "encoding": campaign.encoding}, default=str
    )
    return meta


def resume_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """How the campaign file and list differ from what a run to resume recorded."""
    changed = []
    for what in ("campaign", "input"):
        if old.get(f"{what}_sha256") != new.get(f"{what}_sha256"):
            label = "campaign file" if what == "campaign" else "recipient list"
            changed.append(
                f"the {label} {new.get(f'{what}_path')} changed since the run started "
                f"(size {old.get(f'{what}_size')} → {new.get(f'{what}_size')} bytes)"
            )
    return changed


def destination(endpoint: str, sandbox: bool) -> str:
    """What a run sent to: runs to a simulator and runs to CAMS never count as each other's."""
    if sandbox:
        return "sandbox"
    host = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}").hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return "simulator" if loopback else "cams"


@dataclass(frozen=True)
class EarlierRun:
    run_dir: Path
    created_at: float
    finished: bool
    delivered: int  # rows sent or possibly delivered (unknown, in flight)


def find_earlier_runs(
    out: Path, meta: dict[str, str], registry: RunRegistry | None = None
) -> list[EarlierRun]:
    """Earlier runs of the same campaign file and list to the same destination, oldest first:
    those the per-user record knows (any ``--out``) and those under ``out``."""
    folders: dict[Path, Path] = {}  # resolved -> as shown
    if out.is_dir():
        for run_dir in sorted(out.glob(f"{run_folder_stem(meta['name'])}-*")):
            folders.setdefault(run_dir.resolve(), run_dir)
    for run_dir in registry.folders(meta["name"], meta) if registry is not None else []:
        folders.setdefault(run_dir.resolve(), run_dir)
    found: list[EarlierRun] = []
    for run_dir in folders.values():
        if not Journal.exists_in(run_dir):
            continue
        try:
            journal = Journal.in_run(run_dir, check=False)  # a look, not a resume
            try:
                old = journal.meta()
                counts = journal.counts()
            finally:
                journal.close()
        except (JournalError, OSError, sqlite3.Error):
            continue
        if any(old.get(k) != meta.get(k) for k in ("campaign_sha256", "input_sha256")):
            continue
        if old.get("destination", meta.get("destination")) != meta.get("destination"):
            continue
        unsent = counts.get(JournalState.PENDING, 0) + counts.get(JournalState.INTENT, 0)
        found.append(
            EarlierRun(
                run_dir,
                float(old.get("created_at") or 0),
                finished=old.get("finished") == "yes" and not unsent,
                delivered=sum(counts.get(s, 0) for s in _DELIVERED),
            )
        )
    return sorted(found, key=lambda r: r.created_at)


def check_earlier_runs(
    earlier: list[EarlierRun], confirm: Callable[[str], bool], *, yes: bool, sandbox: bool
) -> None:
    """Refuse to send a campaign and list again by accident (``--yes`` does not cover it)."""
    # The built-in simulator starts empty in every process: nothing was sent to it before.
    delivered = [] if sandbox else [r for r in earlier if r.delivered]
    if delivered:
        last = delivered[-1]
        what = (
            f"run {last.run_dir} already sent this campaign file and list "
            f"({last.delivered:,} rows sent or possibly delivered)"
        )
        resume = (
            "" if last.finished else f"; to finish that run instead use --resume {last.run_dir}"
        )
        if not confirm(f"{what}{resume}. Send it to everyone AGAIN?"):
            raise ConfirmationDeclined(
                f"not started: {what}; pass --again to send it again{resume}"
            )
        return
    unfinished = [r for r in earlier if not r.finished]
    if unfinished and not yes:
        last_dir = unfinished[-1].run_dir
        if not confirm(
            f"an earlier run of this campaign and list is unfinished ({last_dir}); "
            f"resume it with --resume {last_dir}. Start a NEW run anyway?"
        ):
            raise ConfirmationDeclined(
                f"not started; to continue the earlier run use --resume {last_dir}"
            )


def recorded_input(run_dir: Path) -> Path | None:
    """The list a run to resume started with, or None when it stopped before recording its
    campaign: then nothing can have been sent, and the resume starts it from the beginning.
    Report temporaries a killed writer left are the caller's to remove first."""
    if not Journal.exists_in(run_dir):
        if any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            raise JournalError(f"{run_dir} is not a campaigner run folder (no journal)")
        return None
    journal = Journal.in_run(run_dir)
    try:
        meta = journal.meta()
        if "input_path" in meta:
            return Path(meta["input_path"])
        if journal.counts():
            raise JournalError(f"the journal in {run_dir} has rows but no recorded campaign")
        return None
    finally:
        journal.close()


def _never_started(run_dir: Path) -> str:
    return (
        f"the run in {run_dir} stopped before it recorded its campaign, so nothing was sent; "
        f"start it with `campaigner send CAMPAIGN_FILE --resume {run_dir}`"
    )


def load_run(run_dir: Path) -> tuple[Campaign, Path, Journal]:
    """The campaign and input a run was started with, from its journal (report temporaries
    a killed writer left are the caller's to remove first)."""
    if not Journal.exists_in(run_dir):
        raise JournalError(f"{run_dir} is not a campaigner run folder (no journal)")
    journal = Journal.in_run(run_dir)
    try:
        meta = journal.meta()
        if "campaign_text" not in meta and not journal.counts():
            raise JournalError(_never_started(run_dir))
        try:
            data = tomllib.loads(meta["campaign_text"])
        except (KeyError, tomllib.TOMLDecodeError):
            raise JournalError(f"the journal in {run_dir} has no usable campaign") from None
        base = Path(meta.get("campaign_path", ".")).parent
        campaign = parse_campaign(data, base_dir=base)
        settings = json.loads(meta.get("campaign_settings", "{}"))
    except BaseException:
        journal.close()
        raise
    campaign = replace(
        campaign,
        sheet=settings.get("sheet", campaign.sheet),
        encoding=settings.get("encoding", campaign.encoding),
        source=Path(meta["campaign_path"]) if "campaign_path" in meta else None,
    )
    return campaign, Path(meta["input_path"]), journal


def _remove_abandoned_partials(out: Path) -> None:
    """Run folders that a killed process was still preparing: nothing was sent from them."""
    for partial in out.glob(f".*{PARTIAL_MARK}*"):
        if not (partial / LOCK_NAME).exists():
            continue  # being created right now (its lock comes first)
        lock = RunLock(partial)
        try:
            lock.acquire()
        except (JournalError, OSError):
            continue  # its process is alive
        try:
            shutil.rmtree(partial, ignore_errors=True)
        finally:
            lock.release()


def open_run(run_dir: Path) -> tuple[Plan, InputTable, Journal]:
    """A run's plan, input (checked unchanged) and journal, for report and reconcile."""
    campaign, input_path, journal = load_run(run_dir)
    try:
        plan = Plan(campaign)
        recorded = journal.meta()
        if not input_path.exists():
            raise JournalError(f"the run's recipient list {input_path} no longer exists")
        current = {f"input_{k}": v for k, v in file_fingerprint(input_path).items()}
        if current["input_sha256"] != recorded.get("input_sha256"):
            raise JournalError(
                f"the recipient list {input_path} changed since the run started; "
                "its report cannot be rebuilt from it"
            )
        table = open_campaign_input(campaign, input_path, plan)
    except BaseException:
        journal.close()
        raise
    return plan, table, journal


def create_run(out: Path, name: str, meta: dict[str, str]) -> tuple[Path, RunLock]:
    """A new run folder, locked, whose journal holds the campaign before the folder appears
    under its name: a kill at any moment leaves a complete run folder or none."""
    if out.is_dir():
        _remove_abandoned_partials(out)
    locks: list[RunLock] = []

    def prepare(folder: Path) -> None:
        lock = RunLock(folder)
        lock.acquire()  # the lock goes with the folder when it is renamed
        locks.append(lock)
        journal = Journal.in_run(folder)
        try:
            journal.set_meta(meta)
        finally:
            journal.close()
        crash_point("run_folder")

    try:
        run_dir = new_run_dir(out, name, prepare=prepare)
    except BaseException:
        for lock in locks:
            lock.release()
        raise
    return run_dir, locks[0]
