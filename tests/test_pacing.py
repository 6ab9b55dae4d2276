"""The pacer on virtual time: never more than `limit` starts in any window, no bursts."""

from __future__ import annotations

import random
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigner.send.pacing import Pacer, PacerSettings


def drive(
    pacer: Pacer,
    duration: float,
    lateness: list[float] | None = None,
    *,
    nap: bool = False,
    wakes: list[float] | None = None,
) -> list[float]:
    """Start as often as allowed; each wake-up may be late by a drawn amount. ``nap``:
    sleep as the send pool does (``Pacer.nap``); ``wakes`` gets each wake-up's time."""
    now, starts, i = 0.0, [], 0
    while now < duration:
        wait = pacer.delay(now)
        if wait > 0:
            late = lateness[i % len(lateness)] if lateness else 0.0
            i += 1
            now += (pacer.nap(now, wait) if nap else wait) + late
            if wakes is not None:
                wakes.append(now)
            continue
        pacer.start(now)
        starts.append(now)
    return starts


def max_in_window(starts: list[float], window: float) -> int:
    best, q = 0, deque[float]()
    for t in starts:
        q.append(t)
        while q[0] <= t - window:
            q.popleft()
        best = max(best, len(q))
    return best


def test_rate_is_held_just_under_the_limit() -> None:
    starts = drive(Pacer(PacerSettings(limit=250)), 20.0)
    rate = len(starts) / 20.0
    assert 247.5 <= rate <= 250
    assert max_in_window(starts, 1.0) <= 250


def test_late_wake_ups_cost_no_rate() -> None:
    """A loaded loop wakes a few ms late (GIL switch interval, other processes): that
    lateness is caught up, within the window guard, instead of being lost for good."""
    rng = random.Random(7)
    lateness = [rng.expovariate(1 / 0.001) for _ in range(1000)]  # 1 ms on average
    starts = drive(Pacer(PacerSettings(limit=250)), 20.0, lateness)
    assert len(starts) / 20.0 >= 247.5
    assert max_in_window(starts, 1.0) <= 250


def test_no_burst_at_start_up() -> None:
    starts = drive(Pacer(PacerSettings(limit=250)), 0.1)
    assert len(starts) <= 26  # 0.1 s at 250/s, not a bucket's worth at once
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert min(gaps) > 0.001


def test_no_burst_after_a_pause() -> None:
    pacer = Pacer(PacerSettings(limit=250))
    drive(pacer, 1.0)
    # Nobody asked for 5 s; then demand returns.
    now = 6.0
    started = []
    while now < 6.1:
        wait = pacer.delay(now)
        if wait > 0:
            now += wait
            continue
        pacer.start(now)
        started.append(now)
    assert len(started) <= 25 + 4  # 0.1 s at 250/s, and at most a few back to back
    assert sum(1 for t in started if t == started[0]) <= 4


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=300),
    lateness=st.lists(st.floats(min_value=0, max_value=0.02), min_size=1, max_size=20),
)
def test_never_more_than_limit_in_any_window(limit: int, lateness: list[float]) -> None:
    settings_ = PacerSettings(limit=limit)
    for nap in (False, True):
        starts = drive(Pacer(settings_), 3.0, lateness, nap=nap)
        # (a nanosecond less than the window: float rounding of the simulated clock)
        assert max_in_window(starts, settings_.window - 1e-9) <= limit


def test_low_rates_group_their_starts_at_no_cost_in_rate() -> None:
    """Under 100/s a wake-up waits for two starts to be due: half the wake-ups, the same
    rate (the catch-up tolerance covers the grouping), no more than the limit per window."""
    rng = random.Random(11)
    lateness = [rng.expovariate(1 / 0.003) for _ in range(1000)]  # 3 ms on average
    plain_wakes: list[float] = []
    grouped_wakes: list[float] = []
    plain = drive(Pacer(PacerSettings(limit=60)), 60.0, lateness, wakes=plain_wakes)
    grouped = drive(Pacer(PacerSettings(limit=60)), 60.0, lateness, nap=True, wakes=grouped_wakes)
    assert len(plain_wakes) / len(plain) > 0.7
    assert len(grouped_wakes) / len(grouped) < 0.55
    assert len(grouped) >= len(plain) - 0.002 * len(plain)
    assert max_in_window(grouped, 1.0) <= 60


def test_high_rates_sleep_just_the_delay() -> None:
    pacer = Pacer(PacerSettings(limit=250))
    pacer.start(0.0)
    assert pacer.nap(0.0, pacer.delay(0.0)) == pacer.delay(0.0) > 0


def test_throttling_slows_down_and_recovers() -> None:
    pacer = Pacer(PacerSettings(limit=250))
    full = pacer.rate
    pacer.throttled(1.0)
    assert pacer.rate == full * 0.97  # an isolated throttle: a small step back
    pacer.throttled(1.1)  # a burst of throttles in the same window cuts once
    assert pacer.rate == full * 0.97
    pacer.delay(30.0)
    assert pacer.rate == full


def test_sustained_throttling_backs_off_harder() -> None:
    pacer = Pacer(PacerSettings(limit=250))
    full = pacer.rate
    for k in range(1, 6):  # throttled again and again: another client shares the account
        now = 1.5 * k
        pacer.delay(now)  # recovery between throttles
        pacer.throttled(now)
    assert pacer.rate < full * 0.6


def test_retry_after_pauses_every_start() -> None:
    pacer = Pacer(PacerSettings(limit=250))
    pacer.throttled(0.0, retry_after_s=2.0)
    assert pacer.delay(0.5) >= 1.5
