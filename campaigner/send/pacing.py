"""Request pacing, pure: when may the next request start?

Two rules, both needed (docs/performance.md#pacing):

1. A GCRA spacing at ``rate`` with a small tolerance, so starts are evenly spread with
   no burst at start-up and at most a few back to back after a pause, and a late wake-up
   may catch up by at most ``tolerance``. Lateness beyond it is lost for good: the guard
   below keeps the rate at its cap, so there is no slack to make it up later. A few ms
   late is common (a busy loop, a thread holding the GIL for its 5 ms switch interval, a
   loaded machine): with half an interval of tolerance, 2 ms of lateness on average cost
   16 % of the rate; with three intervals, nothing.
2. A sliding-window guard on the *actual* start times: never more than ``limit`` starts
   in any ``window`` seconds. ``window`` is a little over 1 s so that a few ms of network
   jitter cannot bunch ``limit + 1`` requests into one server-side second.

On top, AIMD: a throttling answer cuts the rate (multiplicative decrease, at most once
per window) and clean time adds it back linearly, so a run shares an account politely
with other traffic. Time is a float in seconds from a monotonic clock, passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from campaigner.limits import MAX_QPS

__all__ = ("Pacer", "PacerSettings", "max_in_window")


@dataclass(frozen=True, slots=True)
class PacerSettings:
    limit: int = MAX_QPS  # starts allowed in any window (the account's QPS)
    rate_factor: float = 0.996  # spacing rate = limit * factor
    window: float = 1.007  # guard window, seconds
    tolerance_intervals: float = 3.0  # catch-up allowed after a late wake-up (12 ms at 250/s)
    # Rate multipliers for the 1st, 2nd, 3rd... throttled window in a row: an isolated
    # throttle (network jitter bunching a few requests) costs little, while sustained
    # throttling (another client on the account) backs off hard.
    decreases: tuple[float, ...] = (0.97, 0.9, 0.8, 0.7)
    streak_s: float = 5.0  # throttles closer than this continue a streak
    recover_per_s: float = 0.1  # fraction of the full rate regained per clean second
    min_rate: float = 1.0
    # Under this rate a sleep lasts until ``group_intervals`` starts are due (at most
    # ``group_max_s``), and they go in one wake-up: fewer wake-ups (4 runs at 60/s: 3.4 per
    # message before, 2-2.7 with it; ~3 % of the web server's CPU, measured side by side),
    # and the tolerance above lets the grouped starts catch up, so the rate is the same.
    group_below_rate: float = 100.0
    group_intervals: float = 2.0
    group_max_s: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.group_intervals < self.tolerance_intervals:
            raise ValueError("grouped starts must stay within the catch-up tolerance")


@dataclass
class Pacer:
    settings: PacerSettings = field(default_factory=PacerSettings)
    _starts: deque[float] = field(default_factory=deque)
    _tat: float | None = None  # theoretical arrival time of the next start
    _rate: float = 0.0
    _last_cut: float = float("-inf")
    _streak: int = 0
    _last_update: float | None = None
    _paused_until: float = float("-inf")

    def __post_init__(self) -> None:
        self._rate = self.max_rate

    @property
    def max_rate(self) -> float:
        return self.settings.limit * self.settings.rate_factor

    @property
    def rate(self) -> float:
        return self._rate

    def _recover(self, now: float) -> None:
        if self._last_update is not None and self._rate < self.max_rate:
            gained = (now - self._last_update) * self.settings.recover_per_s * self.max_rate
            self._rate = min(self.max_rate, self._rate + gained)
        self._last_update = now

    def delay(self, now: float) -> float:
        """Seconds to wait before a start is allowed at ``now`` (0 means start now)."""
        self._recover(now)
        wait = self._paused_until - now
        if self._tat is not None:
            wait = max(wait, self._tat - now)
        s = self.settings
        if len(self._starts) >= s.limit:
            wait = max(wait, self._starts[-s.limit] + s.window - now)
        return max(wait, 0.0)

    def nap(self, now: float, wait: float) -> float:
        """How long to sleep for a ``delay(now)`` of ``wait`` (> 0): that, or at low rates
        until ``group_intervals`` starts are due (see ``PacerSettings.group_below_rate``)."""
        s = self.settings
        if self._rate >= s.group_below_rate or self._tat is None:
            return wait
        grouped = self._tat - now + (s.group_intervals - 1) / self._rate
        return max(wait, min(grouped, s.group_max_s))

    def start(self, now: float) -> None:
        """Record a start at ``now``; call only when ``delay(now) == 0``."""
        interval = 1.0 / self._rate
        earliest = now - self.settings.tolerance_intervals * interval
        base = now if self._tat is None else max(self._tat, earliest)
        self._tat = base + interval
        self._starts.append(now)
        while len(self._starts) > self.settings.limit:
            self._starts.popleft()

    def throttled(self, now: float, retry_after_s: float | None = None) -> None:
        """The server said slow down."""
        s = self.settings
        if now - self._last_cut >= s.window:  # at most one cut per window
            self._streak = self._streak + 1 if now - self._last_cut < s.streak_s else 1
            factor = s.decreases[min(self._streak, len(s.decreases)) - 1]
            self._rate = max(s.min_rate, self._rate * factor)
            self._last_cut = now
            self._last_update = now
        if retry_after_s:
            self._paused_until = max(self._paused_until, now + retry_after_s)

    def pause(self, now: float, seconds: float) -> None:
        """Hold every start for a while (e.g. the server is unreachable)."""
        self._paused_until = max(self._paused_until, now + seconds)


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most ``times`` (sorted) in any half-open ``[t, t + window)``: what a server's
    sliding-second rate limit sees."""
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
