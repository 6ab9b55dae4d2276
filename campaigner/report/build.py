"""The report rebuilt from the input and the journal: each prepared batch joined with the
journal's outcomes, so the report is complete and right after any crash."""

from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, TO
from campaigner.crashpoints import crash_point
from campaigner.inputs import InputTable
from campaigner.journal import Journal
from campaigner.report.atomic import report_writing
from campaigner.report.delivery_source import DeliverySource
from campaigner.report.journal_rows import (
    JOURNAL_ERROR,
    JOURNAL_RECIPIENT,
    JOURNAL_STATE,
    JournalRows,
    rows_frame,
)
from campaigner.report.layout import ReportLayout
from campaigner.report.tally import Tally
from campaigner.report.writer import ReportWriter
from campaigner.retriable import codes_expr
from campaigner.rows import Deduper, Plan
from campaigner.runstate import (
    META_NOT_ATTEMPTED_REASON,
    META_NOT_IN_RUN_REASON,
    META_RETRIED_IN,
    META_RETRY_CODES,
)
from campaigner.statuses import JournalState, Status

__all__ = ("RunNotes", "rebuild_report", "report_batch")

_STATE, _JERROR, _RECIPIENT = JOURNAL_STATE, JOURNAL_ERROR, JOURNAL_RECIPIENT
# Journal states a row is reported in as they are.
_SETTLED = (JournalState.SENT, JournalState.FAILED, JournalState.UNKNOWN)
_HELD = (JournalState.SUPPRESSED, JournalState.ALREADY_SENT)
# States of a row whose request may have left: their outcome wins over a new check.
_ATTEMPTED = [s.value for s in (*_SETTLED, JournalState.INTENT)]


def _journal_frame(journal: Journal, lo: int, hi: int) -> pl.DataFrame:
    return rows_frame(journal.rows_between(lo, hi))


def _as_journaled(batch: pl.DataFrame, jf: pl.DataFrame) -> pl.DataFrame | None:
    """``batch`` as ``Plan.prepare`` made it when the run journaled it, from the journal's
    rows (``jf``, in row order): the status it was checked to, the ``To`` it was sent to
    (or found wrong in), the error it was given. Checking the rows again would say the
    same at a third of a rebuild's time. None when a row of the batch is not in the
    journal (the run stopped before it was read): that batch is checked again."""
    if jf.height != batch.height or not jf[ROW].equals(batch[ROW]):
        return None
    state = pl.col(_STATE)
    checked = jf.select(
        pl.when(state.is_in([JournalState.INVALID.value, JournalState.DUPLICATE.value]))
        .then(state)  # the same words in both vocabularies
        .otherwise(pl.lit(Status.WOULD_SEND.value))
        .alias(STATUS),
        pl.col(_RECIPIENT).alias(TO),
        pl.col(_JERROR).alias(ERROR),
    )
    return pl.concat([batch, checked], how="horizontal")


@dataclass(frozen=True)
class RunNotes:
    """What a run's journal meta adds to its report: why rows were not attempted (all of
    them, or only those the run never journaled), and the run that retried its rows."""

    not_attempted: str | None = None
    not_in_run: str | None = None
    retried_in: str | None = None
    retry_codes: tuple[str, ...] = ()

    @classmethod
    def of(cls, meta: dict[str, str]) -> RunNotes:
        codes = meta.get(META_RETRY_CODES, "")
        return cls(
            meta.get(META_NOT_ATTEMPTED_REASON) or None,
            meta.get(META_NOT_IN_RUN_REASON) or None,
            meta.get(META_RETRIED_IN) or None,
            tuple(c for c in codes.split(",") if c),
        )


def report_batch(
    layout: ReportLayout,
    prepared: pl.DataFrame,
    journal: Journal,
    notes: RunNotes | None = None,
    delivery: DeliverySource | None = None,
    journaled: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One batch of the report: preparation ⋈ journal (⋈ receipts, with ``delivery``);
    ``journaled``: the journal's rows of the batch, when already read.

    A row the journal says was attempted (sent, failed, unknown, in flight) is reported as
    the journal says, even if checking it again now calls it invalid or duplicate (a
    template near the time limit, say): what happened to the row is the journal's to say.
    """
    jf = journaled if journaled is not None else _journal_frame(journal, *_bounds(prepared))
    state = pl.col(_STATE)
    sendable = pl.col(STATUS) == Status.WOULD_SEND.value
    status = (
        pl.when(state.is_in([s.value for s in _SETTLED]))
        .then(state)
        .when(state == JournalState.INTENT.value)
        .then(pl.lit(Status.UNKNOWN.value))
        # Held back when the run reached the row (an opt-out, --only-new): as journaled,
        # whatever the workspace knows now.
        .when(state.is_in([s.value for s in _HELD]))
        .then(state)
        .when(~sendable)
        .then(pl.col(STATUS))
        .otherwise(pl.lit(Status.NOT_ATTEMPTED.value))
    )
    joined = prepared.select(ROW, STATUS).join(jf, on=ROW, how="left", maintain_order="left")
    notes = notes or RunNotes()
    not_attempted = status == Status.NOT_ATTEMPTED.value
    cases = [
        (state == JournalState.INTENT.value, "in flight (or interrupted): may have been delivered")
    ]
    if notes.not_in_run:
        cases.append((not_attempted & state.is_null(), notes.not_in_run))
    if notes.not_attempted:
        cases.append((not_attempted, notes.not_attempted))
    error = pl.col(_JERROR)
    for case, text in reversed(cases):  # the first case that holds wins
        error = pl.when(case).then(pl.lit(text)).otherwise(error)
    retried = [pl.lit(None, pl.String).alias("retried_in")]
    if notes.retried_in:
        was_retried = (state == JournalState.FAILED.value) & codes_expr(
            pl.col("Code"), notes.retry_codes
        )
        retried = [pl.when(was_retried).then(pl.lit(notes.retried_in)).alias("retried_in")]
    outcomes = joined.select(
        ROW,
        status.alias("status"),
        "MessageId",
        "Code",
        "Message",
        "RequestId",
        "attempts",
        error.alias("error"),
        *retried,
    )
    if delivery is not None:
        receipts = delivery.batch(prepared)
        outcomes = outcomes.join(receipts, on=ROW, how="left", maintain_order="left")
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
    notes = RunNotes.of(journal.meta())
    with (
        report_writing(run_dir),
        ReportWriter(run_dir, layout.columns, xlsx=xlsx, note_column=error) as writer,
        DeliverySource.for_plan(run_dir, plan) as delivery,
        closing(JournalRows(run_dir)) as journal_rows,
    ):
        # Batches the journal holds whole are taken as the run checked them (_as_journaled);
        # their recipients reach the deduper only if a later batch must be checked again.
        as_journaled = not delivery.needs_rendering
        unseen: list[pl.DataFrame] = []
        for batch in table.batches():
            jf = journal_rows.between(*_bounds(batch))
            prepared = _as_journaled(batch, jf) if as_journaled else None
            if prepared is None:
                for earlier in unseen:
                    deduper.mark(earlier)
                unseen.clear()
                prepared = plan.prepare(batch, deduper)
            else:
                unseen.append(prepared.select(ROW, STATUS, TO, ERROR))
            report = report_batch(layout, prepared, journal, notes, delivery, jf)
            tally.add(report, layout.result_names)
            writer.write(report)
            crash_point("report_write")
    tally.delivery = delivery.funnel
    return tally


def _bounds(frame: pl.DataFrame) -> tuple[int, int]:
    lo, hi = frame.select(pl.col(ROW).min().alias("lo"), pl.col(ROW).max().alias("hi")).row(0)
    return int(lo or 0), int(hi or 0)


def _recorded_xlsx(meta: dict[str, str], table: InputTable) -> bool:
    recorded = meta.get("report_xlsx")
    if recorded is None:  # a journal from before the format was recorded
        return table.kind == "xlsx"
    return recorded == "yes"
