"""The dry run: everything a send does except the send."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from campaigner.channels import PHONE_CHANNELS
from campaigner.columns import STATUS, TO
from campaigner.config import Campaign
from campaigner.inputs import InputTable
from campaigner.phones import AMBIGUITY_CHOICES, Ambiguity
from campaigner.report import ReportLayout, ReportWriter, Tally, write_json_atomic
from campaigner.rows import (
    AMBIGUOUS_READINGS,
    Deduper,
    Plan,
    mask_recipient,
    open_campaign_input,
    resolve_input,
)
from campaigner.runs import new_run_dir
from campaigner.screening import Screen, WorkspaceScreen
from campaigner.statuses import HELD, Status
from campaigner.windows import SendPlan, Timing

__all__ = (
    "AmbiguousTally",
    "PreviewResult",
    "run_preview",
)

_EXAMPLES = 5  # the web app's preview shows five; the CLI prints the first three


@dataclass
class AmbiguousTally:
    """What each ``[send] ambiguous`` choice would send.

    A choice sends one row per distinct recipient among the valid rows, so its count is the
    size of a union: the recipients of the valid rows that are not ambiguous, plus that
    choice's reading of each ambiguous row that is valid otherwise. Recipients are kept as
    64-bit hashes (8 bytes a row); nothing is kept when no number can be ambiguous.
    """

    chosen: Ambiguity
    region: str | None  # the default_region; without one no number is ambiguous
    rows: int = 0
    _fixed: list[pl.Series] = field(default_factory=list)
    _readings: dict[str, list[pl.Series]] = field(default_factory=dict)

    @classmethod
    def for_plan(cls, plan: Plan) -> AmbiguousTally:
        send = plan.campaign.send
        return cls(send.ambiguous, send.default_region if plan.channel in PHONE_CHANNELS else None)

    def add(self, prepared: pl.DataFrame) -> None:
        if self.region is None:
            return
        ambiguous = prepared[AMBIGUOUS_READINGS["region"]].is_not_null()
        count = int(ambiguous.sum())
        self.rows += count
        sent = prepared[STATUS].is_in([Status.WOULD_SEND.value, Status.DUPLICATE.value])
        self._fixed.append(prepared.filter(sent & ~ambiguous)[TO].hash(seed=0).unique())
        if count:
            for choice, column in AMBIGUOUS_READINGS.items():
                hashes = prepared.filter(ambiguous)[column].hash(seed=0)
                self._readings.setdefault(choice, []).append(hashes)

    def would_send(self, actual: int) -> dict[str, int]:
        """Rows each choice would send; ``actual`` is what the campaign's own choice sends."""
        if self.region is None:
            return dict.fromkeys(AMBIGUITY_CHOICES, actual)
        fixed = pl.concat(self._fixed).unique() if self._fixed else pl.Series([], dtype=pl.UInt64)
        counts = {"reject": fixed.len()}
        for choice in AMBIGUOUS_READINGS:
            counts[choice] = pl.concat([fixed, *self._readings.get(choice, [])]).n_unique()
        return counts


@dataclass(frozen=True)
class PreviewResult:
    run_dir: Path
    input_path: Path
    tally: Tally
    qps: int
    seconds: float
    examples: list[dict[str, str]] = field(default_factory=list)
    ambiguous: AmbiguousTally | None = None
    plan: dict[str, Any] | None = None  # under a send window: rows per hour, by zone

    @property
    def would_send(self) -> int:
        return self.tally.count(Status.WOULD_SEND)

    def ambiguous_summary(self) -> dict[str, Any]:
        """Rows with a phone number valid both ways, and what each choice would send."""
        tally = self.ambiguous
        return {
            "rows": tally.rows if tally else 0,
            "choice": tally.chosen if tally else "reject",
            "would_send": tally.would_send(self.would_send)
            if tally
            else dict.fromkeys(AMBIGUITY_CHOICES, self.would_send),
        }

    @property
    def held(self) -> int:
        """Rows the workspace holds back (suppressed, already sent): not an error."""
        return sum(self.tally.count(s) for s in HELD)

    @property
    def estimated_send_seconds(self) -> float:
        return self.would_send / self.qps

    def summary(self) -> dict[str, Any]:
        return {
            "mode": "preview",
            "input": str(self.input_path),
            **self.tally.as_dict(),
            "would_send": self.would_send,
            "ambiguous": self.ambiguous_summary(),
            "qps": self.qps,
            "estimated_send_seconds": round(self.estimated_send_seconds, 1),
            "duration_seconds": round(self.seconds, 3),
            "rows_per_second": round(self.tally.rows / self.seconds) if self.seconds else None,
            **({"plan": self.plan} if self.plan is not None else {}),
        }


def masked_query(plan: Plan, row: dict[str, Any]) -> dict[str, str]:
    query = plan.query(row)
    query["To"] = mask_recipient(query["To"])
    return query


def run_preview(
    campaign: Campaign,
    *,
    input_path: Path | None,
    out: Path,
    xlsx: bool | None = None,
    batch_rows: int = 100_000,
    only_new: bool = False,
) -> PreviewResult:
    """Read, validate and render every row; write the preview report. Recipients on the
    workspace's (``out``'s) suppression list are ``suppressed``; with ``only_new``, calls
    its ledger says an earlier run sent (to any destination) are ``already_sent``."""
    started = time.perf_counter()
    plan = Plan(campaign)
    path = resolve_input(campaign, input_path)
    table = open_campaign_input(campaign, path, plan)
    screen = WorkspaceScreen(plan, out, only_new=only_new, destination=None).check()
    send = campaign.send
    timing = Timing.of(send.window, send.deadline, send.timezone_column, table.columns)
    send_plan = None if timing is None else SendPlan(timing, send.qps)
    layout = ReportLayout.for_input(table.columns)
    run_dir = new_run_dir(out, campaign.name)
    tally = Tally()
    ambiguous = AmbiguousTally.for_plan(plan)
    examples: list[dict[str, str]] = []
    want_xlsx = table.kind == "xlsx" if xlsx is None else xlsx
    try:
        _write_preview(
            plan,
            table,
            layout,
            run_dir,
            want_xlsx,
            batch_rows,
            tally,
            examples,
            ambiguous,
            screen,
            timing,
            send_plan,
        )
    except BaseException:
        if not any(run_dir.iterdir()):
            run_dir.rmdir()  # no half-made run folders
        raise
    result = PreviewResult(
        run_dir=run_dir,
        input_path=path,
        tally=tally,
        qps=campaign.send.qps,
        seconds=time.perf_counter() - started,
        examples=examples,
        ambiguous=ambiguous,
        plan=None if send_plan is None else send_plan.hours(datetime.now(UTC)),
    )
    write_json_atomic(run_dir / "summary.json", {"name": campaign.name, **result.summary()})
    return result


def _write_preview(
    plan: Plan,
    table: InputTable,
    layout: ReportLayout,
    run_dir: Path,
    want_xlsx: bool,
    batch_rows: int,
    tally: Tally,
    examples: list[dict[str, str]],
    ambiguous: AmbiguousTally,
    screen: Screen,
    timing: Timing | None = None,
    send_plan: SendPlan | None = None,
) -> None:
    deduper = Deduper()
    error = layout.result_names["error"]  # also notes the XLSX cells cut to Excel's limit
    with ReportWriter(run_dir, layout.columns, xlsx=want_xlsx, note_column=error) as writer:
        for batch in table.batches(batch_rows):
            prepared = screen.apply(plan.prepare(batch, deduper))
            if timing is not None:
                prepared = timing.check(prepared)
            if send_plan is not None:
                send_plan.add(prepared)
            ambiguous.add(prepared)
            if len(examples) < _EXAMPLES:
                sendable = prepared.filter(pl.col(STATUS) == Status.WOULD_SEND.value)
                for row in sendable.head(_EXAMPLES - len(examples)).iter_rows(named=True):
                    if row[TO] is not None:
                        examples.append(masked_query(plan, row))
            report = layout.frame(prepared)
            tally.add(report, layout.result_names)
            writer.write(report)
