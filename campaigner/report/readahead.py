"""Frames of consecutive row ranges, the next range read in a worker thread while this one
is used: a report's batches come in row order, all of a size but the last."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import polars as pl

from campaigner.columns import ROW

__all__ = ("ReadAhead",)


class ReadAhead:
    """``get(lo, hi)`` returns ``read(lo, hi)`` (a frame with ``ROW``), run in ``worker``;
    then the next range, as long, is read there meanwhile."""

    def __init__(
        self, read: Callable[[int, int], pl.DataFrame], worker: ThreadPoolExecutor
    ) -> None:
        self._read = read
        self._worker = worker
        self._ahead: tuple[int, int, Future[pl.DataFrame]] | None = None

    def get(self, lo: int, hi: int) -> pl.DataFrame:
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] <= lo and hi <= ahead[1]:
            frame = ahead[2].result()
            if (ahead[0], ahead[1]) != (lo, hi):
                frame = frame.filter(pl.col(ROW).is_between(lo, hi))
        else:
            if ahead is not None:
                ahead[2].cancel()  # not these rows; if it runs already, this read waits for it
            frame = self._worker.submit(self._read, lo, hi).result()
        start, end = hi + 1, 2 * hi - lo + 1
        self._ahead = (start, end, self._worker.submit(self._read, start, end))
        return frame
