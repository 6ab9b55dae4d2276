"""kill -9 of `campaigner receive` in the middle of a push of 20,000 receipts, 4 times, while
the pusher retries every failure: each receipt that got a 200 is in the store at the moment
of the kill, none is stored twice, and the retried ones arrive after the restart."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from campaigner.receipts.harness import ReceiverProcess
from campaigner.receipts.store import RECEIPTS_NAME

TOKEN = "crash-test-token-0123456789"
TOTAL = 20_000
KILL_AT = (0.2, 0.4, 0.6, 0.8)  # fractions of TOTAL acknowledged when the receiver is killed
DEADLINE_S = 600


def stored_pairs(workspace: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(workspace / RECEIPTS_NAME)
    try:
        return db.execute("SELECT message_id, status FROM receipts").fetchall()
    finally:
        db.close()


def bodies(seed: int = 20) -> list[list[dict[str, object]]]:
    """20,000 distinct receipts in arrays of 1-40, with ~5 % sent again in a later array
    (CAMS repeats itself) and Read before Delivered now and then."""
    rng = random.Random(seed)
    receipts = []
    for n in range(TOTAL // 2):
        for status in ("Delivered", "Read") if rng.random() < 0.5 else ("Read", "Delivered"):
            ts = 1_700_000_000_000 + n
            receipts.append(
                {"MessageId": f"crash-{n:06d}", "Status": status, "Timestamp": ts, "To": "861380"}
            )
    out: list[list[dict[str, object]]] = []
    i = 0
    while i < len(receipts):
        size = rng.randint(1, 40)
        batch = receipts[i : i + size]
        if out and rng.random() < 0.3:
            batch = batch + rng.sample(out[-1], k=min(2, len(out[-1])))
        out.append(batch)
        i += size
    return out


@pytest.mark.slow
@pytest.mark.stress
def test_kill_9_mid_push_loses_and_doubles_nothing(tmp_path: Path) -> None:
    workspace = tmp_path / "reports"
    receiver = ReceiverProcess(workspace, TOKEN).start()
    state = {"url": receiver.url()}
    acked: set[tuple[str, str]] = set()
    checked_at_kill: list[int] = []
    killed = asyncio.Event()
    kills: list[set[tuple[str, str]]] = []

    async def push(queue: asyncio.Queue[list[dict[str, object]]]) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not queue.empty():
                batch = queue.get_nowait()
                delay = 0.05
                while True:
                    try:
                        answer = await client.post(state["url"], content=json.dumps(batch))
                        if answer.status_code == 200 and answer.json() == {"code": 0, "msg": "OK"}:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(delay)  # backoff before retrying, as CAMS does
                    delay = min(delay * 2, 1.0)
                acked.update((str(r["MessageId"]), str(r["Status"])) for r in batch)
                if not killed.is_set() and len(kills) < len(KILL_AT):
                    if len(acked) >= KILL_AT[len(kills)] * TOTAL:
                        # At once, on the heels of a 200: were that 200 sent before its
                        # commit, the commit would most likely not have happened yet.
                        assert receiver.proc is not None
                        os.kill(receiver.proc.pid, signal.SIGKILL)
                        kills.append(set(acked))
                        killed.set()

    async def killer() -> None:
        nonlocal receiver
        for round_ in range(len(KILL_AT)):
            await killed.wait()
            await asyncio.to_thread(receiver.kill)  # reaps it
            # Nothing could be acknowledged after the kill: all that was is on disk.
            at_kill = kills[round_]
            on_disk = await asyncio.to_thread(stored_pairs, workspace)
            assert at_kill <= set(on_disk), len(at_kill - set(on_disk))
            checked_at_kill.append(len(at_kill))
            receiver = await asyncio.to_thread(ReceiverProcess(workspace, TOKEN).start)
            state["url"] = receiver.url()
            killed.clear()

    async def run() -> None:
        queue: asyncio.Queue[list[dict[str, object]]] = asyncio.Queue()
        for batch in bodies():
            queue.put_nowait(batch)
        async with asyncio.timeout(DEADLINE_S):
            await asyncio.gather(killer(), *(push(queue) for _ in range(8)))

    try:
        asyncio.run(run())
    finally:
        receiver.stop()
    assert len(checked_at_kill) == len(KILL_AT)
    assert all(0 < n < TOTAL for n in checked_at_kill)
    pairs = stored_pairs(workspace)
    assert len(pairs) == len(set(pairs)) == TOTAL
    assert set(pairs) == acked
