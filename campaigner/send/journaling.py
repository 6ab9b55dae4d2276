"""The send pool's journal writes: in order, group-committed off the event loop."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from campaigner.journal import Journal, Outcome

__all__ = ("JournalWriter",)


class JournalWriter:
    """Serializes journal writes in order and group-commits them off the event loop."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        journal.checkpoint_apart()  # an intent's commit never waits for a checkpoint
        self._lock = anyio.Lock()
        self._outcomes: list[Outcome] = []

    def outcome(self, outcome: Outcome) -> None:
        """Buffer an outcome; it is committed with the next intents or flush."""
        self._outcomes.append(outcome)

    async def intents(self, rows: list[int]) -> None:
        """Commit intents (after every earlier outcome); returns once durable."""
        async with self._lock:
            outcomes, self._outcomes = self._outcomes, []
            await anyio.to_thread.run_sync(self._journal.apply, rows, outcomes)

    async def flush(self) -> None:
        await self.intents([])

    async def run_call(self, func: Callable[[], object]) -> None:
        """Run another journal write in order with the rest."""
        async with self._lock:
            await anyio.to_thread.run_sync(func)
