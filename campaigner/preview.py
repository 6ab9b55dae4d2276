"""The dry run: everything a send does except the send."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from campaigner.columns import STATUS, TO
from campaigner.config import Campaign
from campaigner.errors import ConfigError
from campaigner.outcomes import Status
from campaigner.readers import InputTable, open_input
from campaigner.report import ReportWriter, write_json_atomic
from campaigner.rows import Deduper, Plan, mask_recipient
from campaigner.runs import ReportLayout, Tally, new_run_dir

__all__ = ("PreviewResult", "open_campaign_input", "resolve_input", "run_preview")

_EXAMPLES = 3


@dataclass
class PreviewResult:
    run_dir: Path
    input_path: Path
    tally: Tally
    qps: int
    seconds: float
    examples: list[dict[str, str]] = field(default_factory=list)

    @property
    def would_send(self) -> int:
        return self.tally.count(Status.WOULD_SEND)

    @property
    def estimated_send_seconds(self) -> float:
        return self.would_send / self.qps

    def summary(self) -> dict[str, Any]:
        return {
            "mode": "preview",
            "input": str(self.input_path),
            **self.tally.as_dict(),
            "would_send": self.would_send,
            "qps": self.qps,
            "estimated_send_seconds": round(self.estimated_send_seconds, 1),
            "duration_seconds": round(self.seconds, 3),
            "rows_per_second": round(self.tally.rows / self.seconds) if self.seconds else None,
        }


def resolve_input(campaign: Campaign, input_path: Path | None) -> Path:
    path = input_path or campaign.input
    if path is None:
        raise ConfigError("no recipient list: set input in the campaign file or pass --input FILE")
    return path


def open_campaign_input(campaign: Campaign, path: Path, plan: Plan) -> InputTable:
    """Open the input and check it fits the campaign: all file-level errors surface here."""
    table = open_input(path, sheet=campaign.sheet, encoding=campaign.encoding)
    plan.check_columns(table.columns)
    return table


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
) -> PreviewResult:
    """Read, validate and render every row; write the preview report."""
    started = time.perf_counter()
    plan = Plan(campaign)
    path = resolve_input(campaign, input_path)
    table = open_campaign_input(campaign, path, plan)
    layout = ReportLayout.for_input(table.columns)
    run_dir = new_run_dir(out, campaign.name)
    tally = Tally()
    examples: list[dict[str, str]] = []
    want_xlsx = table.kind == "xlsx" if xlsx is None else xlsx
    try:
        _write_preview(plan, table, layout, run_dir, want_xlsx, batch_rows, tally, examples)
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
) -> None:
    deduper = Deduper()
    error = layout.result_names["error"]  # also notes the XLSX cells cut to Excel's limit
    with ReportWriter(run_dir, layout.columns, xlsx=want_xlsx, note_column=error) as writer:
        for batch in table.batches(batch_rows):
            prepared = plan.prepare(batch, deduper)
            if len(examples) < _EXAMPLES:
                sendable = prepared.filter(pl.col(STATUS) == Status.WOULD_SEND.value)
                for row in sendable.head(_EXAMPLES - len(examples)).iter_rows(named=True):
                    if row[TO] is not None:
                        examples.append(masked_query(plan, row))
            report = layout.frame(prepared)
            tally.add(report, layout.result_names)
            writer.write(report)
