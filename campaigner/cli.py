"""The command line: parses options, calls the library, prints, maps errors to exit codes.

Exit codes: 0 every row sent (or would be); 3 finished but some rows were not;
1 the run could not happen or was aborted; 2 usage error; 130 stopped by a signal.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.display import (
    ProgressDisplay,
    echo,
    print_funnel,
    print_preview,
    print_runs,
    print_send,
    print_tally,
    print_test_send,
)
from campaigner.errors import CampaignerError, meaningful_leaf
from campaigner.exits import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    Stage,
    explain,
    fail,
    handle_errors,
    terminate,
)
from campaigner.limits import DEFAULT_RECEIVE_PORT, LIST_QPS, MAX_QPS, RECONCILE_GRACE_S
from campaigner.runs import private_umask
from campaigner.statuses import Status
from campaigner.terminal import printable

if TYPE_CHECKING:
    from campaigner.options import SendOptions

__all__ = ("cli", "main")


def _say(message: str) -> None:
    """A message from the library (a warning, a notice): on stderr, stdout is the result's."""
    echo(message, err=True)


class _PrintableFormatter(logging.Formatter):
    """Log lines may quote CAMS messages and file names: escaped like every printed line
    (the traceback of ``-v`` is left as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record))


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    # httpx logs full URLs at INFO; our URLs carry message parameters.
    for name in ("httpx", "httpcore", "aiohttp.access", "hpack"):
        logging.getLogger(name).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="campaigner")
def cli() -> None:
    """Send chat-app campaigns (WhatsApp, Messenger, Instagram, Viber) from a spreadsheet
    through Alibaba Cloud Chat App Message Service."""
    private_umask()
    Stage.after_stop = "nothing was sent"  # per command (CliRunner runs many in one process)
    for signum in (signal.SIGINT, signal.SIGTERM):  # a clean exit, not a silent kill
        signal.signal(signum, terminate)


campaign_arg = click.argument("campaign_file", type=click.Path(dir_okay=False, path_type=Path))
input_opt = click.option(
    "--input",
    "input_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recipient list (CSV or XLSX); overrides `input` in the campaign file.",
)
out_opt = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="Folder that receives one sub-folder per run.",
)
format_opt = click.option(
    "--format",
    "report_format",
    type=click.Choice(["auto", "csv", "xlsx"]),
    default="auto",
    show_default=True,
    help="Report format besides report.csv: auto gives report.xlsx for XLSX input.",
)


def _check_endpoint(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A malformed --endpoint is a usage error, caught before anything is read."""
    from campaigner.send.client import check_endpoint

    try:
        check_endpoint(value)
    except CampaignerError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _check_rate_budget(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A malformed --rate-budget is a usage error, caught before anything is read."""
    from campaigner.budget import check_budget

    if value is None:
        return None
    try:
        return check_budget(value)
    except CampaignerError as exc:
        raise click.BadParameter(str(exc)) from None


rate_budget_opt = click.option(
    "--rate-budget",
    metavar="host|local|redis://HOST:PORT/DB",
    callback=_check_rate_budget,
    help="Who shares the account's rate: this host's processes (host, the default), this "
    "process (local) or every process using one Redis. Default: $CAMPAIGNER_RATE_BUDGET, "
    "else host.",
)


def _parse_at(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """--at: a usage error when it is no time or has passed, before anything is read."""
    if value is None:
        return None
    from campaigner.schedule import parse_at

    try:
        return parse_at(value)
    except CampaignerError as exc:
        raise click.BadParameter(str(exc)) from None


def _want_xlsx(report_format: str) -> bool | None:
    return None if report_format == "auto" else report_format == "xlsx"


@cli.command()
@campaign_arg
@input_opt
@out_opt
@format_opt
@click.option(
    "--only-new",
    is_flag=True,
    help="Show as already_sent the rows an earlier run of the campaign sent the same call.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@handle_errors
def preview(
    campaign_file: Path,
    input_path: Path | None,
    out: Path,
    report_format: str,
    only_new: bool,
    as_json: bool,
) -> None:
    """Validate and render every row and write the preview report; send nothing."""
    from campaigner import api

    _setup_logging(False)
    options = api.PreviewOptions(
        campaign_file, input_path, out, _want_xlsx(report_format), only_new=only_new
    )
    result = api.preview(options, say=_say)
    if as_json:
        click.echo(json.dumps({"run_dir": str(result.run_dir), **result.summary()}))
    else:
        print_preview(result)
    complete = result.would_send + result.held == result.tally.rows
    sys.exit(EXIT_OK if complete else EXIT_INCOMPLETE)


# -- send -------------------------------------------------------------------------------


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        return False  # never prompt without a terminal: scheduled runs pass --yes
    return click.confirm(printable(question), default=False, err=True)


@cli.command()
@campaign_arg
@input_opt
@out_opt
@format_opt
@click.option(
    "--endpoint",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    callback=_check_endpoint,
    help="CAMS endpoint; plain http:// only for a loopback simulator.",
)
@click.option("--qps", type=click.IntRange(1, MAX_QPS), help=f"Requests per second (≤ {MAX_QPS}).")
@click.option(
    "--sandbox", is_flag=True, help="Send to a built-in CAMS simulator on a free loopback port."
)
@click.option("--yes", "-y", is_flag=True, help="Answer yes to questions (for scheduled runs).")
@click.option(
    "--resume",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Continue the run in this folder; sent, failed and unknown rows are not resent.",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="With --resume: also resend rows whose outcome is unknown (may duplicate).",
)
@click.option(
    "--again",
    is_flag=True,
    help="Send a campaign file and list that an earlier run already sent (--yes does not).",
)
@click.option(
    "--only-new",
    is_flag=True,
    help="Send only the calls no earlier run of the campaign sent (the workspace ledger).",
)
@rate_budget_opt
@click.option(
    "--at",
    metavar="TIME",
    callback=_parse_at,
    help="Send at this time, ISO 8601 (2026-12-01T09:00+08:00; no offset: local time); "
    "everything is checked now, then the run waits in state scheduled.",
)
@click.option(
    "--limit",
    type=click.IntRange(1),
    help="Send only the first N valid rows, then stop; --resume sends the rest.",
)
@click.option(
    "--test-to",
    "test_to",
    metavar="NUMBER[,NUMBER...]",
    help="Send the first valid row's message to these numbers only (at most 5) and print "
    "CAMS's answers; no run is recorded.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@handle_errors
def send(
    campaign_file: Path,
    input_path: Path | None,
    out: Path,
    report_format: str,
    endpoint: str,
    qps: int | None,
    sandbox: bool,
    yes: bool,
    resume: Path | None,
    resend_unknown: bool,
    again: bool,
    only_new: bool,
    rate_budget: str | None,
    at: datetime | None,
    limit: int | None,
    test_to: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Validate every row, then send the valid ones and write the report."""
    if resend_unknown and resume is None:
        raise click.UsageError("--resend-unknown works only with --resume RUN_DIR")
    if test_to is not None and (resume or at or limit or only_new):
        raise click.UsageError(
            "--test-to sends a test only: no --resume, --at, --limit or --only-new"
        )
    from campaigner import api

    _setup_logging(verbose)
    options = api.SendOptions(
        campaign_file=campaign_file,
        input_path=input_path,
        out=out,
        endpoint=endpoint,
        qps=qps,
        yes=yes,
        resume=resume,
        resend_unknown=resend_unknown,
        xlsx=_want_xlsx(report_format),
        again=again,
        sandbox=sandbox,
        only_new=only_new,
        rate_budget=rate_budget,
        at=at,
        limit=limit,
    )
    if test_to is not None:
        _test_send(options, test_to.split(","), as_json=as_json)
    progress = ProgressDisplay(live=sys.stderr.isatty() and not as_json)
    try:
        result = api.send(options, progress, confirm=_confirm, say=_say)
    finally:
        progress.close()
    Stage.after_stop = f"the run had finished: {result.run_dir / 'report.csv'}"
    if as_json:
        click.echo(json.dumps({"run_dir": str(result.run_dir), **result.summary}))
    else:
        print_send(result)
    sys.exit(EXIT_OK if result.all_sent else EXIT_INCOMPLETE)


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--latency-ms", type=click.FloatRange(0), default=0.0, show_default=True, help="Fixed latency."
)
@click.option(
    "--jitter-ms",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="Random extra latency.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for latency and faults.")
@click.option(
    "--qps-limit",
    type=click.IntRange(1),
    default=MAX_QPS,
    show_default=True,
    help="Throttle above this.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME=RATE",
    help="Inject a fault at a rate, e.g. unavailable_503=0.02 (repeatable). Names: "
    + "unavailable_503, reset_before, reset_after, timeout_after, error_500_after, "
    "malformed_200, throttle",
)
@click.option(
    "--fail-recipient",
    "fail_recipients",
    multiple=True,
    metavar="TO=CODE",
    help="Answer this recipient with a business error code (repeatable).",
)
@click.option(
    "--window",
    "windows",
    multiple=True,
    metavar="START:SECONDS:FAULT[:RATE]",
    help="A fault for a while, seconds after start; FAULT 'refuse' is an outage "
    "(connection refused), e.g. 10:30:refuse or 5:10:throttle:0.5 (repeatable).",
)
@click.option(
    "--hang-s",
    type=click.FloatRange(0),
    default=60.0,
    show_default=True,
    help="How long timeout_after answers hang.",
)
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Append every accepted send to this JSON-lines file.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="ID=SECRET",
    help="Accepted AccessKey pair (repeatable); default testAccessKeyId=testAccessKeySecret.",
)
@click.option(
    "--callback-base",
    metavar="URL",
    help="Push status receipts and inbound replies to URL/cams/status/TOKEN and "
    "URL/cams/inbound/TOKEN.",
)
@click.option(
    "--callback-token",
    envvar="CAMPAIGNER_CALLBACK_TOKEN",
    show_envvar=True,
    metavar="TOKEN",
    help="The callback path token.",
)
@click.option(
    "--deliver-rate",
    type=click.FloatRange(0, 1),
    default=0.95,
    show_default=True,
    help="Share of the messages not failed that are delivered.",
)
@click.option(
    "--read-rate",
    type=click.FloatRange(0, 1),
    default=0.6,
    show_default=True,
    help="Share of the delivered messages that are read.",
)
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    default=0.03,
    show_default=True,
    help="Share of the accepted messages that fail (Meta codes 131026, 131049, 131050).",
)
@click.option(
    "--reply-rate",
    type=click.FloatRange(0, 1),
    default=0.1,
    show_default=True,
    help="Share of the read messages that get a reply (30 % of them opt-outs).",
)
@click.option(
    "--receipt-delay-ms",
    default="200:2000",
    show_default=True,
    metavar="MIN:MAX",
    help="Delay before each receipt after the previous step.",
)
@click.option(
    "--push-retry-s",
    default="1,5,10",
    show_default=True,
    metavar="S,S,...",
    help="Retry a failed push after these many seconds, then give up (CAMS: 60,300,600).",
)
@click.option(
    "--duplicate-rate",
    type=click.FloatRange(0, 1),
    default=0.02,
    show_default=True,
    help="Share of the receipts pushed twice.",
)
@click.option(
    "--disorder-rate",
    type=click.FloatRange(0, 1),
    default=0.05,
    show_default=True,
    help="Share of the read messages whose Read is pushed before their Delivered.",
)
@handle_errors
def sandbox(
    port: int,
    latency_ms: float,
    jitter_ms: float,
    seed: int,
    qps_limit: int,
    faults: tuple[str, ...],
    fail_recipients: tuple[str, ...],
    windows: tuple[str, ...],
    hang_s: float,
    log_path: Path | None,
    keys: tuple[str, ...],
    callback_base: str | None,
    callback_token: str | None,
    deliver_rate: float,
    read_rate: float,
    fail_rate: float,
    reply_rate: float,
    receipt_delay_ms: str,
    push_retry_s: str,
    duplicate_rate: float,
    disorder_rate: float,
) -> None:
    """Run the CAMS simulator on 127.0.0.1 until Ctrl-C."""
    from campaigner.sim.fate import ReceiptPlan
    from campaigner.sim.faults import FaultPlan, FaultWindow, SimulatorConfig
    from campaigner.sim.push import PushTarget
    from campaigner.sim.server import run_forever

    _setup_logging(False)

    # Every bad value is a usage error (exit 2) naming its option, before anything starts.
    def pairs(values: tuple[str, ...], option: str, what: str) -> dict[str, str]:
        out = {}
        for value in values:
            key, sep, val = value.partition("=")
            if not sep or not key or not val:
                raise click.BadParameter(f"{value!r} is not {what}", param_hint=option)
            out[key] = val
        return out

    def number(text: str, option: str, spec: str, what: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0:
            raise click.BadParameter(f"{spec!r}: {what} must be a number >= 0", param_hint=option)
        return value

    rates = {
        name: number(rate, "'--fault'", f"{name}={rate}", "RATE")
        for name, rate in pairs(faults, "'--fault'", "NAME=RATE").items()
    }
    spans = []
    for spec in windows:
        parts = spec.split(":")
        if len(parts) not in (3, 4):
            raise click.BadParameter(
                f"{spec!r} is not START:SECONDS:FAULT[:RATE]", param_hint="'--window'"
            )
        start, duration = (number(v, "'--window'", spec, "START and SECONDS") for v in parts[:2])
        rate = number(parts[3], "'--window'", spec, "RATE") if len(parts) == 4 else 1.0
        spans.append(FaultWindow(start, duration, parts[2], rate))
    try:
        plan = FaultPlan(
            rates=rates,
            fail_recipients=pairs(fail_recipients, "'--fail-recipient'", "TO=CODE"),
            windows=spans,
            hang_s=hang_s,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--fault' / '--window'") from None
    delays = receipt_delay_ms.split(":")
    if len(delays) != 2:
        raise click.BadParameter(
            f"{receipt_delay_ms!r} is not MIN:MAX", param_hint="'--receipt-delay-ms'"
        )
    low, high = (number(v, "'--receipt-delay-ms'", receipt_delay_ms, "MIN and MAX") for v in delays)
    if low > high:
        raise click.BadParameter(
            f"{receipt_delay_ms!r}: MIN is above MAX", param_hint="'--receipt-delay-ms'"
        )
    receipts = ReceiptPlan(
        deliver_rate=deliver_rate,
        read_rate=read_rate,
        fail_rate=fail_rate,
        reply_rate=reply_rate,
        delay_ms=(low, high),
        duplicate_rate=duplicate_rate,
        disorder_rate=disorder_rate,
    )
    push = None
    if callback_base is not None:
        if not callback_base.startswith(("http://", "https://")):
            raise click.BadParameter(
                f"{callback_base!r} is not an http(s) URL", param_hint="'--callback-base'"
            )
        if not callback_token:
            raise click.BadParameter(
                "give --callback-token or set CAMPAIGNER_CALLBACK_TOKEN",
                param_hint="'--callback-base'",
            )
        retry_s = tuple(
            number(v, "'--push-retry-s'", push_retry_s, "each delay")
            for v in push_retry_s.split(",")
            if v.strip()
        )
        push = PushTarget(callback_base, callback_token, retry_s=retry_s)
    config = SimulatorConfig(
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        seed=seed,
        qps_limit=qps_limit,
        faults=plan,
        receipts=receipts,
    )
    if keys:
        config.credentials = pairs(keys, "'--key'", "ID=SECRET")
    if log_path is not None:
        try:  # the simulator appends to it (0600: it holds phone numbers)
            os.close(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        except OSError as exc:
            raise click.BadParameter(
                printable(f"cannot write {log_path}: {exc.strerror}"), param_hint="'--log'"
            ) from None
    try:
        run_forever(
            config,
            port,
            log_path,
            on_ready=lambda url: echo(
                f"CAMS simulator on {url} (Ctrl-C to stop)"
                + (f"; receipts to {push.shown('status')} and .../inbound/***" if push else ""),
                err=True,
            ),
            push=push,
        )
    except Exception as exc:
        leaf = meaningful_leaf(exc)
        bind_errors = (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL)
        if not isinstance(leaf, OSError) or leaf.errno not in bind_errors:
            raise
        hint = " (0 picks a free one)" if leaf.errno == errno.EADDRINUSE else ""
        raise CampaignerError(
            f"cannot listen on 127.0.0.1:{port}: {os.strerror(leaf.errno)}; "
            f"choose another --port{hint}"
        ) from None


# -- serve ------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="The workspace: run folders (the CLI's too) and the web app's drafts.",
)
@click.option(
    "--endpoint",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    callback=_check_endpoint,
    help="CAMS endpoint the runs send to; plain http:// only for a loopback simulator.",
)
@click.option("--sandbox", is_flag=True, help="Send to a built-in CAMS simulator (the demo).")
@handle_errors
def serve(host: str, port: int, out: Path, endpoint: str, sandbox: bool) -> None:
    """The web app: upload, preview, test, send, watch and download, in a browser."""
    from campaigner.web.serve import serve as run_web

    if sandbox and endpoint != DEFAULT_ENDPOINT:
        raise click.UsageError("--sandbox sends to its own simulator: no --endpoint with it")
    _setup_logging(False)
    run_web(
        host=host,
        port=port,
        out=out,
        endpoint=endpoint,
        sandbox=sandbox,
        say=echo,
        warn=lambda m: echo(m, err=True),
    )


# -- report and reconcile ---------------------------------------------------------------

run_dir_arg = click.argument(
    "run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path)
)


@cli.command()
@run_dir_arg
@format_opt
@handle_errors
def report(run_dir: Path, report_format: str) -> None:
    """Rebuild a run's report from its input and journal (also while it runs)."""
    from campaigner import api

    _setup_logging(False)
    result = api.report(api.ReportOptions(run_dir, _want_xlsx(report_format)))
    echo(f"Report of {run_dir}")
    print_tally(result.tally, head=Status.SENT)
    if result.tally.delivery is not None:
        print_funnel(result.tally.delivery.as_dict())
    echo("Report: " + ", ".join(str(p) for p in result.paths))
    sys.exit(EXIT_OK if result.all_sent else EXIT_INCOMPLETE)


@cli.command()
@run_dir_arg
@click.option(
    "--endpoint",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    callback=_check_endpoint,
    help="CAMS endpoint; plain http:// only for a loopback simulator.",
)
@click.option(
    "--grace-s",
    type=click.FloatRange(0),
    default=RECONCILE_GRACE_S,
    show_default=True,
    help="Only call a message unsent once this long has passed since its request.",
)
@rate_budget_opt
@handle_errors
def reconcile(run_dir: Path, endpoint: str, grace_s: float, rate_budget: str | None) -> None:
    """Settle 'unknown' rows by looking them up with ListChatappMessage."""
    from campaigner import api

    _setup_logging(False)
    options = api.ReconcileOptions(run_dir, endpoint, grace_s, rate_budget=rate_budget)
    result = api.reconcile(options, say=_say)
    if result.interrupted:
        echo(f"{result.interrupted} rows were in flight when the run stopped: looked up")
    echo(
        f"Reconciled {run_dir}: {result.found_sent} found sent, {result.not_sent} confirmed "
        f"not sent (a --resume sends them), {result.still_unknown} still unknown, "
        f"{result.lookup_errors} lookups failed"
    )
    print_tally(result.tally, head=Status.SENT)
    sys.exit(EXIT_OK if result.settled else EXIT_INCOMPLETE)


@cli.command()
@run_dir_arg
@click.option(
    "--endpoint",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    callback=_check_endpoint,
    help="CAMS endpoint; plain http:// only for a loopback simulator.",
)
@click.option(
    "--qps",
    type=click.IntRange(1, LIST_QPS),
    default=LIST_QPS,
    show_default=True,
    help="Lookups per second (their own budget, apart from sends).",
)
@rate_budget_opt
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@handle_errors
def status(run_dir: Path, endpoint: str, qps: int, rate_budget: str | None, as_json: bool) -> None:
    """Ask ListChatappMessage how far the sent rows without a final receipt got, store
    the answers as receipts, and rebuild the report."""
    from campaigner import api

    _setup_logging(False)
    options = api.StatusOptions(run_dir, endpoint, qps, rate_budget=rate_budget)
    result = api.status(options, say=_say)
    code = EXIT_OK if result.complete else EXIT_INCOMPLETE
    if as_json:
        answer = {
            name: getattr(result, name)
            for name in ("channel", "unsettled", "cannot_look_up", "requests", "found")
            + ("not_listed", "failed_windows", "unreadable", "stored")
        }
        delivery = result.tally.delivery.as_dict() if result.tally.delivery else None
        click.echo(json.dumps({"run_dir": str(run_dir), **answer, "delivery": delivery}))
        sys.exit(code)
    if not result.unsettled:
        echo("Every sent row has a final receipt (Read or Failed): nothing to look up")
    elif result.cannot_look_up:
        echo(
            f"{result.cannot_look_up:,} sent rows have no final receipt, but {result.channel} "
            "messages cannot be looked up (ListChatappMessage lists WhatsApp and Viber only): "
            "only pushed receipts can tell"
        )
    else:
        found = ", ".join(f"{state} {n:,}" for state, n in sorted(result.found.items()))
        echo(
            f"Looked up {result.unsettled:,} sent rows without a final receipt in "
            f"{result.requests:,} request{'' if result.requests == 1 else 's'}: "
            f"{found or 'none listed'}"
            + (f"; not listed {result.not_listed:,}" if result.not_listed else "")
            + (f"; unreadable status {result.unreadable:,}" if result.unreadable else "")
            + (f"; {result.failed_windows:,} windows failed" if result.failed_windows else "")
        )
    print_tally(result.tally, head=Status.SENT)
    if result.tally.delivery is not None:
        print_funnel(result.tally.delivery.as_dict())
    echo("Report: " + ", ".join(str(p) for p in result.paths))
    sys.exit(code)


workspace_opt = click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("reports"),
    show_default=True,
    help="The workspace (send's --out folder): its receipts.sqlite holds receipts and opt-outs.",
)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; for any other than loopback put TLS (a reverse proxy) in front.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_RECEIVE_PORT,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@workspace_opt
@click.option(
    "--queue",
    is_flag=True,
    help="Consume the account's SMQ queues (ChatAppStatus, ChatAppInbound) instead of HTTP.",
)
@click.option("--account-uid", metavar="UID", help="With --queue: the Alibaba Cloud account ID.")
@click.option(
    "--queue-endpoint",
    metavar="URL",
    help="With --queue: the MNS endpoint (default: Alibaba's for the Alicom queues).",
)
@click.option(
    "--token-endpoint",
    metavar="URL",
    help="With --queue: the dybaseapi endpoint that issues queue credentials.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@handle_errors
def receive(
    host: str,
    port: int,
    out: Path,
    queue: bool,
    account_uid: str | None,
    queue_endpoint: str | None,
    token_endpoint: str | None,
    verbose: bool,
) -> None:
    """Receive CAMS delivery receipts and inbound messages (HTTP callbacks) until stopped.

    The URLs end with $CAMPAIGNER_CALLBACK_TOKEN (at least 16 characters). With --queue
    they come from the SMQ queues instead (ALIBABA_CLOUD_* credentials)."""
    from campaigner.receipts.serve import Listening, run_receiver

    _setup_logging(verbose)
    if queue:
        _receive_queues(out, account_uid, queue_endpoint, token_endpoint)
        return

    def ready(where: Listening) -> None:
        echo(
            f"Receiving on {where.status_url} and {where.inbound_url} "
            f"(<token> = $CAMPAIGNER_CALLBACK_TOKEN); storing in {where.store}"
        )
        if not where.loopback:
            _say(
                f"warning: plain HTTP on {host}: put TLS in front (a reverse proxy), "
                "the token travels in the URL"
            )

    token = os.environ.get("CAMPAIGNER_CALLBACK_TOKEN")
    try:
        run_receiver(out, token, host=host, port=port, on_ready=ready)
    except KeyboardInterrupt:
        echo("Stopped; every receipt answered 200 is stored")


def _receive_queues(
    out: Path, account_uid: str | None, queue_endpoint: str | None, token_endpoint: str | None
) -> None:
    import threading

    from campaigner.receipts import queues
    from campaigner.signing import Credentials

    if not account_uid:
        raise click.UsageError("--queue needs --account-uid (the queues are named after it)")
    credentials = Credentials.from_env(os.environ)
    status_queue, inbound_queue = queues.queue_names(account_uid)
    settings = queues.QueueSettings(
        credentials.access_key_id,
        credentials.access_key_secret,
        status_queue,
        inbound_queue,
        mns_endpoint=queue_endpoint or queues.DEFAULT_MNS_ENDPOINT,
        token_endpoint=token_endpoint or queues.DEFAULT_TOKEN_ENDPOINT,
    )
    echo(
        f"Consuming {status_queue} and {inbound_queue} at {settings.mns_endpoint}; "
        f"storing in {out / 'receipts.sqlite'}"
    )
    try:
        queues.consume_queues(out, settings, threading.Event())
    except KeyboardInterrupt:
        echo("Stopped; every message deleted from a queue is stored")


@cli.group()
def suppress() -> None:
    """The workspace's suppression list: numbers that opted out are sent nothing."""


sender_opt = click.option(
    "--sender",
    metavar="NUMBER",
    help="The business number it applies to (default: every sender number).",
)
numbers_arg = click.argument("numbers", nargs=-1, required=True)


@suppress.command("add")
@numbers_arg
@workspace_opt
@sender_opt
@click.option("--reason", default="added by hand", show_default=True, help="Why, for the report.")
@handle_errors
def suppress_add(numbers: tuple[str, ...], out: Path, sender: str | None, reason: str) -> None:
    """Suppress NUMBERS (international format: +86 138 0000 0001)."""
    from campaigner import optouts

    count = optouts.add(out, numbers, sender, reason)
    echo(f"Suppressed {count} number(s) for {sender or 'every sender number'}")


@suppress.command("remove")
@numbers_arg
@workspace_opt
@sender_opt
@handle_errors
def suppress_remove(numbers: tuple[str, ...], out: Path, sender: str | None) -> None:
    """Lift the suppression of NUMBERS (without --sender: for every sender number)."""
    from campaigner import optouts

    count = optouts.remove(out, numbers, sender)
    echo(f"Lifted {count} number(s) for {sender or 'every sender number'}")


@suppress.command("list")
@workspace_opt
@sender_opt
@handle_errors
def suppress_list(out: Path, sender: str | None) -> None:
    """Show the suppressions in force: number, sender number (* = every), since, source, why."""
    from campaigner import optouts

    found = optouts.listing(out, sender)
    for entry in found:
        echo(
            f"{entry.recipient:<16} {entry.business:<16} {optouts.since_text(entry.since_ms)}  "
            f"{entry.source:<8} {entry.reason}"
        )
    _say(f"{len(found)} suppressed")


@suppress.command("import")
@click.argument("file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@workspace_opt
@sender_opt
@click.option("--reason", help="Why, for the report (default: imported from FILE).")
@handle_errors
def suppress_import(file: Path, out: Path, sender: str | None, reason: str | None) -> None:
    """Suppress every number of a CSV FILE (column recipient/phone/number/to, else the first)."""
    from campaigner import optouts

    result = optouts.import_file(out, file, sender, reason)
    for line, why in result.examples:
        _say(f"line {line} skipped: {why}")
    echo(f"Suppressed {result.added} number(s) from {file}; {result.skipped} line(s) skipped")


@suppress.command("export")
@workspace_opt
@sender_opt
@handle_errors
def suppress_export(out: Path, sender: str | None) -> None:
    """Write the suppressions in force as CSV to stdout (import reads it back)."""
    from campaigner import optouts

    count = optouts.export_csv(out, sender, sys.stdout)
    _say(f"{count} suppressed")


# -- operator controls: test send, runs, cancel, retry ----------------------------------------


def _test_send(options: SendOptions, numbers: list[str], *, as_json: bool) -> NoReturn:
    from campaigner import api

    answers = api.test_send(options, numbers, say=_say)
    if as_json:
        click.echo(json.dumps({"test_send": [dataclasses.asdict(a) for a in answers]}))
    else:
        print_test_send(answers)
    sys.exit(EXIT_OK if all(a.sent for a in answers) else EXIT_INCOMPLETE)


@cli.command()
@out_opt
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON lines.")
@handle_errors
def runs(out: Path, as_json: bool) -> None:
    """List the runs in --out with their state and rows."""
    from campaigner import api

    found = api.list_runs(out)
    if not as_json:
        print_runs(found)
        return
    for run in found:
        click.echo(json.dumps(dataclasses.asdict(run), default=str))


@cli.command()
@run_dir_arg
@handle_errors
def cancel(run_dir: Path) -> None:
    """Cancel a scheduled run (send --at) before it sends anything."""
    from campaigner import api

    info = api.cancel_run(run_dir)
    echo(f"cancelled {info.run_dir}: nothing was sent; its report lists every row not_attempted")


@cli.command()
@run_dir_arg
@click.option(
    "--codes",
    metavar="CODE[,CODE...]",
    help="Retry rows that failed with these codes (exact, or Prefix.*) instead of the "
    "retriable ones (throttling and system errors).",
)
@click.option(
    "--endpoint",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    callback=_check_endpoint,
    help="CAMS endpoint; plain http:// only for a loopback simulator.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the new run (default: the folder of RUN_DIR).",
)
@click.option("--qps", type=click.IntRange(1, MAX_QPS), help=f"Requests per second (≤ {MAX_QPS}).")
@click.option("--yes", "-y", is_flag=True, help="Retry without asking.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@handle_errors
def retry(
    run_dir: Path,
    codes: str | None,
    endpoint: str,
    out: Path | None,
    qps: int | None,
    yes: bool,
    as_json: bool,
) -> None:
    """A new run that sends again the rows of RUN_DIR that failed with a retriable code."""
    from campaigner import api

    _setup_logging(False)
    progress = ProgressDisplay(live=sys.stderr.isatty() and not as_json)
    try:
        result = api.retry(
            run_dir,
            codes.split(",") if codes is not None else None,
            progress,
            endpoint=endpoint,
            out=out,
            qps=qps,
            yes=yes,
            confirm=_confirm,
            say=_say,
        )
    finally:
        progress.close()
    Stage.after_stop = f"the run had finished: {result.run_dir / 'report.csv'}"
    if as_json:
        click.echo(json.dumps({"run_dir": str(result.run_dir), **result.summary}))
    else:
        echo(f"Retry of {run_dir}:")
        print_send(result)
    sys.exit(EXIT_OK if result.all_sent else EXIT_INCOMPLETE)


def main(args: list[str] | None = None) -> None:
    """Run the CLI. Usage errors exit 2 with click's message; with ``--json`` stdout also
    gets the one JSON object every other outcome prints."""
    argv = sys.argv[1:] if args is None else args
    try:
        code = cli.main(args=argv, prog_name="campaigner", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        if "--json" in argv:
            click.echo(json.dumps({"error": exc.format_message(), "exit_code": exc.exit_code}))
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:  # Ctrl-C while click itself was reading arguments
        fail(*explain(exc)[:2], as_json="--json" in argv)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
