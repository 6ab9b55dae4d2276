"""Sends in one shared event loop (the web app's): a run's long file work (reading and
checking its list, the report) happens in worker threads, so the loop goes on serving the
other runs meanwhile."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from campaigner import api
from campaigner.sim.harness import Sandbox
from campaigner.statuses import Status
from tests.operator_kit import send_options, write_campaign

ROWS = 200_000


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(latency_ms=0) as sandbox:
        yield sandbox


def test_a_long_lists_file_work_leaves_the_shared_loop_free(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    options = send_options(tmp_path, sandbox, limit=3)
    write_campaign(tmp_path, [f"86139{n:08d}" for n in range(ROWS)])
    loop = api.SharedLoop()
    gaps: list[float] = []  # between the ticks of another task in the same loop
    ticking, done = threading.Event(), threading.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now
            ticking.set()

    ticker = threading.Thread(target=loop.run, args=(tick,))
    ticker.start()
    try:
        assert ticking.wait(10)
        started = time.monotonic()
        result = api.send(options, loop=loop)
        took = time.monotonic() - started
    finally:
        done.set()
        ticker.join(10)
        loop.close()

    assert result.tally.count(Status.SENT) == 3
    assert result.tally.rows == ROWS + 1  # the phones and one invalid row
    # The list is read and checked, then the report written, each taking seconds; a task
    # of the same loop never waited anything like that long.
    assert max(gaps) < took / 5, (max(gaps), took)


def test_a_send_in_another_thread_needs_no_control(tmp_path: Path, sandbox: Sandbox) -> None:
    # Signals reach only the main thread; a send elsewhere used to fail trying to watch them.
    results: list[api.SendResult] = []
    sender = threading.Thread(
        target=lambda: results.append(api.send(send_options(tmp_path, sandbox)))
    )
    sender.start()
    sender.join(60)
    [result] = results
    assert result.tally.count(Status.SENT) == 5
