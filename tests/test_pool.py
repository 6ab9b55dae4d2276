"""The send pool against the simulator over real loopback HTTP (and a mock for ordering)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from campaigner.journal import Journal
from campaigner.send.client import CamsClient
from campaigner.send.journaling import JournalWriter
from campaigner.send.pacing import PacerSettings
from campaigner.send.pool import Job, SendPool
from campaigner.send.transport import Http11Transport
from campaigner.signing import Credentials
from campaigner.sim.faults import FaultPlan, SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.server import serve
from campaigner.statuses import JournalState

pytestmark = pytest.mark.anyio
CREDS = Credentials("testAccessKeyId", "testAccessKeySecret")


def to(row: int) -> str:
    return f"86139{row:08d}"


def query(row: int) -> dict[str, str]:
    return {
        "ChannelType": "whatsapp",
        "From": "8613800000000",
        "Language": "en",
        "TemplateCode": "tpl",
        "TemplateParams": '{"name":"Ana"}',
        "To": to(row),
        "Type": "template",
    }


def journal_with(path: Path, rows: int) -> Journal:
    journal = Journal(path)
    journal.add_rows((r, JournalState.PENDING, to(r), None) for r in range(rows))
    return journal


async def feed(rows: int, batch: int = 40) -> AsyncIterator[list[Job]]:
    for lo in range(0, rows, batch):
        yield [Job(r, query(r)) for r in range(lo, min(rows, lo + batch))]


async def run_pool(
    url: str,
    journal: Journal,
    rows: int,
    limit: int = 40,
    max_attempts: int = 5,
    outage_limit_s: float = 300.0,
) -> SendPool:
    async with CamsClient(CREDS, endpoint=url, timeout_s=2.0) as client:
        pool = SendPool(
            client,
            JournalWriter(journal),
            pacer_settings=PacerSettings(limit=limit),
            max_attempts=max_attempts,
            outage_limit_s=outage_limit_s,
        )
        await pool.run(feed(rows))
    return pool


async def test_rate_cap_and_no_burst(tmp_path: Path) -> None:
    simulator = Simulator(SimulatorConfig(latency_ms=50, qps_limit=40))
    journal = journal_with(tmp_path / "j.sqlite", 60)
    async with serve(simulator) as url:
        pool = await run_pool(url, journal, 60, limit=40)
    assert pool.statistics().sent == 60 and pool.statistics().throttled == 0
    assert simulator.max_in_window() <= 40
    first = simulator.arrivals[0]
    assert sum(1 for t in simulator.arrivals if t - first < 0.25) <= 12  # 0.25 s at 40/s
    assert set(journal.states().values()) == {"sent"}
    journal.close()


async def test_refused_answers_are_retried_ambiguous_ones_are_not(tmp_path: Path) -> None:
    faults = FaultPlan(every={"reset_after": 7, "unavailable_503": 5})
    simulator = Simulator(SimulatorConfig(latency_ms=5, faults=faults))
    journal = journal_with(tmp_path / "j.sqlite", 30)
    async with serve(simulator) as url:
        pool = await run_pool(url, journal, 30, limit=100)
    states = journal.states()
    received = {r: simulator.received_count(to(r)) for r in range(30)}
    assert all(n <= 1 for n in received.values())  # never sent twice
    unknown = [r for r, s in states.items() if s == "unknown"]
    assert unknown and pool.statistics().unknown == len(unknown)  # reset after acceptance
    assert all(received[r] == 1 for r in unknown)
    assert pool.statistics().retries >= 1  # the 503s went again and got through
    assert all(states[r] == "sent" for r in range(30) if r not in unknown)
    journal.close()


async def test_unreachable_server_is_retry_not_unknown(tmp_path: Path) -> None:
    journal = journal_with(tmp_path / "j.sqlite", 3)
    pool = await run_pool(
        "http://127.0.0.1:9", journal, 3, max_attempts=2, outage_limit_s=0.5
    )  # nothing listens on the discard port
    assert pool.statistics().unknown == 0 and pool.statistics().sent == 0
    assert pool.stop_reason is not None and "unreachable" in pool.stop_reason
    assert set(journal.states().values()) == {"pending"}  # provably not sent: resendable
    journal.close()


async def test_stop_lets_in_flight_finish_and_sends_nothing_new(tmp_path: Path) -> None:
    simulator = Simulator(SimulatorConfig(latency_ms=300))
    journal = journal_with(tmp_path / "j.sqlite", 200)
    async with serve(simulator) as url, CamsClient(CREDS, endpoint=url) as client:
        pool = SendPool(client, JournalWriter(journal), pacer_settings=PacerSettings(limit=100))
        async with anyio.create_task_group() as tg:
            tg.start_soon(pool.run, feed(200))
            # Stop once a few requests are out (a fixed sleep saw none on a loaded machine):
            # 200 rows at 100/s take 2 s, so most are still to come.
            with anyio.fail_after(30):
                while True:  # polled: the simulator has no event to wait on
                    if len(simulator.arrivals) >= 5:
                        break
                    await anyio.sleep(0.01)
            pool.stop("test")
        arrived = len(simulator.arrivals)
    states = journal.states()
    assert pool.stop_reason == "test"
    assert 5 <= arrived < 200
    assert pool.statistics().in_flight == 0
    assert sum(1 for s in states.values() if s == "sent") == len(simulator.accepted) == arrived
    assert "intent" not in states.values()  # every started request was answered
    journal.close()


async def test_intent_is_committed_before_the_request_is_written(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = journal_with(path, 50)
    reader = sqlite3.connect(path)  # another connection: sees committed data only
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        row = int(request.url.params["To"][5:])
        (state,) = reader.execute("SELECT state FROM rows WHERE row=?", (row,)).fetchone()
        seen.append(state)
        return httpx.Response(200, json={"Code": "OK", "MessageId": f"m{row}"})

    client = CamsClient(
        CREDS, endpoint="http://127.0.0.1:9", transport=httpx.MockTransport(handler)
    )
    pool = SendPool(client, JournalWriter(journal), pacer_settings=PacerSettings(limit=200))
    await pool.run(feed(50, batch=7))
    assert seen == ["intent"] * 50
    assert set(journal.states().values()) == {"sent"}
    reader.close()
    journal.close()


async def test_an_outage_is_described_and_bounded(tmp_path: Path) -> None:
    async with serve(Simulator()) as url:
        pass  # closed again: connections to this port are refused now
    journal = journal_with(tmp_path / "j.sqlite", 20)
    seen: list[str] = []
    async with CamsClient(CREDS, endpoint=url, timeout_s=2.0) as client:
        pool = SendPool(
            client,
            JournalWriter(journal),
            pacer_settings=PacerSettings(limit=40),
            outage_limit_s=1.5,
        )

        async def watch() -> None:
            while True:
                if (text := pool.statistics().outage()) is not None:
                    seen.append(text)
                await anyio.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            with anyio.fail_after(60):  # the bound holds: the run ends by itself
                await pool.run(feed(20))
            tg.cancel_scope.cancel()
    host = url.removeprefix("http://")
    assert seen and seen[-1].startswith(f"cannot connect to {host}: connection refused; ")
    assert "s so far (giving up after 1.5 s)" in seen[-1]
    assert pool.outage_error is not None and "gave up after 1.5 s" in pool.outage_error
    assert pool.statistics().outage() is None  # the run is over: nothing is retrying any more
    assert pool.statistics().sent == pool.statistics().unknown == 0
    assert set(journal.states().values()) == {"pending"}  # nothing left: resumable
    journal.close()


async def test_the_next_batch_is_made_ready_while_the_current_one_is_sent(
    tmp_path: Path,
) -> None:
    """Getting a batch ready takes a while (reading, checking, rendering): asked for only
    once the previous batch had run out, it left a gap in the sends at every boundary."""
    journal = journal_with(tmp_path / "j.sqlite", 300)
    started_when_asked: list[int] = []
    pool_box: list[SendPool] = []

    async def slow_feed() -> AsyncIterator[list[Job]]:
        for lo in range(0, 300, 100):
            started_when_asked.append(pool_box[0].statistics().started)
            await anyio.sleep(0.2)  # preparing the batch
            yield [Job(r, query(r)) for r in range(lo, lo + 100)]

    async with serve(Simulator(SimulatorConfig(latency_ms=5))) as url:
        async with CamsClient(CREDS, endpoint=url) as client:
            pool = SendPool(client, JournalWriter(journal), pacer_settings=PacerSettings(limit=100))
            pool_box.append(pool)
            await pool.run(slow_feed())
    assert pool.statistics().sent == 300
    # Batch 2 was asked for as soon as batch 1 was taken, long before its 100 rows (1 s at
    # 100/s) had left; batch 3 likewise while batch 2 was being sent.
    assert started_when_asked[1] < 50 and started_when_asked[2] < 150, started_when_asked
    journal.close()


@pytest.fixture
def blackhole() -> Iterator[str]:
    """An address where connecting hangs: a listener whose accept queue is already full."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    filler = socket.create_connection(server.getsockname())  # takes the only queue slot
    host, port = server.getsockname()
    try:
        yield f"http://{host}:{port}"
    finally:
        filler.close()
        server.close()


async def test_a_stop_does_not_wait_for_connect_attempts(tmp_path: Path, blackhole: str) -> None:
    """SIGTERM (or the outage limit) while connections hang: the run ends now, not after
    the connect timeout."""
    journal = journal_with(tmp_path / "j.sqlite", 20)
    transport = Http11Transport(connect_timeout_s=60.0)
    async with CamsClient(CREDS, endpoint=blackhole, transport=transport) as client:
        pool = SendPool(client, JournalWriter(journal), pacer_settings=PacerSettings(limit=40))
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.run, feed(20))
                await anyio.sleep(0.5)
                pool.stop("test")
    assert pool.statistics().started == 0
    assert set(journal.states().values()) == {"pending"}
    journal.close()


class _StuckCommits(JournalWriter):
    """A journal writer whose intent commits hang from the third on, as a commit waiting
    for a slow disk does (fsync stalls of 50-300 ms happen), until ``release``."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self.commits = 0
        self.release = anyio.Event()

    async def intents(self, rows: list[int]) -> None:
        self.commits += 1
        if self.commits >= 3 and rows:
            await self.release.wait()
        await super().intents(rows)


async def test_a_slow_commit_leaves_committed_rows_to_send(tmp_path: Path) -> None:
    """While one commit of intents waits for the disk, the rows committed before it keep
    going out: about a quarter of a second of them at the full rate. (With ~100 ms ahead,
    the sends stopped after 24 rows and a 117 ms fsync cost a dip in that second.)"""
    journal = journal_with(tmp_path / "j.sqlite", 200)
    writer = _StuckCommits(journal)
    async with serve(Simulator(SimulatorConfig(latency_ms=5))) as url:
        async with CamsClient(CREDS, endpoint=url) as client:
            pool = SendPool(client, writer, pacer_settings=PacerSettings(limit=250))
            async with anyio.create_task_group() as tg:
                tg.start_soon(pool.run, feed(200, batch=200))
                with anyio.move_on_after(5):
                    while True:  # polled: the pool has no event to wait on
                        if pool.statistics().started >= 50:
                            break
                        await anyio.sleep(0.01)
                started_while_stuck = pool.statistics().started
                writer.release.set()
    assert started_while_stuck >= 50, started_while_stuck
    assert pool.statistics().sent == 200
    journal.close()
