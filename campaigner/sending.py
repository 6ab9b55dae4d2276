"""A send run from start to report: validate, confirm, journal, send, rebuild the report.

The report is never written from memory: it is rebuilt from the input and the journal
(``rebuild_report``), so it is complete and right after any crash, and
``campaigner report RUN_DIR`` can rebuild it at any time.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import resource
import shlex
import shutil
import signal
import sqlite3
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import polars as pl

from campaigner.client import DEFAULT_ENDPOINT, CamsClient, check_endpoint
from campaigner.columns import ERROR, ROW, STATUS, TO
from campaigner.config import Campaign, parse_campaign
from campaigner.crashpoints import crash_point
from campaigner.errors import (
    AccountError,
    CampaignerError,
    ConfigError,
    InterruptedRunError,
    JournalError,
    StorageError,
    UnreachableError,
    meaningful_leaf,
    storage_problem,
)
from campaigner.inputs import InputTable
from campaigner.journal import LOCK_NAME, Journal, RunLock, file_fingerprint
from campaigner.limits import MAX_QPS
from campaigner.pacing import PacerSettings
from campaigner.pool import Job, JournalWriter, PoolStats, SendPool
from campaigner.preview import open_campaign_input, resolve_input
from campaigner.report import (
    ReportLayout,
    Tally,
    rebuild_report,
    remove_stale_report_temps,
    write_json_atomic,
)
from campaigner.rows import Deduper, Plan
from campaigner.runs import PARTIAL_MARK, RunRegistry, new_run_dir, run_folder_stem
from campaigner.signing import Credentials
from campaigner.statuses import FINAL_STATES, JournalState, Status

__all__ = (
    "EarlierRun",
    "SendOptions",
    "SendResult",
    "find_earlier_runs",
    "load_run",
    "open_run",
    "rebuild_run_report",
    "run_send",
)

log = logging.getLogger(__name__)

SEND_BATCH_ROWS = 5_000  # small batches keep the event loop responsive while rows are prepared
_PROGRESS_EVERY_S = 0.5
# Journal states a row is reported in as they are; rows in flight may have been delivered too.
_SETTLED = (JournalState.SENT, JournalState.FAILED, JournalState.UNKNOWN)
_DELIVERED = (JournalState.SENT, JournalState.UNKNOWN, JournalState.INTENT)
# A prepared row's status → the state its journal row starts in.
_JOURNAL_STATE = {
    Status.WOULD_SEND: JournalState.PENDING,
    Status.INVALID: JournalState.INVALID,
    Status.DUPLICATE: JournalState.DUPLICATE,
}


@dataclass
class SendOptions:
    input_path: Path | None = None
    out: Path = Path("reports")
    endpoint: str = DEFAULT_ENDPOINT
    qps: int | None = None
    yes: bool = False
    resume: Path | None = None
    resend_unknown: bool = False
    xlsx: bool | None = None
    again: bool = False  # send a campaign and list that an earlier run already sent


@dataclass
class SendResult:
    run_dir: Path
    tally: Tally
    stats: PoolStats
    seconds: float
    stop_reason: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def all_sent(self) -> bool:
        return self.tally.count(Status.SENT) == self.tally.rows


# Callbacks the CLI provides: ask a yes/no question; show progress; say something.
Confirm = Callable[[str], bool]
ProgressSink = Callable[[PoolStats, int], None]


def _campaign_meta(campaign: Campaign, input_path: Path) -> dict[str, str]:
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


def _changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    changed = []
    for what in ("campaign", "input"):
        if old.get(f"{what}_sha256") != new.get(f"{what}_sha256"):
            label = "campaign file" if what == "campaign" else "recipient list"
            changed.append(
                f"the {label} {new.get(f'{what}_path')} changed since the run started "
                f"(size {old.get(f'{what}_size')} → {new.get(f'{what}_size')} bytes)"
            )
    return changed


def _destination(endpoint: str, sandbox: bool) -> str:
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
    for run_dir in registry.folders(meta["name"]) if registry is not None else []:
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


def _check_earlier_runs(
    earlier: list[EarlierRun], options: SendOptions, confirm: Confirm, *, sandbox: bool
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
            raise ConfigError(f"not started: {what}; pass --again to send it again{resume}")
        return
    unfinished = [r for r in earlier if not r.finished]
    if unfinished and not options.yes:
        last_dir = unfinished[-1].run_dir
        if not confirm(
            f"an earlier run of this campaign and list is unfinished ({last_dir}); "
            f"resume it with --resume {last_dir}. Start a NEW run anyway?"
        ):
            raise ConfigError(f"not started; to continue the earlier run use --resume {last_dir}")


def _recorded_input(run_dir: Path) -> Path | None:
    """The list a run to resume started with, or None when it stopped before recording its
    campaign: then nothing can have been sent, and the resume starts it from the beginning."""
    if not Journal.exists_in(run_dir):
        if any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            raise JournalError(f"{run_dir} is not a campaigner run folder (no journal)")
        return None
    remove_stale_report_temps(run_dir)
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
    """The campaign and input a run was started with, from its journal."""
    if not Journal.exists_in(run_dir):
        raise JournalError(f"{run_dir} is not a campaigner run folder (no journal)")
    remove_stale_report_temps(run_dir)  # left by a writer that was killed
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


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _validate_all(plan: Plan, table: InputTable) -> Tally:
    """The preview pass: counts by status before anything is sent."""
    layout = ReportLayout.for_input(table.columns)
    tally = Tally()
    deduper = Deduper()
    for batch in table.batches():
        tally.add(layout.frame(plan.prepare(batch, deduper)), layout.result_names)
    return tally


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


def rebuild_run_report(run_dir: Path, xlsx: bool | None = None) -> Tally:
    """``campaigner report RUN_DIR``: rebuild report.csv/.xlsx from input + journal."""
    plan, table, journal = open_run(run_dir)
    try:
        return rebuild_report(run_dir, plan, table, journal, xlsx=xlsx)
    finally:
        journal.close()


async def _feed(
    plan: Plan, table: InputTable, writer: JournalWriter, journal: Journal
) -> AsyncIterator[list[Job]]:
    """Prepared rows, in input order, that still need sending; each batch journaled first."""
    deduper = Deduper()
    batches: Iterator[pl.DataFrame] = table.batches(SEND_BATCH_ROWS)

    def prepare_next() -> pl.DataFrame | None:
        batch = next(batches, None)
        return None if batch is None else plan.prepare(batch, deduper)

    while True:
        prepared = await anyio.to_thread.run_sync(prepare_next)
        if prepared is None:
            return
        records = [
            (row, _JOURNAL_STATE[status], to, err)
            for row, status, to, err in prepared.select(ROW, STATUS, TO, ERROR).iter_rows()
        ]
        states: dict[int, str] = {}

        def record(
            records: list[tuple[int, JournalState, str | None, str | None]] = records,
            states: dict[int, str] = states,
        ) -> None:
            # In the writer's order: the batch's rows exist before any of their intents.
            journal.add_rows(records)
            states.update(journal.states_between(records[0][0], records[-1][0]))

        await writer.run_call(record)
        sendable = prepared.filter(pl.col(STATUS) == Status.WOULD_SEND.value)

        def build_jobs(
            frame: pl.DataFrame = sendable, states: dict[int, str] = states
        ) -> list[Job]:
            jobs = []
            for row in frame.iter_rows(named=True):
                state = states.get(row[ROW])
                if state in FINAL_STATES or state == JournalState.INTENT:
                    continue
                jobs.append(Job(row[ROW], plan.query(row)))
            return jobs

        jobs = await anyio.to_thread.run_sync(build_jobs)
        if jobs:
            yield jobs


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _StopSignals:
    """SIGINT/SIGTERM over a whole send run: the first asks for a graceful stop, another
    aborts at once.

    While rows are sent, anyio's receiver (``_watch_signals``) does this. When it exits,
    anyio puts back Python's defaults, not the caller's handlers: SIGTERM would end the
    process without a word and SIGINT raise wherever the report rebuild happens to be.
    ``take_over`` keeps the same two steps from then on; ``restore`` gives the caller its
    handlers back when the run ends.
    """

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._previous = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
        self._abortable = False
        self.received: list[str] = []  # signal names, in order

    def take_over(self) -> None:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def allow_abort(self) -> None:
        """From here on no event loop runs under us: another signal may raise right away."""
        self._abortable = True
        if len(self.received) > 1:
            raise KeyboardInterrupt(self.received[-1])

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        self.received.append(name)
        if len(self.received) > 1:
            if self._abortable:
                raise KeyboardInterrupt(name)
            return  # raised by allow_abort, out of the event loop's machinery
        with suppress(Exception):  # a handler must not break the write it interrupted
            self._say(f"{name}: finishing the report, then stopping (press Ctrl-C again to abort)")

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)


async def _watch_signals(
    pool: SendPool, abort: anyio.CancelScope, say: Callable[[str], None], stop: _StopSignals
) -> None:
    try:
        with anyio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            async for signum in signals:
                stop.received.append(signal.Signals(signum).name)
                if not pool.stopping:
                    name = signal.Signals(signum).name
                    say(
                        f"{name}: stopping — no new rows; waiting for messages in flight "
                        "(press Ctrl-C again to abort now)"
                    )
                    pool.stop(name)
                else:
                    say("aborting now: messages in flight become 'unknown'")
                    pool.stop_reason = "aborted"
                    abort.cancel()
                    return
    finally:
        stop.take_over()


async def _report_progress(pool: SendPool, total: int, sink: ProgressSink) -> None:
    while True:
        sink(pool.stats, total)
        await anyio.sleep(_PROGRESS_EVERY_S)


def _create_run(out: Path, name: str, meta: dict[str, str]) -> tuple[Path, RunLock]:
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


async def run_send(
    campaign: Campaign,
    options: SendOptions,
    *,
    credentials: Credentials,
    confirm: Confirm,
    progress: ProgressSink,
    say: Callable[[str], None],
    sandbox: Any = None,
) -> SendResult:
    """Validate, confirm, then send every sendable row and rebuild the report."""
    started = time.perf_counter()
    plan = Plan(campaign)
    check_endpoint(options.endpoint)
    settings = campaign.send
    qps = options.qps or settings.qps
    if not 1 <= qps <= MAX_QPS:
        raise ConfigError(f"--qps must be from 1 to {MAX_QPS} (got {qps})")
    run_dir: Path | None = None
    starts = True  # a new run, or a resume of one that stopped before it recorded its campaign
    if options.resume is not None:
        recorded_input = _recorded_input(options.resume)
        starts = recorded_input is None
        path = options.input_path or recorded_input or resolve_input(campaign, None)
        run_dir = options.resume
    else:
        path = resolve_input(campaign, options.input_path)
    table = open_campaign_input(campaign, path, plan)
    meta = _campaign_meta(campaign, path)
    meta["destination"] = _destination(options.endpoint, sandbox is not None)
    want_xlsx = table.kind == "xlsx" if options.xlsx is None else options.xlsx
    meta["report_xlsx"] = "yes" if want_xlsx else "no"
    registry = RunRegistry(warn=lambda message: say(f"warning: {message}"))

    tally = _validate_all(plan, table)
    invalid = tally.rows - tally.count(Status.WOULD_SEND)
    if starts and not options.again:
        earlier = find_earlier_runs(options.out, meta, registry)
        _check_earlier_runs(earlier, options, confirm, sandbox=sandbox is not None)
    if (
        invalid
        and not options.yes
        and not confirm(
            f"{invalid:,} of {tally.rows:,} rows will not be sent (invalid or duplicate). "
            f"Send the {tally.count(Status.WOULD_SEND):,} valid rows?"
        )
    ):
        raise ConfigError(
            f"not sent: {invalid:,} rows are invalid or duplicate; fix them or pass --yes "
            "to send the valid rows"
        )

    if run_dir is None:
        try:
            run_dir, lock = _create_run(options.out, campaign.name, meta)
        except Exception as exc:
            problem = storage_problem(meaningful_leaf(exc))
            if problem is None:
                raise
            raise StorageError(  # the OS may not say where: it is the --out folder
                f"{problem.describe(options.out)}; nothing was sent; {problem.remedy}, "
                "then try again"
            ) from exc
    else:
        lock = RunLock(run_dir)
        lock.acquire()
    try:
        journal = Journal.in_run(run_dir)
    except BaseException:
        lock.release()
        raise
    registry.record(campaign.name, run_dir)
    stop = _StopSignals(say)
    reporting = False  # the send is over; what remains is the report
    try:
        old = journal.meta()
        if old:
            changes = _changes(old, meta)
            if changes:
                raise JournalError("cannot resume: " + "; ".join(changes))
            interrupted = journal.settle_interrupted()
            if interrupted:
                say(
                    f"{interrupted} rows were in flight when the run stopped: marked unknown "
                    "(run `campaigner reconcile` to settle them)"
                )
            if options.resend_unknown:
                reopened = journal.reopen_unknown()
                if reopened:
                    say(
                        f"warning: resending {reopened} unknown rows — they may already have "
                        "been delivered, so those recipients may get the message twice"
                    )
            if options.xlsx is not None:  # --format given: the run's formats from now on
                journal.set_meta({"report_xlsx": meta["report_xlsx"]})
        else:
            journal.set_meta(meta)
        journal.set_meta({"finished": "no"})
        counts = journal.counts()
        settled = sum(counts.get(s, 0) for s in _SETTLED)
        total = max(tally.count(Status.WOULD_SEND) - settled, 0)
        send_started, cpu_started = time.perf_counter(), _cpu_seconds()
        pool = await _send_rows(
            plan, table, journal, credentials, options, qps, total, progress, say, sandbox, stop
        )
        reporting = True
        stop.allow_abort()
        send_seconds, cpu_seconds = time.perf_counter() - send_started, _cpu_seconds() - cpu_started
        journal.settle_interrupted()  # after an abort, in-flight rows are unknown
        journal.set_meta({"finished": "yes" if not pool.stopping else "no"})
        final = rebuild_report(run_dir, plan, table, journal)  # in the run's formats
        seconds = time.perf_counter() - started
        stats = pool.stats
        send_span = (
            (stats.last_start - stats.first_start)
            if stats.first_start is not None and stats.last_start is not None
            else 0.0
        )
        summary = {
            "name": campaign.name,
            "mode": "send",
            "input": str(path),
            "endpoint": options.endpoint if sandbox is None else "the built-in simulator",
            **final.as_dict(),
            "requests": stats.started,
            "retries": stats.retries,
            "throttled": stats.throttled,
            "duration_seconds": round(seconds, 3),
            "achieved_rate": round(stats.started / send_span, 1) if send_span > 0 else None,
            "send_seconds": round(send_seconds, 3),
            "cpu_ms_per_message": round(cpu_seconds * 1000 / stats.started, 3)
            if stats.started
            else None,
            "stopped": pool.stop_reason,
        }
        write_json_atomic(run_dir / "summary.json", summary)
        result = SendResult(run_dir, final, stats, seconds, pool.stop_reason, summary)
    except BaseException as exc:
        explained = _explain_failure(
            exc,
            journal,
            run_dir,
            tally.count(Status.WOULD_SEND),
            stop,
            _resume_command(campaign, options, run_dir, sandbox=sandbox is not None),
            reporting=reporting,
        )
        if explained is None:
            raise
        raise explained from exc
    finally:
        stop.restore()
        journal.close()
        lock.release()
    details = {"run_dir": str(run_dir), **summary}
    if pool.account_error is not None:
        reply = pool.account_error
        raise AccountError(
            f"CAMS refused the account ({reply.code}: {reply.message}); nothing more was sent. "
            f"Fix the credentials or permissions, then continue with --resume {run_dir}. "
            f"Report: {run_dir / 'report.csv'}",
            details=details,
        )
    if pool.outage_error is not None:
        raise UnreachableError(
            f"{pool.outage_error}; the rows not sent are kept: continue with --resume "
            f"{run_dir} once CAMS is reachable. Report: {run_dir / 'report.csv'}",
            details=details,
        )
    # A signal after the pool had finished (during the report) stops the run the same way.
    stopped_by = pool.stop_reason if pool.stopping else None
    if stopped_by not in ("SIGINT", "SIGTERM", "aborted") and stop.received:
        stopped_by = stop.received[0]
    if stopped_by in ("SIGINT", "SIGTERM", "aborted"):
        then = f"continue with --resume {run_dir}" if pool.stopping else "no row was left to send"
        err = InterruptedRunError(
            f"stopped by {stopped_by}; report written to {run_dir / 'report.csv'}; {then}",
            exit_code=143 if stopped_by == "SIGTERM" else 130,
            details=details,
        )
        err.result = result  # type: ignore[attr-defined]
        raise err
    return result


def _resume_command(
    campaign: Campaign, options: SendOptions, run_dir: Path, *, sandbox: bool
) -> str:
    """The command that continues this run, for messages."""
    words = ["campaigner", "send", str(campaign.source or "CAMPAIGN_FILE")]
    if sandbox:
        words.append("--sandbox")
    elif options.endpoint != DEFAULT_ENDPOINT:
        words += ["--endpoint", options.endpoint]
    words += ["--resume", str(run_dir)]
    return shlex.join(words)


def _explain_failure(
    exc: BaseException,
    journal: Journal,
    run_dir: Path,
    sendable: int,
    stop: _StopSignals,
    resume: str,
    *,
    reporting: bool,
) -> CampaignerError | None:
    """A failure once the run folder exists, told with what was already sent and what to do
    next: a file-system failure (disk full, ...) or an abort while the report was written.
    None for anything else (our own errors say enough; a bug is a bug)."""
    leaf = meaningful_leaf(exc)
    problem = storage_problem(leaf)
    if problem is None and not isinstance(leaf, KeyboardInterrupt):
        return None
    try:
        counts = journal.counts()
    except (sqlite3.Error, OSError):
        counts = None
    details: dict[str, Any] = {"run_dir": str(run_dir), "sendable": sendable}
    if counts is None:
        sent_words = f"some rows may have been sent; the journal in {run_dir} has what was"
        done = False
    else:
        sent, in_flight = counts.get(JournalState.SENT, 0), counts.get(JournalState.INTENT, 0)
        settled = sum(counts.get(s, 0) for s in _SETTLED)
        done = settled >= sendable and not in_flight
        details |= {"sent": sent, "in_flight": in_flight}
        sent_words = f"{sent:,} of {sendable:,} rows were sent"
        if in_flight:
            sent_words += f" and {in_flight:,} more may have been (a resume marks them unknown)"
        sent_words += f"; the journal in {run_dir} has them"
    if reporting:
        sent_words = f"the report was not written, but {sent_words}"
    # Every row settled: only the report is missing, and `campaigner report` rebuilds it.
    next_step = f"campaigner report {shlex.quote(str(run_dir))}" if done else resume
    if problem is not None:
        journal_failed = isinstance(leaf, sqlite3.Error | JournalError)
        what = problem.describe(journal.path if journal_failed else run_dir)
        return StorageError(
            f"{what}; {sent_words}; {problem.remedy}, then: {next_step}", details=details
        )
    signum = getattr(leaf, "signum", None)
    name = signal.Signals(signum).name if signum else (stop.received or ["SIGINT"])[-1]
    return InterruptedRunError(
        f"aborted by {name}; {sent_words}; to finish: {next_step}",
        exit_code=143 if name == "SIGTERM" else 130,
        details=details,
    )


async def _send_rows(
    plan: Plan,
    table: InputTable,
    journal: Journal,
    credentials: Credentials,
    options: SendOptions,
    qps: int,
    total: int,
    progress: ProgressSink,
    say: Callable[[str], None],
    sandbox: Any,
    stop: _StopSignals,
) -> SendPool:
    async with AsyncExitStack() as stack:
        endpoint = options.endpoint
        if sandbox is not None:
            endpoint = await stack.enter_async_context(sandbox)
        client = CamsClient(credentials, endpoint=endpoint, timeout_s=plan.campaign.send.timeout_s)
        stack.push_async_callback(client.aclose)
        writer = JournalWriter(journal)
        pool = SendPool(
            client,
            writer,
            pacer_settings=PacerSettings(limit=qps),
            max_attempts=plan.campaign.send.max_attempts,
            outage_limit_s=plan.campaign.send.outage_limit_s,
        )
        with anyio.CancelScope() as abort:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_signals, pool, abort, say, stop)
                tg.start_soon(_report_progress, pool, total, progress)
                await pool.run(_feed(plan, table, writer, journal))
                tg.cancel_scope.cancel()
        if abort.cancelled_caught:
            with anyio.CancelScope(shield=True):
                await writer.flush()
        progress(pool.stats, total)
        return pool
