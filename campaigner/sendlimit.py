"""``send --limit N``: the first N rows a send would send, then the feed ends and the run
stops resumably (the rest ``not_attempted``; ``--resume`` sends them, N at a time again
with another ``--limit``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from campaigner.send.pool import Job

__all__ = ("SendLimit",)


class SendLimit:
    """Passes the first ``limit`` jobs of a feed to the pool (all of them without a limit);
    ``cut`` says whether rows were left over once it had."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.cut = False

    @property
    def reason(self) -> str | None:
        """Why the run stopped, when the limit cut it short."""
        return f"--limit {self.limit} reached" if self.cut else None

    async def take(self, batches: AsyncIterator[list[Job]]) -> AsyncIterator[list[Job]]:
        if self.limit is None:
            async for jobs in batches:
                yield jobs
            return
        left = self.limit
        try:
            async for jobs in batches:
                if left <= 0 or len(jobs) > left:
                    self.cut = True  # a job beyond the limit: rows are left for a resume
                    if left > 0:
                        yield jobs[:left]
                    return
                left -= len(jobs)
                yield jobs
        finally:
            if isinstance(batches, AsyncGenerator):
                await batches.aclose()  # the feed prepares no further batch
