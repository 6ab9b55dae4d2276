"""The grant rule every rate budget applies, pure: may one more request start at ``now``?

The same two rules as the send pacer (``campaigner.send.pacing``), over state that a
budget may keep anywhere (memory, a file, Redis):

1. GCRA spacing: a theoretical arrival time (TAT) moves ``1 / rate`` per grant, and a grant
   is due once ``now`` reaches it. A late request may catch up by ``tolerance`` intervals, no
   more, so a late wake-up costs no rate and a pause brings no burst.
2. A sliding-window guard on the grant times themselves: never more than ``limit`` grants in
   any ``window`` seconds, whatever the spacing allowed.

Times are floats in seconds from a clock every sharer reads alike (the host's monotonic
clock, or Redis's). The state is the TAT and the last ``limit`` grant times, oldest first.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from campaigner.limits import MAX_QPS

__all__ = ("GrantRule", "GrantState")


@dataclass(frozen=True, slots=True)
class GrantRule:
    """What a budget allows: ``limit`` grants in any ``window``, spaced at
    ``limit * rate_factor`` per second."""

    limit: int = MAX_QPS
    rate_factor: float = 0.996  # as the pacer: 249/s for a limit of 250
    window: float = 1.007  # a little over 1 s: a few ms of network jitter stay within
    # Catch-up after lateness: more than the pacer's 3, because several processes share one
    # budget and, on a loaded host, all of them may wake late (measured with three
    # processes at a load of 9 on 2 cores: 235-241 grants/s with 3, 248/s with 10). The
    # guard still caps every window; a late burst of 10 is 40 ms worth, not a bucket.
    tolerance_intervals: float = 10.0

    def __post_init__(self) -> None:
        if self.limit < 1 or not 0 < self.rate_factor <= 1 or self.window <= 0:
            raise ValueError(f"not a usable grant rule: {self}")

    @property
    def interval(self) -> float:
        return 1.0 / (self.limit * self.rate_factor)

    @property
    def tolerance(self) -> float:
        return self.tolerance_intervals * self.interval


@dataclass(slots=True)
class GrantState:
    """A budget's memory: the TAT (None before the first grant) and the recent grants."""

    tat: float | None = None
    grants: deque[float] | None = None

    def wait(self, rule: GrantRule, now: float) -> float:
        """Seconds until a grant is due (0: one is due now)."""
        wait = 0.0
        if self.tat is not None:
            wait = self.tat - now
        grants = self.grants
        if grants is not None and len(grants) >= rule.limit:
            wait = max(wait, grants[-rule.limit] + rule.window - now)
        return max(wait, 0.0)

    def grant(self, rule: GrantRule, now: float) -> None:
        """Record a grant at ``now``; only when ``wait(now) == 0``."""
        interval = rule.interval
        earliest = now - rule.tolerance
        base = now if self.tat is None else max(self.tat, earliest)
        self.tat = base + interval
        if self.grants is None:
            self.grants = deque()
        self.grants.append(now)
        while len(self.grants) > rule.limit:
            self.grants.popleft()

    def take(self, rule: GrantRule, now: float) -> float:
        """A grant now (returns 0.0) or the seconds to wait before asking again."""
        wait = self.wait(rule, now)
        if wait <= 0:
            self.grant(rule, now)
        return wait

    def sane(self, rule: GrantRule, now: float) -> bool:
        """False when the state cannot come from this clock (a reboot reset it, or the
        state is damaged): times ahead of ``now`` by more than any grant could put them."""
        horizon = now + rule.window + rule.interval
        if self.tat is not None and not self.tat <= horizon:  # also catches NaN
            return False
        # Grants are recorded in time order, so the newest is the latest (one comparison,
        # not 250: this runs at every take of a host-wide budget).
        return not self.grants or self.grants[-1] <= horizon
