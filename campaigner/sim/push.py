"""The simulator's receipt pusher: posts every accepted message's receipts (its ``Fate``) to a
callback base, as CAMS does: JSON arrays of up to 100, retried with backoff on a non-200 answer,
an error or a timeout, then given up (docs/simulator.md#receipts).

It runs in the server's event loop but never on the send path: ``schedule`` (called as a send is
accepted) only pushes the message's posts onto a heap; a background task posts what is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import aiohttp

from campaigner.sim.fate import Event, ReceiptPlan, fate_of, inbound_body, status_body
from campaigner.sim.records import AcceptedSend

__all__ = ("CAMS_RETRY_S", "Pusher", "PushTarget")

logger = logging.getLogger(__name__)

# CAMS's sister products retry after 1, 5 and 10 minutes; the simulator's default is seconds.
CAMS_RETRY_S = (60.0, 300.0, 600.0)
Kind = Literal["status", "inbound"]


@dataclass(frozen=True, slots=True)
class PushTarget:
    """Where and how to post: ``{base}/cams/status/{token}`` and ``{base}/cams/inbound/{token}``;
    a failed post is retried after each of ``retry_s`` in turn, then given up."""

    base: str
    token: str
    retry_s: tuple[float, ...] = (1.0, 5.0, 10.0)
    timeout_s: float = 3.0  # CAMS wants an answer within 3 s
    batch_max: int = 100
    linger_s: float = 0.1  # wait this long for more due receipts to fill a batch
    concurrency: int = 4

    def url(self, kind: Kind) -> str:
        return f"{self.base.rstrip('/')}/cams/{kind}/{quote(self.token, safe='')}"

    def shown(self, kind: Kind) -> str:
        """The URL for logs: the token is a secret."""
        return f"{self.base.rstrip('/')}/cams/{kind}/***"


@dataclass(frozen=True, slots=True)
class _Item:
    record: AcceptedSend
    event: Event
    attempt: int = 0

    @property
    def kind(self) -> Kind:
        return "inbound" if self.event.kind == "inbound" else "status"

    def body(self) -> dict[str, Any]:
        if self.event.kind == "inbound":
            return inbound_body(self.record, self.event)
        return status_body(self.record, self.event)


class Pusher:
    """Posts receipts for the messages handed to ``schedule``; run ``run()`` as a task."""

    def __init__(
        self,
        target: PushTarget,
        plan: ReceiptPlan,
        seed: int = 0,
        *,
        on_acknowledged: Callable[[Kind, list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.target = target
        self.plan = plan
        self.seed = seed
        # Told every body a 200 acknowledged (crash tests compare it with the receiver's store).
        self.on_acknowledged = on_acknowledged
        self.counters: Counter[str] = Counter()
        self._heap: list[tuple[float, int, _Item]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._outstanding = 0  # receipts scheduled and neither acknowledged nor given up

    def schedule(self, record: AcceptedSend) -> None:
        """Queue every post of ``record``'s fate (cheap: called as the send is accepted)."""
        fate = fate_of(record, self.plan, self.seed)
        start = record.received_monotonic
        for post in fate.posts:
            self._push(start + post.after_ms / 1000.0, _Item(record, post.event))
        self._outstanding += len(fate.posts)
        self.counters["scheduled"] += len(fate.posts)
        self.counters["duplicates"] += len(fate.posts) - len(fate.events)
        if self._outstanding:
            self._idle.clear()

    @property
    def outstanding(self) -> int:
        """Receipts not yet acknowledged with a 200 nor given up."""
        return self._outstanding

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every scheduled receipt is acknowledged or given up; False on timeout."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return self._outstanding == 0

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "outstanding": self._outstanding}

    def _push(self, due: float, item: _Item) -> None:
        heapq.heappush(self._heap, (due, next(self._order), item))
        self._wake.set()

    async def run(self) -> None:
        """Post due receipts until cancelled."""
        target = self.target
        timeout = aiohttp.ClientTimeout(total=target.timeout_s)
        connector = aiohttp.TCPConnector(limit=target.concurrency)
        slots = asyncio.Semaphore(target.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            try:
                while True:
                    if not await self._until_due():
                        continue
                    if target.linger_s > 0:  # let more become due: fewer, fuller posts
                        await asyncio.sleep(target.linger_s)
                    for kind, items in self._take(time.monotonic()):
                        await slots.acquire()
                        task = asyncio.create_task(self._post(session, kind, items))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
                        task.add_done_callback(lambda _: slots.release())
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _until_due(self) -> bool:
        """Sleep until the earliest post is due (True) or something new was queued (False)."""
        self._wake.clear()
        if not self._heap:
            await self._wake.wait()
            return False
        delay = self._heap[0][0] - time.monotonic()
        if delay <= 0:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        return False

    def _take(self, now: float) -> list[tuple[Kind, list[_Item]]]:
        """The due items, by endpoint, in batches of at most ``batch_max``."""
        due: dict[Kind, list[_Item]] = {"status": [], "inbound": []}
        while self._heap and self._heap[0][0] <= now:
            item = heapq.heappop(self._heap)[2]
            due[item.kind].append(item)
        size = self.target.batch_max
        return [
            (kind, items[i : i + size])
            for kind, items in due.items()
            for i in range(0, len(items), size)
        ]

    async def _post(self, session: aiohttp.ClientSession, kind: Kind, items: list[_Item]) -> None:
        bodies = [item.body() for item in items]
        body = json.dumps(bodies, ensure_ascii=False).encode()
        self.counters["posts"] += 1
        self.counters["max_batch"] = max(self.counters["max_batch"], len(items))
        problem = ""
        try:
            headers = {"Content-Type": "application/json; charset=utf-8"}
            async with session.post(self.target.url(kind), data=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    problem = f"HTTP {answer.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            problem = type(exc).__name__
        if not problem:
            self.counters["acknowledged"] += len(items)
            if self.on_acknowledged is not None:
                self.on_acknowledged(kind, bodies)
            self._settle(len(items))
            return
        self.counters["posts_failed"] += 1
        retry_s = self.target.retry_s
        kept = [item for item in items if item.attempt < len(retry_s)]
        given_up = len(items) - len(kept)
        for item in kept:
            again = _Item(item.record, item.event, item.attempt + 1)
            self._push(time.monotonic() + retry_s[item.attempt], again)
        self.counters["retried"] += len(kept)
        if given_up:
            self.counters["given_up"] += given_up
            logger.warning(
                "receipt push to %s failed (%s): gave up on %d receipts after %d attempts",
                self.target.shown(kind),
                problem,
                given_up,
                len(retry_s) + 1,
            )
            self._settle(given_up)
        else:
            logger.info(
                "receipt push to %s failed (%s): %d receipts retried",
                self.target.shown(kind),
                problem,
                len(kept),
            )

    def _settle(self, count: int) -> None:
        self._outstanding -= count
        if self._outstanding <= 0:
            self._idle.set()
