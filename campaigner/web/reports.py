"""Rebuilding a run's report from the web app: for a download, and now and then while a run
page is watched, so the delivery funnel follows the receipts as they arrive (a rebuild
records it in summary.json). One rebuild of a run at a time; watching never waits."""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

from campaigner import api
from campaigner.report.summary import SUMMARY_NAME

__all__ = ("ReportRebuilds",)

_MIN_EVERY_S = 5.0  # a watched run's funnel is at most this old...
_COST_FACTOR = 10  # ...or ten times the last rebuild's time (large runs rebuild less often)
# While the run sends, a rebuild competes with it for the CPU: rarer.
_SENDING_EVERY_S, _SENDING_COST_FACTOR = 30.0, 40
_POINTS = 600


class ReportRebuilds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._last: dict[str, tuple[float, float]] = {}  # run -> (when, how long it took)
        self.deliveries: dict[str, deque[tuple[float, int]]] = {}  # run -> (time, delivered)

    def _run_lock(self, run_id: str) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(run_id, threading.Lock())

    def rebuild(self, run_id: str, run_dir: Path, xlsx: bool | None = None) -> api.ReportResult:
        """Rebuild now (waits for a rebuild of the same run going on)."""
        with self._run_lock(run_id):
            return self._rebuild(run_id, run_dir, xlsx)

    def _rebuild(self, run_id: str, run_dir: Path, xlsx: bool | None) -> api.ReportResult:
        started = time.monotonic()
        result = api.report(api.ReportOptions(run_dir, xlsx))
        now = time.monotonic()
        self._last[run_id] = (now, now - started)
        delivery = result.tally.delivery
        if delivery is not None:
            points = self.deliveries.setdefault(run_id, deque(maxlen=_POINTS))
            points.append((round(time.time(), 1), delivery.delivered))
        return result

    def refresh_soon(
        self, run_id: str, run_dir: Path, *, sending: bool, began: float | None = None
    ) -> None:
        """Rebuild in the background when the last one is old enough and none is going on.
        ``began``: when the run was created (a Unix time), if known."""
        last = self._last.get(run_id)
        if last is None and sending and began is not None:
            age = time.time() - began
            if 0 <= age < _SENDING_EVERY_S:
                # A run that has just begun has no receipts to count yet: its first rebuild
                # comes one period after its start, as if one had been made then.
                self._last[run_id] = (time.monotonic() - age, 0.0)
                return
        when, cost = last or (0.0, 0.0)
        every, factor = (
            (_SENDING_EVERY_S, _SENDING_COST_FACTOR) if sending else (_MIN_EVERY_S, _COST_FACTOR)
        )
        wait = max(every, cost * factor)
        if time.monotonic() - when < wait:
            return
        written = _age(run_dir / SUMMARY_NAME)
        if written is not None and written < wait:  # rebuilt meanwhile: the run's own report
            self._last[run_id] = (time.monotonic() - written, cost)
            return
        lock = self._run_lock(run_id)
        if not lock.acquire(blocking=False):
            return
        self._last[run_id] = (time.monotonic(), cost)  # not again while this one runs

        def rebuild() -> None:
            try:
                self._rebuild(run_id, run_dir, None)
            except Exception:  # noqa: S110 - a failed refresh leaves the last funnel shown
                pass
            finally:
                lock.release()

        threading.Thread(target=rebuild, name="campaigner-report", daemon=True).start()


def _age(path: Path) -> float | None:
    """Seconds since ``path`` was written (None: there is none)."""
    try:
        return max(time.time() - path.stat().st_mtime, 0.0)
    except OSError:
        return None
