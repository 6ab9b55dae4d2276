"""Rate budgets without a server: the grant rule on virtual time, the in-process budget, and
the host-wide budget's file shared by several objects and real processes."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from campaigner.budget import (
    GrantRule,
    GrantState,
    HostBudget,
    LocalBudget,
    budget_key,
    check_budget,
    chosen_budget,
    open_budget,
    take_grant,
)
from campaigner.budget.host import decode_state, encode_state
from campaigner.errors import BudgetUnavailable, RateBudgetError
from campaigner.send.pacing import max_in_window


def drive(take, duration: float, lateness: float = 0.0) -> list[float]:  # type: ignore[no-untyped-def]
    """Ask for grants as often as allowed on virtual time; each wake-up ``lateness`` late."""
    now, grants = 0.0, []
    while now < duration:
        wait = take(now)
        if wait > 0:
            now += wait + lateness
            continue
        grants.append(now)
    return grants


def test_the_rule_holds_the_rate_just_under_the_limit_and_never_over_it() -> None:
    rule, state = GrantRule(limit=250), GrantState()
    grants = drive(lambda now: state.take(rule, now), 20.0)
    assert 247.5 <= len(grants) / 20.0 <= 250
    assert max_in_window(grants, 1.0) <= 250


def test_late_askers_lose_no_rate_and_never_burst_over_the_limit() -> None:
    rule, state = GrantRule(limit=250), GrantState()
    grants = drive(lambda now: state.take(rule, now), 20.0, lateness=0.002)
    assert len(grants) / 20.0 >= 247.5
    assert max_in_window(grants, 1.0) <= 250


def test_no_burst_at_start_up_or_after_a_pause() -> None:
    rule, state = GrantRule(limit=250), GrantState()
    grants = drive(lambda now: state.take(rule, now), 0.1)
    assert len(grants) <= 26
    later = drive(lambda now: state.take(rule, now + 5.0), 0.1)  # 5 s idle, then 0.1 s
    assert len(later) <= 26 + rule.tolerance_intervals + 1  # a few back to back, no bucket


def test_three_askers_sharing_one_state_get_the_limit_together() -> None:
    """Three processes asking in turn, each a bit late in its own way, share one rule."""
    rule, state = GrantRule(limit=250), GrantState()
    nows, grants = [0.0, 0.0005, 0.001], []
    while min(nows) < 10.0:
        i = nows.index(min(nows))
        wait = state.take(rule, nows[i])
        if wait > 0:
            nows[i] += wait + 0.0003 * (i + 1)
        else:
            grants.append(nows[i])
    grants.sort()
    assert len(grants) / 10.0 >= 245
    assert max_in_window(grants, 1.0) <= 250


def test_a_rule_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="grant rule"):
        GrantRule(limit=0)


def test_state_from_another_clock_is_not_sane() -> None:
    rule = GrantRule(limit=10)
    assert GrantState(tat=5.0).sane(rule, now=5.0)
    assert not GrantState(tat=500.0).sane(rule, now=5.0)  # e.g. the host rebooted
    assert not GrantState(tat=math.nan).sane(rule, now=5.0)


def test_the_budget_key_depends_on_endpoint_key_and_api_and_shows_neither() -> None:
    keys = {
        budget_key("https://cams.example", "AKID1", "SendChatappMessage"),
        budget_key("https://cams.example/", "AKID1", "SendChatappMessage"),  # same endpoint
        budget_key("https://cams.example", "AKID2", "SendChatappMessage"),
        budget_key("https://cams.example", "AKID1", "ListChatappMessage"),
        budget_key("http://127.0.0.1:9", "AKID1", "SendChatappMessage"),
    }
    assert len(keys) == 4
    assert all("AKID" not in k for k in keys)


@pytest.mark.parametrize(
    ("spec", "ok"),
    [
        ("host", True),
        ("local", True),
        (" redis://127.0.0.1:6379/0 ", True),
        ("redis://cache.internal/3", True),
        ("rediss://:pw@cache.internal:6380/0", True),
        ("redis://127.0.0.1:99999/0", False),
        ("redis://127.0.0.1:6379/x", False),
        ("redis:///0", False),
        ("http://127.0.0.1:6379/0", False),
        ("hostwide", False),
        ("", False),
    ],
)
def test_budget_specs(spec: str, ok: bool) -> None:
    if ok:
        assert check_budget(spec) == spec.strip()
    else:
        with pytest.raises(RateBudgetError, match="--rate-budget must be"):
            check_budget(spec)


def test_a_refused_spec_never_shows_a_password() -> None:
    with pytest.raises(RateBudgetError) as caught:
        check_budget("redis://:s3cret@127.0.0.1:notaport/0")
    assert "s3cret" not in str(caught.value)


def test_the_option_wins_over_the_environment_which_wins_over_host() -> None:
    env = {"CAMPAIGNER_RATE_BUDGET": "redis://127.0.0.1:6379/1"}
    assert chosen_budget("local", env) == "local"
    assert chosen_budget(None, env) == "redis://127.0.0.1:6379/1"
    assert chosen_budget(None, {}) == "host"
    with pytest.raises(RateBudgetError, match="^CAMPAIGNER_RATE_BUDGET must be host, local"):
        chosen_budget(None, {"CAMPAIGNER_RATE_BUDGET": "nonsense"})


def test_the_host_file_round_trips_and_damage_starts_afresh() -> None:
    rule = GrantRule(limit=5)
    state = GrantState()
    for t in (1.0, 1.01, 1.02):
        state.grant(rule, t)
    data = encode_state(rule, state)
    again = decode_state(rule, data)
    assert again is not None
    assert again.tat == state.tat
    assert list(again.grants or ()) == [1.0, 1.01, 1.02]
    flipped = bytearray(data)
    flipped[20] ^= 0xFF
    assert decode_state(rule, bytes(flipped)) is None  # CRC
    assert decode_state(rule, data[:-1]) is None
    assert decode_state(rule, b"") is None
    assert decode_state(GrantRule(limit=6), data) is None  # another rule's file


@pytest.mark.anyio
async def test_two_host_budgets_on_one_file_share_the_rule(tmp_path: Path) -> None:
    clock = [100.0]
    rule = GrantRule(limit=10)
    a = HostBudget(tmp_path / "b.budget", rule, clock=lambda: clock[0])
    b = HostBudget(tmp_path / "b.budget", rule, clock=lambda: clock[0])
    try:
        grants = 0
        for step in range(400):  # 4 s in 10 ms steps, both asking at every step
            clock[0] = 100.0 + step * 0.01
            for budget in (a, b):
                if await budget.take() == 0:
                    grants += 1
        assert 36 <= grants <= 41  # ~10/s together over 4 s, not 20/s
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.anyio
async def test_a_damaged_or_rebooted_host_file_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "b.budget"
    rule = GrantRule(limit=10)
    path.write_bytes(b"garbage")
    budget = HostBudget(path, rule, clock=lambda: 50.0)
    try:
        assert await budget.take() == 0
        # A file written before a reboot: its times are far ahead of the clock now.
        future = GrantState()
        future.grant(rule, 10_000.0)
        path.write_bytes(encode_state(rule, future))
        assert await budget.take() == 0
    finally:
        await budget.aclose()


def test_an_unusable_state_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RateBudgetError, match="cannot open the host-wide rate budget"):
        HostBudget(blocker / "budgets" / "k.budget", GrantRule())


def test_open_budget_falls_back_to_this_process_when_the_state_folder_is_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    said: list[str] = []
    budget = open_budget(
        "host", endpoint="https://e", access_key_id="k", action="a", limit=5, say=said.append
    )
    assert isinstance(budget, LocalBudget)
    assert said and "warning" in said[0]


def test_the_host_budget_lives_in_the_state_folder_under_a_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    budget = open_budget(
        "host", endpoint="https://e", access_key_id="AKIDSECRETISH", action="a", limit=5, say=print
    )
    assert isinstance(budget, HostBudget)
    files = list((tmp_path / "campaigner" / "budgets").iterdir())
    assert [f.name for f in files] == [budget_key("https://e", "AKIDSECRETISH", "a") + ".budget"]
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    anyio.run(budget.aclose)


_HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
@pytest.mark.stress
def test_a_process_killed_holding_the_lock_leaves_nothing_stuck(tmp_path: Path) -> None:
    path = tmp_path / "b.budget"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    budget = HostBudget(path, GrantRule(limit=10))
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        wait = budget.take_now()
        assert 0 < wait < 0.01  # busy: a short wait, not a stalled loop
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=30)

        async def grant() -> None:
            with anyio.fail_after(30):
                await take_grant(budget)  # the kernel dropped the lock with the process

        anyio.run(grant)
    finally:
        anyio.run(budget.aclose)
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)


_GRANTS = """
import json, sys, time
from pathlib import Path
from campaigner.budget import GrantRule, HostBudget
budget = HostBudget(Path(sys.argv[1]), GrantRule(limit=20))
print("ready", flush=True)
sys.stdin.readline()  # all start together
times, end = [], time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    wait = budget.take_now()
    if wait > 0:
        time.sleep(wait)
    else:
        times.append(budget.granted_at)
print(json.dumps(times), flush=True)
"""


@pytest.mark.slow
def test_processes_sharing_the_host_budget_never_exceed_it_together(tmp_path: Path) -> None:
    """The guarantee itself, free of any scheduling noise: the grant times, on the host's
    clock, of three processes asking as fast as allowed, never more than the limit in any
    second, and about the limit together (each alone would take all of it)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _GRANTS, str(tmp_path / "b.budget"), "4"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    grants = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        grants.append(json.loads(out))
    assert all(grants)  # each got some
    together = sorted(t for times in grants for t in times)
    assert max_in_window(together, 1.0) <= 20
    assert len(together) <= 20 * 5  # 4 s and a window's worth, not 3 × 80


class _Flaky:
    """A budget that cannot answer ``failures`` times, then grants."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    @property
    def where(self) -> str:
        return "flaky"

    async def take(self) -> float:
        self.calls += 1
        if self.calls <= self.failures:
            raise BudgetUnavailable("flaky is away")
        return 0.0

    async def aclose(self) -> None:
        pass


@pytest.mark.anyio
async def test_take_grant_waits_out_an_unavailable_budget_and_says_so() -> None:
    heard: list[str | None] = []
    flaky = _Flaky(3)
    with anyio.fail_after(30):
        await take_grant(flaky, unavailable=heard.append, retry_s=0.01)
    assert flaky.calls == 4
    assert heard == ["flaky is away"] * 3 + [None]


@pytest.mark.anyio
async def test_the_local_budget_spaces_grants() -> None:
    budget = LocalBudget(GrantRule(limit=50))
    started = time.monotonic()
    with anyio.fail_after(30):
        for _ in range(30):
            await take_grant(budget)
    assert time.monotonic() - started >= 29 / (50 * 0.996) - 3 / 50 - 0.01


def test_the_progress_line_says_when_the_budget_holds_the_sending() -> None:
    from campaigner.options import SendProgress
    from campaigner.send.stats import PoolStats

    held = PoolStats(
        budget_unavailable_since=time.monotonic() - 12,
        budget_error="rate budget redis://10.0.0.5:6379/0 unreachable (ConnectionError: ...)",
    )
    line = SendProgress.of(held, 100).outage
    assert line is not None
    assert line.startswith("rate budget redis://10.0.0.5:6379/0 unreachable")
    assert "sending paused for 12 s until it answers" in line
    assert SendProgress.of(PoolStats(), 100).outage is None
