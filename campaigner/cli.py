"""The command line: parses options, calls the library, prints, maps errors to exit codes.

Exit codes: 0 every row sent (or would be); 3 finished but some rows were not;
1 the run could not happen or was aborted; 2 usage error; 130 stopped by a signal.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import signal
import sys
from pathlib import Path

import click

from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.display import (
    ProgressDisplay,
    echo,
    print_preview,
    print_send,
    print_tally,
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
from campaigner.limits import MAX_QPS, RECONCILE_GRACE_S
from campaigner.runs import private_umask
from campaigner.statuses import Status
from campaigner.terminal import printable

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


def _want_xlsx(report_format: str) -> bool | None:
    return None if report_format == "auto" else report_format == "xlsx"


@cli.command()
@campaign_arg
@input_opt
@out_opt
@format_opt
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@handle_errors
def preview(
    campaign_file: Path, input_path: Path | None, out: Path, report_format: str, as_json: bool
) -> None:
    """Validate and render every row and write the preview report; send nothing."""
    from campaigner import api

    _setup_logging(False)
    options = api.PreviewOptions(campaign_file, input_path, out, _want_xlsx(report_format))
    result = api.preview(options, say=_say)
    if as_json:
        click.echo(json.dumps({"run_dir": str(result.run_dir), **result.summary()}))
    else:
        print_preview(result)
    sys.exit(EXIT_OK if result.would_send == result.tally.rows else EXIT_INCOMPLETE)


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
    as_json: bool,
    verbose: bool,
) -> None:
    """Validate every row, then send the valid ones and write the report."""
    if resend_unknown and resume is None:
        raise click.UsageError("--resend-unknown works only with --resume RUN_DIR")
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
    )
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
    help="Share of the read messages that get a reply (30%% of them opt-outs).",
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
            on_ready=lambda url: echo(f"CAMS simulator on {url} (Ctrl-C to stop)", err=True),
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
@handle_errors
def reconcile(run_dir: Path, endpoint: str, grace_s: float) -> None:
    """Settle 'unknown' rows by looking them up with ListChatappMessage."""
    from campaigner import api

    _setup_logging(False)
    options = api.ReconcileOptions(run_dir, endpoint, grace_s)
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
