"""The library API the CLI (and next the web app) calls: ``preview``, ``send``, ``report``
and ``reconcile`` take frozen options (``campaigner.options``) and return frozen results.

Nothing here prints: messages go to ``say``, questions to ``confirm``, progress to
``progress`` as ``SendProgress`` snapshots. Failures are ``CampaignerError`` subclasses."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.config import Campaign, load_campaign
from campaigner.errors import ConfigError, JournalError, RunStateError
from campaigner.options import (
    PreviewOptions,
    ReconcileOptions,
    ReconcileResult,
    ReportOptions,
    ReportResult,
    SendOptions,
    SendProgress,
    SendResult,
    StatusOptions,
    StatusResult,
    TestSendAnswer,
)
from campaigner.preview import PreviewResult, run_preview
from campaigner.runstate import RunInfo
from campaigner.sharedloop import SharedLoop
from campaigner.signing import Credentials
from campaigner.stopping import RunControl

if TYPE_CHECKING:
    from campaigner.send.stats import PoolStats

__all__ = (
    "Confirm",
    "PreviewOptions",
    "PreviewResult",
    "ReconcileOptions",
    "ReconcileResult",
    "ReportOptions",
    "ReportResult",
    "RunControl",
    "RunInfo",
    "Say",
    "SendOptions",
    "SendProgress",
    "SendResult",
    "SharedLoop",
    "StatusOptions",
    "StatusResult",
    "TestSendAnswer",
    "cancel_run",
    "list_runs",
    "preview",
    "reconcile",
    "report",
    "retry",
    "send",
    "status",
    "test_send",
)

Say = Callable[[str], None]  # a message for the user: a warning, a notice
Confirm = Callable[[str], bool]  # a yes/no question; no (or no one to ask) stops the send


def _quiet(message: str) -> None:
    pass


def _decline(question: str) -> bool:
    return False


def _run(send: Callable[[], Awaitable[SendResult]], loop: SharedLoop | None) -> SendResult:
    """A send in ``loop``, or in an event loop of its own."""
    import anyio

    return loop.run(send) if loop is not None else anyio.run(send)


def _campaign(options: PreviewOptions | SendOptions, say: Say) -> Campaign:
    campaign = load_campaign(options.campaign_file)
    for warning in campaign.warnings:
        say(f"warning: {warning}")
    return campaign


def preview(options: PreviewOptions, *, say: Say = _quiet) -> PreviewResult:
    """Validate and render every row and write the preview report; send nothing."""
    campaign = _campaign(options, say)
    return run_preview(
        campaign,
        input_path=options.input_path,
        out=options.out,
        xlsx=options.xlsx,
        only_new=options.only_new,
    )


def send(
    options: SendOptions,
    progress: Callable[[SendProgress], None] | None = None,
    *,
    confirm: Confirm = _decline,
    say: Say = _quiet,
    control: RunControl | None = None,
    loop: SharedLoop | None = None,
) -> SendResult:
    """Validate every row, then send the valid ones and write the report.

    A question ``confirm`` answers no raises ``ConfirmationDeclined``; a signal that stops
    the send raises ``RunStopped`` carrying the result as far as it got. With ``control``
    (a send in another thread) its ``stop`` ends the send instead of signals, and the
    result's ``stop_reason`` says why. With ``loop`` the send runs in that event loop,
    beside the other sends there; without, in one of its own."""

    from campaigner.sending import run_send
    from campaigner.sim.sandbox import SANDBOX_KEY_ID, SANDBOX_SECRET, serve_sandbox

    if options.resend_unknown and options.resume is None:
        raise ConfigError("--resend-unknown works only with --resume RUN_DIR")
    campaign = _campaign(options, say)
    sandbox = None
    if options.sandbox:
        credentials = Credentials(SANDBOX_KEY_ID, SANDBOX_SECRET)
        sandbox = serve_sandbox(options.out)  # its receipts go to the workspace's store
        options = replace(options, endpoint="http://127.0.0.1")
    else:
        credentials = options.credentials or Credentials.from_env(os.environ)

    def sink(stats: PoolStats, total: int) -> None:
        if progress is not None:
            progress(SendProgress.of(stats, total))

    return _run(
        partial(
            run_send,
            campaign,
            options,
            credentials=credentials,
            confirm=confirm,
            progress=sink,
            say=say,
            sandbox=sandbox,
            control=control,
            shared=loop is not None,
        ),
        loop,
    )


def report(options: ReportOptions) -> ReportResult:
    """Rebuild a run's report from its input and journal (also while it runs)."""
    from campaigner.report import record_delivery, report_paths
    from campaigner.sending import rebuild_run_report

    tally = rebuild_run_report(options.run_dir, options.xlsx)
    if tally.delivery is not None:  # rebuilt with the latest receipts
        record_delivery(options.run_dir, tally.delivery)
    return ReportResult(options.run_dir, tally, tuple(report_paths(options.run_dir)))


def reconcile(options: ReconcileOptions, *, say: Say = _quiet) -> ReconcileResult:
    """Settle a run's ``unknown`` rows with ListChatappMessage, then rebuild its report.

    Holds the run's lock throughout: no send of that run can be going on."""
    import anyio

    from campaigner.budget import chosen_budget, open_budget
    from campaigner.cams import LIST_ACTION
    from campaigner.journal import RunLock
    from campaigner.limits import LIST_QPS
    from campaigner.reconcile import ReconcileCounts, reconcile_rows
    from campaigner.report import rebuild_report, record_delivery
    from campaigner.runs import open_run
    from campaigner.send.client import CamsClient
    from campaigner.sending import tidy_run_folder

    credentials = options.credentials or Credentials.from_env(os.environ)
    run_dir = options.run_dir
    with RunLock(run_dir):
        tidy_run_folder(run_dir)
        plan, table, journal = open_run(run_dir)
        try:

            async def settle() -> ReconcileCounts:
                budget = open_budget(
                    chosen_budget(options.rate_budget, os.environ),
                    endpoint=options.endpoint,
                    access_key_id=credentials.access_key_id,
                    action=LIST_ACTION,
                    limit=LIST_QPS,
                    say=say,
                )
                try:
                    async with CamsClient(credentials, endpoint=options.endpoint) as client:
                        return await reconcile_rows(
                            plan,
                            table,
                            journal,
                            client,
                            grace_s=options.grace_s,
                            say=say,
                            budget=budget,
                        )
                finally:
                    await budget.aclose()

            counts = anyio.run(settle)
            tally = rebuild_report(run_dir, plan, table, journal)  # in the run's formats
        finally:
            journal.close()
    if tally.delivery is not None:  # rows found sent may have receipts waiting already
        record_delivery(run_dir, tally.delivery)
    return ReconcileResult(
        run_dir,
        interrupted=counts.interrupted,
        found_sent=counts.found_sent,
        not_sent=counts.not_sent,
        still_unknown=counts.still_unknown,
        lookup_errors=counts.lookup_errors,
        tally=tally,
    )


def status(options: StatusOptions, *, say: Say = _quiet) -> StatusResult:
    """Ask ListChatappMessage about a run's sent rows without a final receipt, store what
    it says as receipts (source ``lookup``), then rebuild the report (docs/delivery.md).

    Takes no run lock: it writes only the workspace's receipts.sqlite, and the report the
    way ``report`` does, so it can run while the send goes on."""
    import anyio

    from campaigner.budget import chosen_budget, open_budget, take_grant
    from campaigner.cams import LIST_ACTION
    from campaigner.lookup import LookupCounts, look_up, unsettled_rows, with_business
    from campaigner.receipts.store import ReceiptStore
    from campaigner.report import LOOKUP_CHANNELS, rebuild_report, record_delivery, report_paths
    from campaigner.runs import open_run
    from campaigner.send.client import CamsClient
    from campaigner.sending import tidy_run_folder

    run_dir = options.run_dir
    tidy_run_folder(run_dir)
    plan, table, journal = open_run(run_dir)
    try:
        rows = unsettled_rows(run_dir)
        counts = LookupCounts(unsettled=len(rows), cannot_look_up=len(rows))
        if rows and plan.channel in LOOKUP_CHANNELS:
            rows = with_business(rows, plan, table)
            credentials = options.credentials or Credentials.from_env(os.environ)
            space = plan.template.slot("CustSpaceId")
            extra = {"CustSpaceId": space.parts[0][1]} if space and space.kind == "static" else {}

            async def ask(store: ReceiptStore) -> LookupCounts:
                budget = open_budget(
                    chosen_budget(options.rate_budget, os.environ),
                    endpoint=options.endpoint,
                    access_key_id=credentials.access_key_id,
                    action=LIST_ACTION,
                    limit=options.qps,
                    say=say,
                )
                try:
                    async with CamsClient(credentials, endpoint=options.endpoint) as client:
                        return await look_up(
                            rows,
                            plan.channel,
                            client,
                            store,
                            grant=partial(take_grant, budget),
                            extra=extra,
                            say=say,
                        )
                finally:
                    await budget.aclose()

            with ReceiptStore.open(run_dir.parent) as store:
                counts = anyio.run(ask, store)
        tally = rebuild_report(run_dir, plan, table, journal)  # in the run's formats
    finally:
        journal.close()
    if tally.delivery is not None:
        record_delivery(run_dir, tally.delivery)
    return StatusResult(
        run_dir,
        plan.channel,
        unsettled=counts.unsettled,
        cannot_look_up=counts.cannot_look_up,
        requests=counts.requests,
        found=dict(counts.found),
        not_listed=counts.not_listed,
        failed_windows=counts.failed_windows,
        unreadable=counts.unreadable,
        stored=counts.stored,
        tally=tally,
        paths=tuple(report_paths(run_dir)),
    )


# -- operator controls: runs, cancel, test send, retry ------------------------------------


def list_runs(out: Path) -> list[RunInfo]:
    """The runs under ``out`` with their state (scheduled, sending, paused, done, stopped,
    interrupted, cancelled) and their rows by journal state, oldest first."""
    from campaigner.runstate import list_runs as runs_under

    return runs_under(out)


def cancel_run(run_dir: Path) -> RunInfo:
    """Cancel a scheduled run (``send --at``): nothing of it is sent. The waiting process
    notices within a second, writes the report (every row not_attempted, with the reason)
    and exits; when no process waits for it any more, the report is written here.

    A run that is sending (or ended) cannot be cancelled: ``RunStateError``."""
    from campaigner.journal import Journal, RunLock
    from campaigner.runstate import META_STATE, RunState, lock_held, read_run
    from campaigner.schedule import cancel_values
    from campaigner.sending import rebuild_run_report

    info = read_run(run_dir)  # JournalError when it is no run folder
    journal = Journal.in_run(run_dir, check=False)
    try:
        held = journal.switch_meta(
            META_STATE,
            {RunState.SCHEDULED.value},
            cancel_values("not sent: the scheduled run was cancelled (campaigner cancel)"),
        )
    finally:
        journal.close()
    if held not in (RunState.SCHEDULED, RunState.CANCELLED):
        raise RunStateError(
            f"{run_dir} is {info.state}, not scheduled: only a run waiting for its --at time "
            "can be cancelled (stop a sending run with Ctrl-C in its terminal)"
        )
    if not lock_held(run_dir):  # nobody waits for it: its report is ours to write
        try:
            with RunLock(run_dir):
                rebuild_run_report(run_dir)
        except JournalError:
            pass  # taken in the meantime: that process writes it
    return read_run(run_dir)


def test_send(
    options: SendOptions, numbers: Sequence[str], *, say: Say = _quiet
) -> list[TestSendAnswer]:
    """Send the first valid row's call to ``numbers`` (at most 5, checked like the list's)
    instead of its recipient, and return CAMS's answers. No run folder, journal, record
    of runs or ledger is touched."""
    from contextlib import AsyncExitStack

    import anyio

    from campaigner.sim.sandbox import SANDBOX_KEY_ID, SANDBOX_SECRET, serve_sandbox
    from campaigner.testsend import run_test_send

    campaign = _campaign(options, say)
    sandbox = None
    if options.sandbox:  # the simulator's own key pair: no credentials needed
        credentials = Credentials(SANDBOX_KEY_ID, SANDBOX_SECRET)
        sandbox = serve_sandbox(options.out)
    else:
        credentials = options.credentials or Credentials.from_env(os.environ)

    async def run() -> list[TestSendAnswer]:
        async with AsyncExitStack() as stack:
            endpoint = options.endpoint
            if sandbox is not None:
                endpoint = await stack.enter_async_context(sandbox)
            return await run_test_send(
                campaign,
                numbers,
                input_path=options.input_path,
                endpoint=endpoint,
                credentials=credentials,
            )

    return anyio.run(run)


def retry(
    run_dir: Path,
    codes: Sequence[str] | None = None,
    progress: Callable[[SendProgress], None] | None = None,
    *,
    endpoint: str = DEFAULT_ENDPOINT,
    out: Path | None = None,
    qps: int | None = None,
    yes: bool = False,
    credentials: Credentials | None = None,
    confirm: Confirm = _decline,
    say: Say = _quiet,
    control: RunControl | None = None,
    loop: SharedLoop | None = None,
) -> SendResult:
    """A new run (under ``out``, default: beside ``run_dir``) that sends again the rows of
    ``run_dir`` that failed with a retriable code: ``codes`` (exact codes and ``Prefix.*``),
    by default ``retriable.DEFAULT_RETRIABLE``. The runs are linked both ways; the old
    run's report gets a ``retried_in`` column. Errors and signals as ``send``."""

    from campaigner.retriable import DEFAULT_RETRIABLE, parse_codes
    from campaigner.retrying import choose_rows, hold_run, mark_old_report, retry_question
    from campaigner.sending import run_send

    patterns = parse_codes(codes) if codes is not None else DEFAULT_RETRIABLE
    credentials = credentials or Credentials.from_env(os.environ)
    lock = hold_run(run_dir)
    try:
        choice = choose_rows(run_dir, patterns)
        retry_question(choice, confirm, yes=yes)
        for warning in choice.campaign.warnings:
            say(f"warning: {warning}")
        options = SendOptions(
            campaign_file=choice.campaign.source or Path("campaign.toml"),
            input_path=choice.input_path,
            out=out or run_dir.parent,
            endpoint=endpoint,
            qps=qps,
            yes=True,  # asked above
            again=True,  # the same campaign and list as the run it retries, on purpose
            credentials=credentials,
        )

        def sink(stats: PoolStats, total: int) -> None:
            if progress is not None:
                progress(SendProgress.of(stats, total))

        try:
            return _run(
                partial(
                    run_send,
                    choice.campaign,
                    options,
                    credentials=credentials,
                    confirm=confirm,
                    progress=sink,
                    say=say,
                    control=control,
                    retry=choice.plan,
                    shared=loop is not None,
                ),
                loop,
            )
        finally:
            mark_old_report(run_dir, say)
    finally:
        lock.release()
