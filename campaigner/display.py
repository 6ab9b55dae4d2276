"""What the CLI prints: run summaries, status tallies and the live progress bar. Every
line goes through ``printable``: cells, names and CAMS messages are untrusted."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from campaigner.statuses import Status
from campaigner.terminal import printable

if TYPE_CHECKING:
    from campaigner.options import SendProgress, SendResult, TestSendAnswer
    from campaigner.preview import PreviewResult
    from campaigner.report import Tally
    from campaigner.runstate import RunInfo

__all__ = (
    "ProgressDisplay",
    "duration",
    "echo",
    "print_funnel",
    "print_preview",
    "print_runs",
    "print_send",
    "print_tally",
    "print_test_send",
    "report_line",
)


def echo(text: str, *, err: bool = False) -> None:
    """Print a line that may carry untrusted text: cells, column and file names, CAMS
    messages. Control, escape and bidi characters are shown escaped, never interpreted."""
    click.echo(printable(text), err=err)


def _number(value: int) -> str:
    return f"{value:,}"


def report_line(run_dir: Path) -> str:
    from campaigner.report import report_paths

    return "Report: " + ", ".join(str(p) for p in report_paths(run_dir))


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _label(status: Status) -> str:
    return status.value.replace("_", " ")


def print_tally(tally: Tally, *, head: Status) -> None:
    """Rows read, the ``head`` status first, then every other status that occurred."""
    echo(f"  {'rows read':<14}{_number(tally.rows):>12}")
    echo(f"  {_label(head):<14}{_number(tally.count(head)):>12}")
    for status in Status:
        count = tally.count(status)
        if status is head or not count:
            continue
        echo(f"  {_label(status):<14}{_number(count):>12}")
        if status in (Status.INVALID, Status.FAILED):
            reasons = [r for r in tally.as_dict()["invalid_reasons"] if r["status"] == status]
            for entry in reasons[:10]:
                rows = ", ".join(str(r) for r in entry["first_rows"])
                more = ", …" if entry["count"] > len(entry["first_rows"]) else ""
                echo(f"      {entry['count']:>6} × {entry['reason']} (rows {rows}{more})")


def print_preview(result: PreviewResult) -> None:
    echo(f"Preview of {result.input_path}")
    print_tally(result.tally, head=Status.WOULD_SEND)
    ambiguous = result.ambiguous_summary()
    if ambiguous["rows"]:
        region = result.ambiguous.region if result.ambiguous else None
        choices = ", ".join(
            f'"{c}"{" (this campaign)" if c == ambiguous["choice"] else ""} {n:,}'
            for c, n in ambiguous["would_send"].items()
        )
        echo(
            f"  {ambiguous['rows']:,} ambiguous numbers (valid as {region} numbers and with a "
            f"country code): rows sent with [send] ambiguous = {choices}"
        )
    echo(f"  estimated send time at {result.qps}/s: {duration(result.estimated_send_seconds)}")
    if result.plan is not None:
        _print_plan(result.plan)
    if result.examples:
        echo("First rendered calls (recipient masked):")
        for query in result.examples[:3]:
            echo("  " + json.dumps(query, ensure_ascii=False))
    echo(report_line(result.run_dir))
    rate = result.tally.rows / max(result.seconds, 1e-9)
    echo(f"Done in {result.seconds:.2f} s ({rate:,.0f} rows/s)")


def _print_plan(plan: dict[str, Any]) -> None:
    """A send window's plan: rows per hour by zone, the finish, what misses the deadline."""
    deadline = f", deadline {plan['deadline']}" if plan["deadline"] else ""
    echo(f"Plan (window {plan['window']} local time{deadline}):")
    for hour in plan["hours"][:24]:
        zones = ", ".join(f"{z} {n:,}" for z, n in hour["by_zone"].items())
        echo(f"  {hour['hour']}  {hour['rows']:>9,}  ({zones})")
    if len(plan["hours"]) > 24:
        echo(f"  … {len(plan['hours']) - 24} more hours (summary.json has them)")
    if plan["finish"]:
        echo(f"  last row sent about {plan['finish']}")
    if plan["not_before_deadline"]:
        echo(f"  {plan['not_before_deadline']:,} rows cannot be sent in their window in time")


class ProgressDisplay:
    """A live bar on a terminal; a log line every few seconds otherwise (cron)."""

    def __init__(self, live: bool) -> None:
        self._live = live
        self._bar: Any = None
        self._task: Any = None
        self._last_log = 0.0
        self._t0: float | None = None
        self._log = logging.getLogger("campaigner.progress")

    def __call__(self, stats: SendProgress) -> None:
        total = stats.total
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        elapsed = now - self._t0
        rate = stats.done / elapsed if elapsed > 0 else 0.0
        remaining = max(total - stats.done, 0)
        eta = duration(remaining / rate) if rate > 0 else "?"
        text = (
            f"sent {stats.sent:,} · failed {stats.failed:,} · unknown {stats.unknown:,} · "
            f"remaining {remaining:,} · {rate:,.0f} msg/s · ETA {eta}"
        )
        outage = stats.outage
        if outage:  # otherwise an unreachable endpoint looks like a silent hang
            text = printable(f"{text} · {outage}")  # names a host and an OS error
        if self._live:
            if self._bar is None:
                from rich.console import Console
                from rich.progress import BarColumn, Progress, TextColumn

                self._bar = Progress(
                    TextColumn("[bold]sending"),
                    BarColumn(),
                    TextColumn("{task.description}", markup=False),  # "[...]" is text
                    console=Console(stderr=True),  # stdout stays for the summary
                    transient=False,
                )
                self._bar.start()
                self._task = self._bar.add_task(text, total=max(total, 1))
            self._bar.update(self._task, completed=stats.done, description=text)
        elif now - self._last_log >= 5.0:
            self._last_log = now
            self._log.info(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def print_send(result: SendResult) -> None:
    summary = result.summary
    echo(f"Sent campaign {summary['name']} to {summary['endpoint']}")
    print_tally(result.tally, head=Status.SENT)
    rate = summary.get("achieved_rate")
    echo(
        f"  requests {summary['requests']:,} (retries {summary['retries']:,}, "
        f"throttled {summary['throttled']:,})" + (f" · {rate:,.1f} msg/s" if rate else "")
    )
    if summary.get("by_code"):
        codes = ", ".join(f"{k} {v:,}" for k, v in summary["by_code"].items())
        echo(f"  answers by code: {codes}")
    print_funnel(summary.get("delivery"), "Delivery so far")
    echo(report_line(result.run_dir))
    echo(f"Done in {duration(result.seconds)}")


def print_funnel(delivery: Mapping[str, Any] | None, heading: str = "Delivery") -> None:
    """The delivery funnel of summary.json (docs/delivery.md); nothing without one."""
    if not delivery or not delivery.get("sent"):
        return
    echo(
        f"{heading}: sent {delivery['sent']:,} → delivered {delivery['delivered']:,} → "
        f"read {delivery['read']:,} → replied {delivery['replied']:,}"
    )
    if delivery["failed"]:
        codes = ", ".join(f"{c} × {n:,}" for c, n in delivery["failed_by_code"].items())
        echo(f"  failed {delivery['failed']:,}: {codes}")
    if delivery["pending"]:
        echo(
            f"  not delivered yet {delivery['pending']:,} "
            f"(no receipt at all {delivery['no_receipt'] + delivery['cannot_look_up']:,})"
        )
    if delivery["cannot_look_up"]:
        echo(
            f"  {delivery['cannot_look_up']:,} rows without a receipt cannot be looked up: "
            "ListChatappMessage lists WhatsApp and Viber messages only"
        )


def print_runs(runs: list[RunInfo]) -> None:
    """``campaigner runs``: one line per run, oldest first."""
    if not runs:
        echo("No runs.")
        return
    header = ("STATE", "CREATED", "SCHEDULED FOR", "ROWS", "RUN")
    lines = [header]
    for run in runs:
        rows = ", ".join(f"{state} {n:,}" for state, n in sorted(run.counts.items())) or "-"
        link = f" (retry of {run.retry_of.name})" if run.retry_of else ""
        link += f" (retried in {run.retried_in.name})" if run.retried_in else ""
        lines.append(
            (
                run.state.value,
                _local(run.created_at),
                _local(run.scheduled_for),
                rows,
                f"{run.run_dir}{link}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        echo("  ".join([*cells, line[-1]]))


def _local(when: datetime | None) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M %z") if when is not None else "-"


def print_test_send(answers: list[TestSendAnswer]) -> None:
    """``send --test-to``: CAMS's answer for each test number."""
    if answers:
        echo(f"Test send of row {answers[0].row}'s message to {len(answers)} number(s):")
    for a in answers:
        outcome = "sent" if a.sent else "NOT sent"
        echo(
            f"  {a.to}: {outcome} · Code {a.code or '-'} · Message {a.message or '-'} · "
            f"MessageId {a.message_id or '-'}"
        )
