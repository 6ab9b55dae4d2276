"""The report rebuilt from the input and the journal: each prepared batch joined with the
journal's outcomes, so the report is complete and right after any crash."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, internal
from campaigner.crashpoints import crash_point
from campaigner.inputs import InputTable
from campaigner.journal import Journal
from campaigner.report.atomic import report_writing
from campaigner.report.layout import ReportLayout
from campaigner.report.tally import Tally
from campaigner.report.writer import ReportWriter
from campaigner.rows import Deduper, Plan
from campaigner.statuses import JournalState, Status

__all__ = ("rebuild_report", "report_batch")

# The journal's own state and error while joined to a batch (internal: no input collides).
_STATE = internal("journal:state")
_JERROR = internal("journal:error")
# Journal states a row is reported in as they are.
_SETTLED = (JournalState.SENT, JournalState.FAILED, JournalState.UNKNOWN)
# States of a row whose request may have left: their outcome wins over a new check.
_ATTEMPTED = [s.value for s in (*_SETTLED, JournalState.INTENT)]


def _journal_frame(journal: Journal, lo: int, hi: int) -> pl.DataFrame:
    return pl.DataFrame(
        journal.rows_between(lo, hi),
        schema={
            ROW: pl.Int64,
            _STATE: pl.String,
            "attempts": pl.Int64,
            "MessageId": pl.String,
            "Code": pl.String,
            "Message": pl.String,
            "RequestId": pl.String,
            _JERROR: pl.String,
        },
        orient="row",
    )


def report_batch(layout: ReportLayout, prepared: pl.DataFrame, journal: Journal) -> pl.DataFrame:
    """One batch of the report: preparation ⋈ journal.

    A row the journal says was attempted (sent, failed, unknown, in flight) is reported as
    the journal says, even if checking it again now calls it invalid or duplicate (a
    template near the time limit, say): what happened to the row is the journal's to say.
    """
    lo, hi = prepared[ROW].min(), prepared[ROW].max()
    jf = _journal_frame(journal, int(lo or 0), int(hi or 0))  # type: ignore[arg-type]
    state = pl.col(_STATE)
    sendable = pl.col(STATUS) == Status.WOULD_SEND.value
    status = (
        pl.when(state.is_in([s.value for s in _SETTLED]))
        .then(state)
        .when(state == JournalState.INTENT.value)
        .then(pl.lit(Status.UNKNOWN.value))
        .when(~sendable)
        .then(pl.col(STATUS))
        .otherwise(pl.lit(Status.NOT_ATTEMPTED.value))
    )
    joined = prepared.select(ROW, STATUS).join(jf, on=ROW, how="left", maintain_order="left")
    outcomes = joined.select(
        ROW,
        status.alias("status"),
        "MessageId",
        "Code",
        "Message",
        "RequestId",
        "attempts",
        pl.when(state == JournalState.INTENT.value)
        .then(pl.lit("in flight (or interrupted): may have been delivered"))
        .otherwise(pl.col(_JERROR))
        .alias("error"),
    )
    # The preparation's error of an attempted row (why it would not be sent now) is not
    # the row's: the journal's error, or none, is.
    attempted = joined.select(state.is_in(_ATTEMPTED).fill_null(False)).to_series()
    if attempted.any():
        prepared = prepared.with_columns(
            pl.when(attempted).then(pl.lit(None, pl.String)).otherwise(pl.col(ERROR)).alias(ERROR)
        )
    return layout.frame(prepared, outcomes)


def rebuild_report(
    run_dir: Path,
    plan: Plan,
    table: InputTable,
    journal: Journal,
    *,
    xlsx: bool | None = None,
) -> Tally:
    """Write report.csv (and .xlsx) for a run from its input and journal, atomically.

    ``xlsx=None``: the formats the run was started with (recorded in its journal).
    """
    layout = ReportLayout.for_input(table.columns)
    tally = Tally()
    deduper = Deduper()
    if xlsx is None:
        xlsx = _recorded_xlsx(journal.meta(), table)
    error = layout.result_names["error"]  # also notes the XLSX cells cut to Excel's limit
    with (
        report_writing(run_dir),
        ReportWriter(run_dir, layout.columns, xlsx=xlsx, note_column=error) as writer,
    ):
        for batch in table.batches():
            report = report_batch(layout, plan.prepare(batch, deduper), journal)
            tally.add(report, layout.result_names)
            writer.write(report)
            crash_point("report_write")
    return tally


def _recorded_xlsx(meta: dict[str, str], table: InputTable) -> bool:
    recorded = meta.get("report_xlsx")
    if recorded is None:  # a journal from before the format was recorded
        return table.kind == "xlsx"
    return recorded == "yes"
