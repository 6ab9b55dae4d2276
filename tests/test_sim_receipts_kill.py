"""The pusher against a receiver killed with SIGKILL mid-push of 20,000 receipts: every receipt
that got a 200 is in the store, none is stored twice, and after the restart the retried ones
arrive too."""

from __future__ import annotations

import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from campaigner.sim.fate import ReceiptPlan, fate_of
from campaigner.sim.harness import free_port
from campaigner.sim.push import Pusher, PushTarget
from campaigner.sim.records import AcceptedSend
from tests.test_sim_receipts_cli import listening

PLAN = ReceiptPlan(delay_ms=(0.0, 1500.0))
SEED = 31


def _record(n: int, now: float) -> AcceptedSend:
    return AcceptedSend(
        message_id=f"{n:024x}",
        request_id=f"R{n}",
        to=f"86139{n:08d}",
        from_="8613800000000",
        channel_type="whatsapp",
        type="template",
        template_code="744c4b5c79c9432497a075bdfca3****",
        language="en",
        message_type=None,
        task_id=None,
        access_key_id="testAccessKeyId",
        params_hash="0" * 64,
        received_monotonic=now,
        received_wall=time.time(),
        fault=None,
    )


def _start(workspace: Path, token: str, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaigner",
            "receive",
            "--port",
            str(port),
            "--out",
            str(workspace),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"CAMPAIGNER_CALLBACK_TOKEN": token},
    )


async def _until(check: object, what: str, timeout_s: float) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


@pytest.mark.slow
@pytest.mark.stress
@pytest.mark.anyio
async def test_receipts_survive_a_receiver_killed_mid_push(tmp_path: Path) -> None:
    workspace = tmp_path / "reports"
    token = secrets.token_urlsafe(24)
    port = free_port()
    acknowledged: set[tuple[str, str]] = set()

    def note(kind: str, bodies: list[dict[str, object]]) -> None:
        for body in bodies:
            status = str(body["Status"]) if kind == "status" else "inbound"
            acknowledged.add((str(body["MessageId"]), status))

    # Retries long enough to outlast a restart on a busy machine; never given up here.
    target = PushTarget(f"http://127.0.0.1:{port}", token, retry_s=(0.2, 0.5, 1, 2, 4, 8, 15, 30))
    pusher = Pusher(target, PLAN, SEED, on_acknowledged=note)
    now = time.monotonic()
    records = [_record(n, now) for n in range(8000)]
    expected = set()
    for rec in records:
        for event in fate_of(rec, PLAN, SEED).events:
            if event.kind == "status":
                expected.add((rec.message_id, str(event.status)))
            else:
                expected.add((str(event.inbound_id), "inbound"))
    proc = _start(workspace, token, port)
    try:
        await _until(lambda: listening(port) or proc.poll() is not None, "the receiver", 60)
        assert proc.poll() is None
        async with anyio.create_task_group() as tg:
            tg.start_soon(pusher.run)
            for rec in records:
                pusher.schedule(rec)
            assert pusher.counters["scheduled"] >= 20_000
            await _until(lambda: pusher.counters["acknowledged"] >= 4000, "4,000 receipts", 120)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            killed_at = pusher.counters["acknowledged"]
            await _until(lambda: pusher.counters["posts_failed"] > 0, "a failed post", 60)
            proc = _start(workspace, token, port)
            assert await pusher.drain(300)
            tg.cancel_scope.cancel()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    stats = pusher.stats()
    assert killed_at < stats["scheduled"]
    assert stats.get("given_up", 0) == 0 and stats["retried"] > 0
    assert stats["acknowledged"] == stats["scheduled"]
    with sqlite3.connect(workspace / "receipts.sqlite") as db:
        receipts = db.execute("SELECT message_id, status FROM receipts").fetchall()
        inbound = db.execute("SELECT message_id FROM inbound").fetchall()
    stored = [(m, s) for m, s in receipts] + [(m, "inbound") for (m,) in inbound]
    assert len(stored) == len(set(stored))  # none stored twice
    assert acknowledged <= set(stored)  # every 200 is in the store
    assert set(stored) == expected  # and the retried ones arrived after the restart
