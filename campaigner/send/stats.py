"""The send pool's figures: ``Counters`` it updates as it runs, ``PoolStats`` snapshots of
them for progress display and the summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

__all__ = ("Counters", "PoolStats")


@dataclass(frozen=True, slots=True)
class PoolStats:
    """The pool's figures at one moment (``SendPool.statistics()``), for progress display
    and the summary: an immutable snapshot, taken as often as wanted."""

    queued: int = 0  # rows handed to the pool
    started: int = 0  # requests started (retries included)
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    not_attempted: int = 0
    retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    capacity: int = 0
    latency_s: float = 0.0  # recent answer latency (EWMA)
    first_start: float | None = None
    last_start: float | None = None
    # While CAMS cannot be reached: since when (time.monotonic), why, and the give-up bound.
    unreachable_since: float | None = None
    unreachable_error: str = ""
    outage_limit_s: float = 0.0
    # While the rate budget cannot answer (Redis gone): since when (time.monotonic), why.
    budget_unavailable_since: float | None = None
    budget_error: str = ""

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.unknown + self.not_attempted

    def outage(self) -> str | None:
        """What holds the sending, in words: the rate budget cannot answer, or CAMS cannot
        be reached (None while neither)."""
        if self.budget_unavailable_since is not None:
            paused = time.monotonic() - self.budget_unavailable_since
            return f"{self.budget_error}; sending paused for {paused:.0f} s until it answers"
        if self.unreachable_since is None:
            return None
        so_far = time.monotonic() - self.unreachable_since
        return (
            f"{self.unreachable_error}; retrying for {so_far:.0f} s so far "
            f"(giving up after {self.outage_limit_s:g} s)"
        )


@dataclass(slots=True)
class Counters:
    """What the pool counts as it runs (PoolStats's fields), mutable; ``snapshot`` copies."""

    queued: int = 0
    started: int = 0
    sent: int = 0
    failed: int = 0
    unknown: int = 0
    not_attempted: int = 0
    retries: int = 0
    throttled: int = 0
    in_flight: int = 0
    capacity: int = 0
    latency_s: float = 0.0
    first_start: float | None = None
    last_start: float | None = None
    unreachable_since: float | None = None
    unreachable_error: str = ""
    outage_limit_s: float = 0.0
    budget_unavailable_since: float | None = None
    budget_error: str = ""

    def snapshot(self) -> PoolStats:
        """The figures now, as an immutable PoolStats (copied by field name)."""
        return PoolStats(**{name: getattr(self, name) for name in _FIELDS})


# PoolStats's fields, which Counters has too: a snapshot copies them by name.
_FIELDS = tuple(f.name for f in fields(PoolStats))
