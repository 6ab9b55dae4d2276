"""The library API the CLI (and next the web app) calls: ``preview``, ``send``, ``report``
and ``reconcile`` take frozen options (``campaigner.options``) and return frozen results.

Nothing here prints: messages go to ``say``, questions to ``confirm``, progress to
``progress`` as ``SendProgress`` snapshots. Failures are ``CampaignerError`` subclasses."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from campaigner.config import Campaign, load_campaign
from campaigner.errors import ConfigError
from campaigner.options import (
    PreviewOptions,
    ReconcileOptions,
    ReconcileResult,
    ReportOptions,
    ReportResult,
    SendOptions,
    SendProgress,
    SendResult,
)
from campaigner.preview import PreviewResult, run_preview
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
    "Say",
    "SendOptions",
    "SendProgress",
    "SendResult",
    "preview",
    "reconcile",
    "report",
    "send",
)

Say = Callable[[str], None]  # a message for the user: a warning, a notice
Confirm = Callable[[str], bool]  # a yes/no question; no (or no one to ask) stops the send


def _quiet(message: str) -> None:
    pass


def _decline(question: str) -> bool:
    return False


def _campaign(options: PreviewOptions | SendOptions, say: Say) -> Campaign:
    campaign = load_campaign(options.campaign_file)
    for warning in campaign.warnings:
        say(f"warning: {warning}")
    return campaign


def preview(options: PreviewOptions, *, say: Say = _quiet) -> PreviewResult:
    """Validate and render every row and write the preview report; send nothing."""
    campaign = _campaign(options, say)
    return run_preview(campaign, input_path=options.input_path, out=options.out, xlsx=options.xlsx)


def send(
    options: SendOptions,
    progress: Callable[[SendProgress], None] | None = None,
    *,
    confirm: Confirm = _decline,
    say: Say = _quiet,
    control: RunControl | None = None,
) -> SendResult:
    """Validate every row, then send the valid ones and write the report.

    A question ``confirm`` answers no raises ``ConfirmationDeclined``; a signal that stops
    the send raises ``RunStopped`` carrying the result as far as it got. With ``control``
    (a send in another thread) its ``stop`` ends the send instead of signals, and the
    result's ``stop_reason`` says why."""
    import anyio

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

    return anyio.run(
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
        )
    )


def report(options: ReportOptions) -> ReportResult:
    """Rebuild a run's report from its input and journal (also while it runs)."""
    from campaigner.report import report_paths
    from campaigner.sending import rebuild_run_report

    tally = rebuild_run_report(options.run_dir, options.xlsx)
    return ReportResult(options.run_dir, tally, tuple(report_paths(options.run_dir)))


def reconcile(options: ReconcileOptions, *, say: Say = _quiet) -> ReconcileResult:
    """Settle a run's ``unknown`` rows with ListChatappMessage, then rebuild its report.

    Holds the run's lock throughout: no send of that run can be going on."""
    import anyio

    from campaigner.journal import RunLock
    from campaigner.reconcile import ReconcileCounts, reconcile_rows
    from campaigner.report import rebuild_report
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
                async with CamsClient(credentials, endpoint=options.endpoint) as client:
                    return await reconcile_rows(
                        plan, table, journal, client, grace_s=options.grace_s, say=say
                    )

            counts = anyio.run(settle)
            tally = rebuild_report(run_dir, plan, table, journal)  # in the run's formats
        finally:
            journal.close()
    return ReconcileResult(
        run_dir,
        interrupted=counts.interrupted,
        found_sent=counts.found_sent,
        not_sent=counts.not_sent,
        still_unknown=counts.still_unknown,
        lookup_errors=counts.lookup_errors,
        tally=tally,
    )
