"""The feed into the send pool: input batches prepared off the event loop, journaled, and
turned into jobs for the rows that still need sending."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime

import anyio
import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, TO
from campaigner.inputs import InputTable
from campaigner.journal import Journal
from campaigner.rows import Deduper, Plan
from campaigner.screening import CALL, Screen
from campaigner.send.journaling import JournalWriter
from campaigner.send.pool import Job
from campaigner.statuses import FINAL_STATES, JournalState, Status
from campaigner.windows import Timing

__all__ = ("SEND_BATCH_ROWS", "feed")

_HELD = (JournalState.SUPPRESSED, JournalState.ALREADY_SENT)

SEND_BATCH_ROWS = 5_000  # small batches keep the event loop responsive while rows are prepared
# A prepared row's status → the state its journal row starts in.
_JOURNAL_STATE = {
    Status.WOULD_SEND: JournalState.PENDING,
    Status.INVALID: JournalState.INVALID,
    Status.DUPLICATE: JournalState.DUPLICATE,
    Status.SUPPRESSED: JournalState.SUPPRESSED,
    Status.ALREADY_SENT: JournalState.ALREADY_SENT,
}


async def feed(
    plan: Plan,
    table: InputTable,
    writer: JournalWriter,
    journal: Journal,
    screen: Screen | None = None,
    only: frozenset[int] | None = None,
    timing: Timing | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> AsyncIterator[list[Job]]:
    """Prepared rows, in input order, that still need sending; each batch journaled first
    (a row's journal row, and its call's fingerprint, exist before its request can start).
    ``screen`` holds rows back (suppressed, already sent); a row a resume finds still
    pending is held back too when the screen now says so. ``only`` (a retry's rows): the
    other rows are neither journaled nor sent.

    ``timing`` (a send window): a row whose window is closed stays ``pending`` while the
    others go; once the list is read, the feed sleeps until the next window opens and reads
    the list again (the journal holds who still waits; memory only the numbers of the rows
    handed over), until no row waits. A row whose window does not open before the deadline
    keeps the reason in its error."""
    screen = screen or Screen(plan, fingerprints=True)
    # Rows already handed to the pool: a later read must not hand them again, though the
    # pool may not have committed their intents yet (it runs a batch or more behind).
    given: set[int] = set()
    while True:
        waiting: list[datetime] = []
        async for jobs in _read_once(
            plan, table, writer, journal, screen, only, timing, clock, waiting, given
        ):
            if timing is not None:
                given.update(job.row for job in jobs)
            yield jobs
        if not waiting:
            return
        await sleep(max((min(waiting) - clock()).total_seconds(), 0.0))


async def _read_once(
    plan: Plan,
    table: InputTable,
    writer: JournalWriter,
    journal: Journal,
    screen: Screen,
    only: frozenset[int] | None,
    timing: Timing | None,
    clock: Callable[[], datetime],
    waiting: list[datetime],
    given: frozenset[int] | set[int] = frozenset(),
) -> AsyncIterator[list[Job]]:
    """One read of the list; the openings of rows whose window is closed go to ``waiting``."""
    deduper = Deduper()
    batches: Iterator[pl.DataFrame] = table.batches(SEND_BATCH_ROWS)
    kept = pl.Series(sorted(only or ()), dtype=pl.Int64)

    def prepare_next() -> pl.DataFrame | None:
        batch = next(batches, None)
        if batch is None:
            return None
        prepared = screen.apply(plan.prepare(batch, deduper))
        return prepared if timing is None else timing.check(prepared)

    while True:
        prepared = await anyio.to_thread.run_sync(prepare_next)
        if prepared is None:
            return
        if only is not None:  # after prepare: duplicates still point to the same rows
            prepared = prepared.filter(pl.col(ROW).is_in(kept.implode()))
            if prepared.is_empty():
                continue
        records = [
            (row, _JOURNAL_STATE[status], to, err)
            for row, status, to, err in prepared.select(ROW, STATUS, TO, ERROR).iter_rows()
        ]
        calls = [(row, fp) for row, fp in prepared.select(ROW, CALL).iter_rows() if fp is not None]
        held = [(row, state, err) for row, state, _, err in records if state in _HELD]
        states: dict[int, str] = {}

        def record(
            records: list[tuple[int, JournalState, str | None, str | None]] = records,
            calls: list[tuple[int, str]] = calls,
            held: list[tuple[int, JournalState, str | None]] = held,
            states: dict[int, str] = states,
        ) -> None:
            # In the writer's order: the batch's rows exist before any of their intents.
            journal.add_rows(records, calls)
            if held:
                journal.hold_pending(held)
            states.update(journal.states_between(records[0][0], records[-1][0]))

        await writer.run_call(record)
        sendable = prepared.filter(pl.col(STATUS) == Status.WOULD_SEND.value)

        never: list[tuple[int, str]] = []

        def build_jobs(
            frame: pl.DataFrame = sendable,
            states: dict[int, str] = states,
            never: list[tuple[int, str]] = never,
        ) -> list[Job]:
            jobs = []
            now = clock()
            for row in frame.iter_rows(named=True):
                state = states.get(row[ROW])
                if state in FINAL_STATES or state == JournalState.INTENT or row[ROW] in given:
                    continue
                if timing is not None:
                    zones = timing.zones(row) or ()
                    opens = timing.opens(zones, now)
                    if opens is None:
                        never.append((row[ROW], timing.never(zones)))
                        continue
                    if opens > now:
                        waiting.append(opens)
                        continue
                # The query the fingerprint was taken of (built once), else built now.
                query = screen.queries.get(row[ROW]) or plan.query(row)
                jobs.append(Job(row[ROW], query))
            return jobs

        jobs = await anyio.to_thread.run_sync(build_jobs)
        if never:

            def note(never: list[tuple[int, str]] = never) -> None:
                journal.note_pending(never)

            await writer.run_call(note)
        if jobs:
            yield jobs
