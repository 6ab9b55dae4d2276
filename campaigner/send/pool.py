"""The send pool: paced, bounded, journaled, stoppable.

One dispatcher task starts requests no faster than the ``Pacer`` allows and no more at
once than the in-flight capacity (sized from the observed latency); each request runs in
its own task. Every start is preceded by a committed intent in the journal, every answer
followed by a committed outcome (group-committed from a worker thread, so the event loop
never waits on fsync while requests are due).

Retries happen only for answers that prove the request was not accepted (throttling,
503, connection refused) and go through the same pacer; ambiguous answers become
``unknown`` and are never retried here. An account-level refusal stops the run, and so
does CAMS staying unreachable for ``outage_limit_s`` (connection failures use up no
attempts; the rows wait, and a resume sends them).

Tasks, waits, events and cancel scopes are anyio's. Retry and give-up timers are the
asyncio loop's ``call_later`` handles (anyio has no timers; a task per waiting retry would
cost more), so the pool runs on anyio's asyncio backend, as the transport does.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import random
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from campaigner.budget import RateBudget
from campaigner.cams import Reply, ReplyKind
from campaigner.crashpoints import crash_point
from campaigner.errors import BudgetUnavailable
from campaigner.journal import Outcome
from campaigner.limits import DEFAULT_MAX_ATTEMPTS, DEFAULT_OUTAGE_LIMIT_S
from campaigner.send.client import CamsClient
from campaigner.send.journaling import JournalWriter
from campaigner.send.pacing import Pacer, PacerSettings
from campaigner.send.stats import Counters, PoolStats
from campaigner.statuses import JournalState

__all__ = ("Job", "SendPool")


class _QuickSwitches:
    """While any pool runs, a thread waiting for the GIL gets it within 0.5 ms, not 5.

    The loop gives up the GIL at every socket call and wakeup; while a worker thread
    prepares the next rows (pure Python for hundreds of ms) each hand-back cost up to the
    5 ms switch interval, and the loop fell behind by 80-150 ms at every batch (measured:
    a dip to 196-217 accepted in that second at 250/s)."""

    _SWITCH_S = 0.0005

    def __init__(self) -> None:
        self._running = 0
        self._saved = sys.getswitchinterval()

    def enter(self) -> None:
        if self._running == 0:
            self._saved = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved, self._SWITCH_S))
        self._running += 1

    def leave(self) -> None:
        self._running -= 1
        if self._running == 0:
            sys.setswitchinterval(self._saved)


_quick_switches = _QuickSwitches()

log = logging.getLogger(__name__)

# Intents are committed ahead of their sends, at least _INTENT_CHUNK at a time (≈ 32 ms at
# 250/s), keeping up to _READY_AHEAD committed (≈ 250 ms): a commit held up by the disk
# (fsync stalls of 50-120 ms are common) leaves the dispatcher rows to go on with, and the
# next commit catches up in one go. A crash leaves at most these few in ``intent`` unsent.
_INTENT_CHUNK = 8
_READY_AHEAD = 64
_REFILL_AT = _READY_AHEAD - _INTENT_CHUNK  # rows ahead at which the feeder commits more
_BACKOFF_BASE_S, _BACKOFF_CAP_S = 0.5, 30.0
_BUDGET_RETRY_S = 0.5  # asking again a rate budget that cannot answer (Redis gone)
# The hot path reads time.monotonic() (the asyncio loop's own clock) and sleeps on asyncio:
# anyio's current_time and sleep look up the running async library at every call.


@dataclass(slots=True)
class Job:
    row: int
    query: dict[str, str]
    attempts: int = 0
    unreachable: int = 0  # attempts that never connected: they do not use up max_attempts


class SendPool:
    """Sends the jobs of a feed (``run``); ``statistics()`` for progress, ``stop`` to end.

    Options are set once, here: ``outage_limit_s`` stops the run when CAMS stays
    unreachable that long; ``quiet_gc`` freezes the heap at start and per batch (see
    ``run``); ``on_outcome`` sees each row's last outcome of this run; ``budget``, when
    given, must grant every start too (the account's quota shared with other processes),
    on top of this pool's own pacer.
    """

    def __init__(
        self,
        client: CamsClient,
        writer: JournalWriter,
        *,
        pacer_settings: PacerSettings | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_in_flight: int = 2000,
        outage_limit_s: float = DEFAULT_OUTAGE_LIMIT_S,
        on_outcome: Callable[[Outcome], None] | None = None,
        quiet_gc: bool = True,
        budget: RateBudget | None = None,
    ) -> None:
        self.client = client
        self.writer = writer
        self.pacer_settings = pacer_settings or PacerSettings()
        self.max_attempts = max_attempts
        self.max_in_flight = max_in_flight
        self.outage_limit_s = outage_limit_s
        self.on_outcome = on_outcome
        self.quiet_gc = quiet_gc
        self.budget = budget
        self._account_error: Reply | None = None
        self._outage_error: str | None = None
        self._stop_reason: str | None = None
        self._counts = Counters(outage_limit_s=outage_limit_s)
        self._pacer = Pacer(self.pacer_settings)
        self._reserved: dict[int, Job] = {}  # intent committed, request not started
        self._waiting: dict[int, Job] = {}  # retries waiting for their backoff
        self._inbox: deque[Job] = deque()
        self._feed_done = False
        self._stopping = anyio.Event()
        self._changed = anyio.Event()
        self._room = anyio.Event()  # the dispatcher took rows: the feeder may add more
        self._rng = random.Random()
        self._unreachable_since: float | None = None
        self._give_up: asyncio.TimerHandle | None = None  # fires at the outage limit
        self._ready_wait = anyio.CancelScope()  # a wait for connections; stop cancels it
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._closed = False
        self._counts.capacity = self._capacity()

    # -- control and results ------------------------------------------------------------
    def stop(self, reason: str) -> None:
        """Graceful stop: start nothing new; requests in flight finish."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._stopping.set()
        self._ready_wait.cancel()
        self._notify()

    def abort(self) -> None:
        """The run is being cancelled from outside (a second signal): stop, and say so."""
        self._stop_reason = "aborted"
        self.stop("aborted")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped early (None: it was not stopped)."""
        return self._stop_reason

    @property
    def account_error(self) -> Reply | None:
        """The account-level refusal that stopped the run, if one did."""
        return self._account_error

    @property
    def outage_error(self) -> str | None:
        """Set when the run gave up on an unreachable CAMS: why, in words."""
        return self._outage_error

    def statistics(self) -> PoolStats:
        """The figures now, as an immutable snapshot."""
        return self._counts.snapshot()

    def _capacity(self) -> int:
        # Little's law with headroom: rate × latency, and at least 2 s worth from the start
        # so a slow server never starves the pacer while the latency estimate warms up.
        latency = max(self._counts.latency_s * 1.5, 2.0)
        return min(self.max_in_flight, math.ceil(self.pacer_settings.limit * latency) + 16)

    # -- the run ----------------------------------------------------------------------
    def _notify(self) -> None:
        """Wake whoever waits for a change: a new row, a free slot, a due retry, a stop."""
        self._changed.set()

    async def _next_change(self) -> None:
        """Wait for the next ``_notify``. The event is renewed by the first waiter after a
        change, not by every change: most changes (an answer) find nobody waiting, and a
        new event for each cost more than the answer's own bookkeeping."""
        if self._changed.is_set():
            self._changed = anyio.Event()
        await self._changed.wait()

    async def _room_ahead(self) -> None:
        """Wait until the dispatcher has taken a commit's worth of the rows ahead (the
        feeder woke at every answer and every start to find it had not, twice a message)."""
        while len(self._inbox) > _REFILL_AT:
            if self._room.is_set():
                self._room = anyio.Event()
            await self._room.wait()

    async def run(self, feed: AsyncIterator[list[Job]]) -> None:
        """Send every job from ``feed``; returns when all are settled or the pool stopped."""
        if self.quiet_gc:
            # A full collection over the start-up heap (polars, phonenumbers metadata, ...)
            # stalls the loop for 20-60 ms: every start due meanwhile is lost throughput.
            # Frozen objects are skipped by the cyclic GC (refcounting still frees them).
            gc.collect()
            gc.freeze()
        # Cold connections make the first second's requests reach the server unevenly
        # (seen as a server-side stall and 251 in a second); one second's worth, warm.
        with anyio.CancelScope() as self._ready_wait:  # seconds if CAMS is unreachable
            await self.client.warm(self.pacer_settings.limit)
        try:
            _quick_switches.enter()
            async with anyio.create_task_group() as background:
                ahead, batches = anyio.create_memory_object_stream[list[Job]](0)
                background.start_soon(self._read_ahead, feed, ahead)
                background.start_soon(self._fill, batches)
                await self._dispatch()
                # Stopped or done: requests in flight finish (and retries due are dropped).
                while self._counts.in_flight:
                    await self._next_change()
                background.cancel_scope.cancel()
        finally:
            _quick_switches.leave()
            self._closed = True
            with anyio.CancelScope(shield=True):
                self._reachable()  # cancels the give-up timer
                for handle in self._timers.values():
                    handle.cancel()
                self._timers.clear()
                for job in self._inbox:
                    self._reserved[job.row] = job
                self._inbox.clear()
                self._release_reserved()
                await self.writer.flush()

    async def _read_ahead(
        self, feed: AsyncIterator[list[Job]], ahead: MemoryObjectSendStream[list[Job]]
    ) -> None:
        """Get the next batch ready while the current one is sent.

        Getting a batch ready (reading, checking, rendering and journaling a few thousand
        rows) takes a few hundred ms, far more than the ~100 ms of intents queued ahead:
        fetched only once the previous batch had run out, it left the dispatcher idle at
        every batch boundary (a dip in the per-second rate every 5,000 rows).
        """
        async with ahead:
            async for jobs in feed:
                await ahead.send(jobs)  # returns once _fill takes it: one batch ahead

    async def _fill(self, batches: MemoryObjectReceiveStream[list[Job]]) -> None:
        """Commit intents a few rows ahead and queue the rows for the dispatcher."""
        try:
            async with batches:
                async for jobs in batches:
                    self._counts.queued += len(jobs)
                    start = 0
                    while start < len(jobs):
                        await self._room_ahead()
                        chunk = jobs[start : start + _READY_AHEAD - len(self._inbox)]
                        start += len(chunk)
                        for job in chunk:
                            self._reserved[job.row] = job
                        crash_point("before_intent")
                        await self.writer.intents([j.row for j in chunk])
                        self._inbox.extend(chunk)
                        self._notify()
                    if self.quiet_gc:
                        gc.freeze()  # this batch lives until sent: keep it out of gen-2 scans
        finally:
            self._feed_done = True
            self._notify()

    async def _dispatch(self) -> None:
        client = self.client
        while not self.stopping:
            if not self._inbox:
                if self._feed_done and self._counts.in_flight == 0 and not self._waiting:
                    return
                await self._next_change()
                continue
            job = self._inbox.popleft()
            if len(self._inbox) <= _REFILL_AT:
                self._room.set()  # room for the feeder
            self._reserved[job.row] = job
            if job.attempts:  # a retry: it needs a fresh intent before it leaves
                await self.writer.intents([job.row])
            while self._counts.in_flight >= self._counts.capacity and not self.stopping:
                await self._next_change()
            refused = await self._wait_turn()
            if self.stopping:
                break
            if refused is not None:
                del self._reserved[job.row]
                self._answered(job, time.monotonic(), refused)
                continue
            request = client.prepare(job.query)  # signed now: date and nonce are fresh
            crash_point("after_intent")
            # From here to the write nothing yields: grant time ≈ wire time.
            now = time.monotonic()
            self._pacer.start(now)
            del self._reserved[job.row]
            self._counts.in_flight += 1
            self._counts.started += 1
            if self._counts.first_start is None:
                self._counts.first_start = now
            self._counts.last_start = now
            client.start(request, partial(self._on_reply, job, now))

    async def _wait_turn(self) -> Reply | None:
        """Wait for the pacer and for an open connection (None), or CAMS is unreachable."""
        while not self.stopping:
            now = time.monotonic()
            wait = self._pacer.delay(now)
            if wait > 0.5:  # a pause (outage, Retry-After): a stop must not wait it out
                with anyio.move_on_after(wait):
                    await self._stopping.wait()
                continue
            if wait > 0:
                await asyncio.sleep(self._pacer.nap(now, wait))
                continue
            # An open connection first, so that the grant is the moment of writing. While
            # CAMS is unreachable this waits for a connect attempt (seconds): stop cancels it.
            with anyio.CancelScope() as self._ready_wait:
                refused = await self.client.ready()
            if self._ready_wait.cancelled_caught:
                return None
            if refused is not None:
                return refused
            if self._pacer.delay(time.monotonic()) > 0:
                continue
            wait = await self._budget_wait()
            if wait <= 0:
                return None  # granted: the caller starts without yielding
            if wait < _BUDGET_RETRY_S:  # the next grant is due in a few ms
                await asyncio.sleep(wait)
                continue
            with anyio.move_on_after(wait):  # the budget cannot answer: a stop must not wait
                await self._stopping.wait()
        return None

    async def _budget_wait(self) -> float:
        """0 when the shared budget grants this start (or there is none), else a wait. While
        it cannot answer, nothing starts: the progress line says so."""
        if self.budget is None:
            return 0.0
        try:
            wait = await self.budget.take()
        except BudgetUnavailable as exc:
            if self._counts.budget_unavailable_since is None:
                self._counts.budget_unavailable_since = time.monotonic()
                log.warning("%s: sending paused", exc)
            self._counts.budget_error = str(exc)
            return _BUDGET_RETRY_S
        if self._counts.budget_unavailable_since is not None:
            log.warning("the rate budget answers again: sending goes on")
            self._counts.budget_unavailable_since = None
        return wait

    def _on_reply(self, job: Job, started: float, reply: Reply) -> None:
        if self._closed:  # the run was aborted: the journal keeps this row in intent
            return
        self._counts.in_flight -= 1
        now = time.monotonic()
        latency = now - started
        self._counts.latency_s = (
            latency if not self._counts.latency_s else 0.9 * self._counts.latency_s + 0.1 * latency
        )
        self._counts.capacity = self._capacity()
        self._answered(job, now, reply)

    def _answered(self, job: Job, now: float, reply: Reply) -> None:
        job.attempts += 1
        delay = self._settle(job, reply, now)
        crash_point("after_answer")
        if delay is not None:
            self._waiting[job.row] = job
            self._timers[job.row] = asyncio.get_running_loop().call_later(
                delay, self._retry_due, job
            )
        self._notify()

    def _retry_due(self, job: Job) -> None:
        self._timers.pop(job.row, None)
        del self._waiting[job.row]
        self._inbox.appendleft(job)
        self._notify()

    def _settle(self, job: Job, reply: Reply, now: float) -> float | None:
        """Record the answer; returns a retry delay when the row should be sent again."""
        fields = {
            "message_id": reply.message_id,
            "code": reply.code,
            "message": reply.message,
            "request_id": reply.request_id,
        }
        if reply.kind is ReplyKind.SENT:
            self._record(Outcome(job.row, JournalState.SENT, job.attempts, **fields))
        elif reply.kind is ReplyKind.FAILED:
            self._record(Outcome(job.row, JournalState.FAILED, job.attempts, **fields))
        elif reply.kind is ReplyKind.UNKNOWN:
            self._record(Outcome(job.row, JournalState.UNKNOWN, job.attempts, **fields))
        elif reply.kind is ReplyKind.ACCOUNT:
            self._account_error = self._account_error or reply
            self._record(Outcome(job.row, JournalState.PENDING, job.attempts, **fields))
            self.stop(f"the account was refused: {reply.code}")
        else:  # RETRY: provably not accepted
            return self._retry(job, reply, now, fields)
        self._reachable()  # any answer proves CAMS is reachable
        return None

    def _reachable(self) -> None:
        self._unreachable_since = self._counts.unreachable_since = None
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None

    def _unreachable(self, now: float, error: str) -> None:
        """CAMS cannot be reached: start the outage clock, or keep it running."""
        self._counts.unreachable_error = error
        if self._unreachable_since is None:
            self._unreachable_since = now
            self._counts.unreachable_since = time.monotonic()
            # A timer, not a check on the next failure: a backoff or a slow connect
            # attempt would otherwise stretch the bound by several seconds.
            self._give_up = asyncio.get_running_loop().call_later(
                self.outage_limit_s, self._outage_over
            )

    def _outage_over(self) -> None:
        self._give_up = None
        if self._unreachable_since is None or self.stopping:
            return
        self._outage_error = (
            f"{self._counts.unreachable_error}; gave up after {self.outage_limit_s:g} s "
            "([send] outage_limit_s)"
        )
        self.stop(f"CAMS unreachable for {self.outage_limit_s:g} s")

    def _retry(
        self, job: Job, reply: Reply, now: float, fields: dict[str, str | None]
    ) -> float | None:
        if reply.code == "ConnectError":
            # CAMS unreachable: a global condition, not this row's fault. Hold every start
            # and keep the row until the outage has lasted outage_limit_s.
            job.unreachable += 1
            self._unreachable(now, reply.message or "cannot connect to CAMS")
            delay = min(self._backoff(job.unreachable), 5.0)
            self._pacer.pause(now, delay)
        else:
            self._reachable()
            self._counts.throttled += reply.throttled  # a 503 slows us down too, uncounted
            self._pacer.throttled(now, reply.retry_after_s)
            delay = max(self._backoff(job.attempts - job.unreachable), reply.retry_after_s or 0.0)
        if job.attempts - job.unreachable >= self.max_attempts or self.stopping:
            self._record(Outcome(job.row, JournalState.PENDING, job.attempts, **fields))
            return None
        self._counts.retries += 1
        # Not in flight any more: a crash while it waits leaves it safe to resend.
        self.writer.outcome(Outcome(job.row, JournalState.PENDING, job.attempts, **fields))
        return delay

    def _backoff(self, attempts: int) -> float:
        ceiling = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** (attempts - 1))
        return self._rng.uniform(ceiling / 2, ceiling)

    def _record(self, outcome: Outcome) -> None:
        """Commit a row's last outcome of this run and count it by its state."""
        self.writer.outcome(outcome)
        if outcome.state is JournalState.SENT:
            self._counts.sent += 1
        elif outcome.state is JournalState.FAILED:
            self._counts.failed += 1
        elif outcome.state is JournalState.UNKNOWN:
            self._counts.unknown += 1
        else:  # left pending: a later run sends it
            self._counts.not_attempted += 1
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _release_reserved(self) -> None:
        """Rows whose intent was committed but whose request never started go back."""
        for job in [*self._reserved.values(), *self._waiting.values()]:
            self._record(
                Outcome(
                    job.row,
                    JournalState.PENDING,
                    job.attempts,
                    message="not started: the run stopped",
                )
            )
        self._reserved.clear()
        self._waiting.clear()
