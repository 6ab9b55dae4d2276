"""The Redis budget and the run lease against a real ``redis-server`` on loopback
(tests/redis_server.py): grants shared by two clients, an outage and a return, the lease."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from campaigner.budget import GrantRule, open_budget, take_grant
from campaigner.budget.lease import RunLease
from campaigner.budget.redis import RedisBudget, connect, redis_where
from campaigner.errors import BudgetUnavailable, RateBudgetError
from campaigner.send.pacing import max_in_window
from tests.redis_server import RedisServer, require_redis

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", require_redis()) as server:
        yield server


async def _grab(budget: RedisBudget, until: float, into: list[float]) -> None:
    while time.monotonic() < until:
        await take_grant(budget)
        into.append(time.monotonic())


def test_two_clients_share_one_budget(redis_server: RedisServer) -> None:
    rule = GrantRule(limit=20)
    grants: list[float] = []

    async def main() -> None:
        a = RedisBudget(redis_server.url, "k1", rule)
        b = RedisBudget(redis_server.url, "k1", rule)
        other = RedisBudget(redis_server.url, "k2", rule)  # another account: its own
        others: list[float] = []
        until = time.monotonic() + 3.0
        async with anyio.create_task_group() as tg:
            tg.start_soon(_grab, a, until, grants)
            tg.start_soon(_grab, b, until, grants)
            tg.start_soon(_grab, other, until, others)
        for budget in (a, b, other):
            await budget.aclose()
        assert len(others) >= 40  # not slowed by k1's grants

    anyio.run(main)
    grants.sort()
    assert 40 <= len(grants) <= 20 * 3 + 21  # ~20/s together, not 40/s
    assert max_in_window(grants, 0.95) <= 20  # spaced 50 ms: a few ms of jitter cannot bunch


@pytest.mark.stress
def test_redis_gone_means_no_grant_until_it_returns(redis_server: RedisServer) -> None:
    async def main() -> None:
        budget = open_budget(
            redis_server.url,
            endpoint="http://127.0.0.1:1",
            access_key_id="AK",
            action="SendChatappMessage",
            limit=50,
            say=print,
        )
        assert await budget.take() == 0
        redis_server.stop()
        with anyio.fail_after(20), pytest.raises(BudgetUnavailable, match="unreachable"):
            await budget.take()
        heard: list[str | None] = []

        async def restart_later() -> None:
            await anyio.sleep(1.0)
            await anyio.to_thread.run_sync(redis_server.start)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(restart_later)
                await take_grant(budget, unavailable=heard.append, retry_s=0.1)
        assert heard[0] is not None and "redis://127.0.0.1:" in heard[0]
        assert heard[-1] is None  # it answered again
        await budget.aclose()

    anyio.run(main)


def test_a_redis_url_with_a_password_is_never_shown() -> None:
    assert (
        redis_where("redis://user:s3cret@cache.internal:6380/2") == "redis://cache.internal:6380/2"
    )


def test_the_run_lease_keeps_a_second_process_off_the_run(redis_server: RedisServer) -> None:
    async def main() -> None:
        first = RunLease(connect(redis_server.url), redis_server.url, "spring-20261129T2100")
        second = RunLease(connect(redis_server.url), redis_server.url, "spring-20261129T2100")
        await first.acquire()
        with pytest.raises(RateBudgetError, match="is being sent by another process") as caught:
            await second.acquire()
        assert first.holder in str(caught.value)
        assert await first.renew() is True
        await first.release()
        third = RunLease(connect(redis_server.url), redis_server.url, "spring-20261129T2100")
        await third.acquire()  # free again
        # A folder of the same name in another workspace, created at another moment: its own.
        namesake = RunLease(
            connect(redis_server.url), redis_server.url, "spring-20261129T2100", created="1.5"
        )
        await namesake.acquire()
        await namesake.release()
        await third.release()

    anyio.run(main)


@pytest.mark.stress
def test_a_lease_lost_to_another_process_is_reported(redis_server: RedisServer) -> None:
    async def main() -> None:
        lease = RunLease(connect(redis_server.url), redis_server.url, "r", lifetime_s=0.6)
        await lease.acquire()
        # Redis restarted empty: the holder takes its lease back on the next renewal.
        redis_server.stop()
        assert await lease.renew() is None
        await anyio.to_thread.run_sync(redis_server.start)
        assert await lease.renew() is True  # a new connection to the restarted server
        # Another process holds it now (its key replaced ours): the holder hears so.
        intruder = connect(redis_server.url)
        await intruder.set(lease.key, "someone else", px=60_000)
        await intruder.aclose()
        heard: list[str] = []
        with anyio.fail_after(20):
            await lease.keep(heard.append)
        assert heard and "was taken over" in heard[0]
        assert lease.lost == heard[0]
        await lease.release()

    anyio.run(main)
