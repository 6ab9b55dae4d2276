"""A send run from start to report: validate, confirm, journal, send, rebuild the report.

The report is never written from memory: it is rebuilt from the input and the journal
(``rebuild_report``), so it is complete and right after any crash, and
``campaigner report RUN_DIR`` can rebuild it at any time.
"""

from __future__ import annotations

import logging
import os
import resource
import shlex
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from campaigner.budget import chosen_budget, open_budget, open_lease
from campaigner.cams import SEND_ACTION
from campaigner.config import Campaign
from campaigner.errors import (
    AccountError,
    CampaignerError,
    ConfigError,
    ConfirmationDeclined,
    InterruptedRunError,
    JournalError,
    RateBudgetError,
    RunStopped,
    StorageError,
    UnreachableError,
    meaningful_leaf,
    storage_problem,
)
from campaigner.feed import feed
from campaigner.inputs import InputTable
from campaigner.journal import Journal, RunLock
from campaigner.limits import MAX_QPS
from campaigner.options import SendOptions, SendResult
from campaigner.report import (
    ReportLayout,
    Tally,
    rebuild_report,
    remove_stale_report_temps,
    write_json_atomic,
)
from campaigner.retriable import RetryPlan
from campaigner.rows import Deduper, Plan, open_campaign_input, resolve_input
from campaigner.runs import (
    EarlierRun,
    RunRegistry,
    campaign_meta,
    check_earlier_runs,
    create_run,
    destination,
    find_earlier_runs,
    open_run,
    recorded_input,
    resume_changes,
)
from campaigner.runstate import ending_meta, link_retry, resumed_retry, retry_meta, starting_meta
from campaigner.schedule import cancel_before_time, cancelled_error, check_at, wait_for_start
from campaigner.screening import Screen, WorkspaceScreen, record_run
from campaigner.send.client import DEFAULT_ENDPOINT, CamsClient, check_endpoint
from campaigner.send.journaling import JournalWriter
from campaigner.send.pacing import PacerSettings
from campaigner.send.pool import SendPool
from campaigner.send.stats import PoolStats
from campaigner.sendlimit import SendLimit
from campaigner.signing import Credentials
from campaigner.statuses import HELD, JournalState, Status
from campaigner.stopping import RunControl, StopSignals, watch_signals
from campaigner.windows import Timing

if TYPE_CHECKING:  # Redis loads only when a Redis budget is used
    from campaigner.budget.lease import RunLease

__all__ = (
    "rebuild_run_report",
    "run_send",
    "tidy_run_folder",
)

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 0.5
# Journal states a row is reported in as they are.
_SETTLED = (JournalState.SENT, JournalState.FAILED, JournalState.UNKNOWN)


T = TypeVar("T")


async def _blocking(shared: bool, func: Callable[[], T]) -> T:
    """Long file work: in a worker thread when the event loop is shared with other sends."""
    return await anyio.to_thread.run_sync(func) if shared else func()


# Callbacks the CLI provides: ask a yes/no question; show progress; say something.
Confirm = Callable[[str], bool]
ProgressSink = Callable[[PoolStats, int], None]


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads of this process
    return usage.ru_utime + usage.ru_stime


def _timing(plan: Plan, table: InputTable) -> Timing | None:
    """The campaign's send window over this list (None: send at any time)."""
    send = plan.campaign.send
    return Timing.of(send.window, send.deadline, send.timezone_column, table.columns)


def _validate_all(plan: Plan, table: InputTable, screen: Screen) -> Tally:
    """The preview pass: counts by status before anything is sent."""
    layout = ReportLayout.for_input(table.columns)
    tally = Tally()
    deduper = Deduper()
    timing = _timing(plan, table)
    for batch in table.batches():
        prepared = screen.apply(plan.prepare(batch, deduper))
        if timing is not None:
            prepared = timing.check(prepared)
        tally.add(layout.frame(prepared), layout.result_names)
    return tally


def _record_sends(workspace: Path, name: str, run_dir: Path, say: Callable[[str], None]) -> None:
    """The run's sends into the workspace ledger. The journal already holds them, so a
    failure here loses nothing: the next --only-new reads the journal again."""
    try:
        record_run(workspace, name, run_dir)
    except (JournalError, sqlite3.Error, OSError) as exc:
        say(
            f"warning: the workspace ledger was not updated ({exc}); the next --only-new reads "
            "this run's journal instead"
        )


def _recorded_only_new(run_dir: Path) -> bool:
    """Whether the run to resume was started with --only-new (it keeps that setting)."""
    if not Journal.exists_in(run_dir):
        return False
    journal = Journal.in_run(run_dir, check=False)
    try:
        return journal.meta().get("only_new") == "yes"
    finally:
        journal.close()


def tidy_run_folder(run_dir: Path) -> None:
    """Remove the report temporaries a killed writer left in a run folder, before it is
    opened to resume, reconcile or rebuild its report (nothing when it is no run folder)."""
    if Journal.exists_in(run_dir):
        remove_stale_report_temps(run_dir)


def rebuild_run_report(run_dir: Path, xlsx: bool | None = None) -> Tally:
    """``campaigner report RUN_DIR``: rebuild report.csv/.xlsx from input + journal."""
    tidy_run_folder(run_dir)
    plan, table, journal = open_run(run_dir)
    try:
        return rebuild_report(run_dir, plan, table, journal, xlsx=xlsx)
    finally:
        journal.close()


async def _report_progress(pool: SendPool, total: int, sink: ProgressSink) -> None:
    while True:
        sink(pool.statistics(), total)
        await anyio.sleep(_PROGRESS_EVERY_S)


async def run_send(
    campaign: Campaign,
    options: SendOptions,
    *,
    credentials: Credentials,
    confirm: Confirm,
    progress: ProgressSink,
    say: Callable[[str], None],
    sandbox: Any = None,
    control: RunControl | None = None,
    retry: RetryPlan | None = None,
    shared: bool = False,
) -> SendResult:
    """Validate, confirm, then send every sendable row and rebuild the report.

    ``options.at``: wait for that time first (in state scheduled); ``options.limit``: send
    that many rows, then stop resumably; ``retry``: send only its rows (a new run).

    With ``control`` the send stops when it asks (and not on signals: it may run in any
    thread); it learns the run folder as soon as one exists. ``shared``: the event loop
    sends other runs too, so the long file work (reading and checking the list, creating
    the run, the report) happens in worker threads, where it cannot stall their sends."""
    started = time.perf_counter()
    if control is None and threading.current_thread() is not threading.main_thread():
        control = RunControl()  # only the main thread receives signals: nothing to watch
    plan = Plan(campaign)
    check_endpoint(options.endpoint)
    settings = campaign.send
    qps = options.qps or settings.qps
    if not 1 <= qps <= MAX_QPS:
        raise ConfigError(f"--qps must be from 1 to {MAX_QPS} (got {qps})")
    if options.limit is not None and options.limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {options.limit})")
    at = check_at(options.at) if options.at is not None else None
    budget_spec = chosen_budget(options.rate_budget, os.environ)
    run_dir: Path | None = None
    starts = True  # a new run, or a resume of one that stopped before it recorded its campaign
    if options.resume is not None:
        tidy_run_folder(options.resume)
        recorded = recorded_input(options.resume)
        starts = recorded is None
        path = options.input_path or recorded or resolve_input(campaign, None)
        run_dir = options.resume
    else:
        path = resolve_input(campaign, options.input_path)
    table = await _blocking(shared, partial(open_campaign_input, campaign, path, plan))
    meta = campaign_meta(campaign, path)
    meta["destination"] = destination(options.endpoint, sandbox is not None)
    want_xlsx = table.kind == "xlsx" if options.xlsx is None else options.xlsx
    meta["report_xlsx"] = "yes" if want_xlsx else "no"
    meta |= starting_meta(at) | (retry_meta(retry) if retry is not None else {})
    registry = RunRegistry(warn=lambda message: say(f"warning: {message}"))
    only_new = options.only_new or (run_dir is not None and _recorded_only_new(run_dir))
    meta["only_new"] = "yes" if only_new else "no"
    workspace = options.out if run_dir is None else run_dir.parent
    screens = WorkspaceScreen(
        plan, workspace, only_new=only_new, destination=meta["destination"], this_run=run_dir
    )
    tally = await _blocking(shared, lambda: _validate_all(plan, table, screens.check()))
    invalid = tally.rows - tally.count(Status.WOULD_SEND) - sum(tally.count(s) for s in HELD)
    if starts and not options.again:
        earlier = await _blocking(shared, partial(find_earlier_runs, options.out, meta, registry))
        if only_new:  # rows earlier runs sent are already_sent: none can go twice
            earlier = [EarlierRun(r.run_dir, r.created_at, r.finished, 0) for r in earlier]
        check_earlier_runs(earlier, confirm, yes=options.yes, sandbox=sandbox is not None)
    if (
        invalid
        and retry is None  # a retry asked its own question
        and not options.yes
        and not confirm(
            f"{invalid:,} of {tally.rows:,} rows will not be sent (invalid or duplicate). "
            f"Send the {tally.count(Status.WOULD_SEND):,} valid rows?"
        )
    ):
        raise ConfirmationDeclined(
            f"not sent: {invalid:,} rows are invalid or duplicate; fix them or pass --yes "
            "to send the valid rows"
        )

    if run_dir is None:
        try:
            created_dir, lock = await _blocking(
                shared, partial(create_run, options.out, campaign.name, meta)
            )
            run_dir = created_dir
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
    try:
        # Another host may work on this run (its folder shared): the lease says, before
        # anything in the journal is changed. A run is its folder's name and the moment it
        # was created (two workspaces may hold folders of the same name).
        created = (journal.meta() or meta).get("created_at", "")
        lease = open_lease(budget_spec, run_dir.name, created)
        if lease is not None:
            await lease.acquire()
    except BaseException:
        journal.close()
        lock.release()
        raise
    await _blocking(shared, partial(registry.record, campaign.name, run_dir, meta))
    if retry is not None and options.resume is None:
        link_retry(retry, run_dir)  # before anything is sent: the rows are never retried twice
    if control is not None:
        control.attach_run(run_dir)
    stop = StopSignals(say)
    reporting = False  # the send is over; what remains is the report
    waiting = at is not None  # a scheduled run before its time: a signal cancels it
    try:
        old = journal.meta()
        if old:
            changes = resume_changes(old, meta)
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
            # A new run has its state from create_run: a cancel may have come since.
            if options.resume is not None:
                journal.set_meta(starting_meta(at))
            retry = retry or resumed_retry(old)  # a retry run resumed sends its rows only
        else:
            journal.set_meta(meta)
        if at is not None:
            say(
                f"scheduled: {run_dir} sends at {at.isoformat(timespec='seconds')}; "
                f"cancel with: campaigner cancel {shlex.quote(str(run_dir))} (or Ctrl-C)"
            )
            cancelled_by = await wait_for_start(
                journal,
                at,
                signals=control is None,
                asked=(lambda: control.reason) if control is not None else (lambda: None),
            )
            stop.restore()  # the wait's signal receiver left Python's defaults behind
            waiting = False
            if cancelled_by is not None:  # every row not_attempted
                await _blocking(shared, partial(rebuild_report, run_dir, plan, table, journal))
                raise cancelled_error(cancelled_by, run_dir / "report.csv")
        counts = journal.counts()
        settled = sum(counts.get(s, 0) for s in _SETTLED)
        total = max(tally.count(Status.WOULD_SEND) - settled, 0)
        if retry is not None:
            total = len(retry.rows)
        limit = SendLimit(options.limit)
        total = min(total, options.limit or total)
        send_started, cpu_started = time.perf_counter(), _cpu_seconds()
        pool = await _send_rows(
            plan,
            table,
            journal,
            credentials,
            options,
            qps,
            total,
            progress,
            say,
            sandbox,
            stop,
            control,
            screens.feed(),
            lease=lease,
            limit=limit,
            only=retry.rows if retry is not None else None,
        )
        reporting = True
        stop.allow_abort()
        send_seconds, cpu_seconds = time.perf_counter() - send_started, _cpu_seconds() - cpu_started
        journal.settle_interrupted()  # after an abort, in-flight rows are unknown
        resume_with = _resume_command(campaign, options, run_dir, sandbox=sandbox is not None)
        stopped = (pool.stop_reason or "stopped") if pool.stopping else None
        journal.set_meta(ending_meta(stopped, limit.reason, resume_with))
        final = await _blocking(shared, partial(rebuild_report, run_dir, plan, table, journal))
        await _blocking(shared, partial(_record_sends, workspace, campaign.name, run_dir, say))
        seconds = time.perf_counter() - started
        stats = pool.statistics()
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
            "stopped": pool.stop_reason or limit.reason,
        }
        if retry is not None:
            summary["retry_of"] = str(retry.of)
        if limit.cut and not pool.stopping:
            say(
                f"stopped after {options.limit:,} rows (--limit); the rest are not_attempted. "
                f"Continue with: {resume_with}"
            )
        write_json_atomic(run_dir / "summary.json", summary)
        stop_reason = pool.stop_reason or limit.reason
        result = SendResult(run_dir, final, stats, seconds, stop_reason, summary)
    except BaseException as exc:
        leaf = meaningful_leaf(exc)
        if waiting and isinstance(leaf, KeyboardInterrupt):  # before the wait took signals
            name = signal.Signals(getattr(leaf, "signum", signal.SIGINT)).name
            cancel_before_time(journal, name)
            rebuild_report(run_dir, plan, table, journal)  # every row not_attempted
            raise cancelled_error(name, run_dir / "report.csv") from exc
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
        if lease is not None:
            with anyio.CancelScope(shield=True):
                await lease.release()
        lock.release()
    details = {"run_dir": str(run_dir), **summary}
    if lease is not None and lease.lost is not None:
        raise RateBudgetError(
            f"{lease.lost}: this process stopped sending it; report: {run_dir / 'report.csv'}",
            details=details,
        )
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
        raise RunStopped(
            f"stopped by {stopped_by}; report written to {run_dir / 'report.csv'}; {then}",
            result,
            exit_code=143 if stopped_by == "SIGTERM" else 130,
            details=details,
        )
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
    stop: StopSignals,
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
    stop: StopSignals,
    control: RunControl | None,
    screen: Screen,
    lease: RunLease | None = None,
    limit: SendLimit | None = None,
    only: frozenset[int] | None = None,
) -> SendPool:
    async with AsyncExitStack() as stack:
        endpoint = options.endpoint
        if sandbox is not None:
            endpoint = await stack.enter_async_context(sandbox)
        client = CamsClient(credentials, endpoint=endpoint, timeout_s=plan.campaign.send.timeout_s)
        stack.push_async_callback(client.aclose)
        # The account's quota, shared with the other processes sending on this AccessKey.
        budget = open_budget(
            chosen_budget(options.rate_budget, os.environ),
            endpoint=endpoint,
            access_key_id=credentials.access_key_id,
            action=SEND_ACTION,
            limit=MAX_QPS,
            say=say,
        )
        stack.push_async_callback(budget.aclose)
        writer = JournalWriter(journal)
        pool = SendPool(
            client,
            writer,
            pacer_settings=PacerSettings(limit=qps),
            max_attempts=plan.campaign.send.max_attempts,
            outage_limit_s=plan.campaign.send.outage_limit_s,
            budget=budget,
        )
        with anyio.CancelScope() as abort:
            async with anyio.create_task_group() as tg:
                if lease is not None:
                    tg.start_soon(lease.keep, pool.stop)
                if control is None:
                    tg.start_soon(watch_signals, pool, abort, say, stop)
                else:
                    tg.start_soon(control.watch, pool)
                tg.start_soon(_report_progress, pool, total, progress)
                jobs = feed(
                    plan, table, writer, journal, screen, only=only, timing=_timing(plan, table)
                )
                await pool.run(limit.take(jobs) if limit is not None else jobs)
                tg.cancel_scope.cancel()
        if abort.cancelled_caught:
            with anyio.CancelScope(shield=True):
                await writer.flush()
        progress(pool.statistics(), total)
        return pool
