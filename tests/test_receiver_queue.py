"""`receive --queue` with the official MNS and dybaseapi packages against the fake of those
calls (campaigner/sim/queues.py) over loopback HTTP."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from campaigner.errors import StorageError
from campaigner.receipts import queues as queues_module
from campaigner.receipts.queues import QueueSettings, consume_queues, queue_names
from campaigner.receipts.store import RECEIPTS_NAME, ReceiptStore
from campaigner.sim.queues import FakeQueues

STATUS_Q, INBOUND_Q = queue_names("1234567890")


def settings(fake: FakeQueues) -> QueueSettings:
    return QueueSettings(
        access_key_id="test-key-id",
        access_key_secret="test-key-secret",
        status_queue=STATUS_Q,
        inbound_queue=INBOUND_Q,
        mns_endpoint=fake.url,
        token_endpoint=fake.url,
        wait_s=1,
    )


def status_body(n: int, status: str = "Delivered") -> bytes:
    item = {"MessageId": f"q-{n}", "Status": status, "To": "8613800000001",
            "From": "8613900000000", "Timestamp": 1_700_000_000_000 + n}  # fmt: skip
    return json.dumps([item]).encode()


def wait_until(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def fake() -> Iterator[FakeQueues]:
    with FakeQueues() as running:
        yield running


def run_consumer(workspace: Path, fake: FakeQueues) -> tuple[threading.Thread, threading.Event]:
    ReceiptStore.open(workspace).close()  # the tables exist before the test counts rows
    stop = threading.Event()
    thread = threading.Thread(target=consume_queues, args=(workspace, settings(fake), stop))
    thread.start()
    return thread, stop


def count(workspace: Path, table: str) -> int:
    db = sqlite3.connect(workspace / RECEIPTS_NAME)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_both_queues_are_stored_then_deleted(tmp_path: Path, fake: FakeQueues) -> None:
    for n in range(30):
        fake.put(STATUS_Q, status_body(n), base64_body=n % 2 == 0)  # both encodings
    fake.put(STATUS_Q, status_body(0))  # a repeat
    inbound = {"MessageId": "in-1", "From": "8613800000001", "To": "8613900000000",
               "Type": "TEXT", "Message": "STOP", "Timestamp": 1_700_000_000_000}  # fmt: skip
    fake.put(INBOUND_Q, json.dumps([inbound]).encode(), base64_body=True)
    fake.put(STATUS_Q, b"not receipts at all")
    thread, stop = run_consumer(tmp_path, fake)
    try:
        wait_until(lambda: fake.remaining(STATUS_Q) == 1 and fake.remaining(INBOUND_Q) == 0)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert count(tmp_path, "receipts") == 30
    assert count(tmp_path, "inbound") == 1
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    assert db.execute("SELECT DISTINCT source FROM receipts").fetchall() == [("queue",)]
    db.close()
    # The opt-out arrived through the queue too.
    with ReceiptStore.open(tmp_path) as store:
        assert set(store.suppressed("8613900000000")) == {"8613800000001"}
    assert fake.expired_uses == 0


def test_credentials_are_refreshed_before_they_expire(
    tmp_path: Path, fake: FakeQueues, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.token_ttl_s = 4.0  # shorter than the refresh margin: each lasts half its life
    thread, stop = run_consumer(tmp_path, fake)
    try:
        for n in range(6):
            fake.put(STATUS_Q, status_body(n))
            wait_until(lambda n=n: count(tmp_path, "receipts") == n + 1)  # type: ignore[misc]
            time.sleep(1.0)  # spread the messages over several token lifetimes
    finally:
        stop.set()
        thread.join(timeout=60)
    assert fake.tokens_issued >= 4  # two queues, refreshed at least once each
    assert fake.expired_uses == 0


def test_nothing_is_deleted_that_was_not_stored(
    tmp_path: Path, fake: FakeQueues, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.visibility_s = 0.5  # redelivered soon after a failed attempt
    failing = {"on": True}
    real_add = ReceiptStore.add

    def add(self: ReceiptStore, *args: object, **kwargs: object) -> object:
        if failing["on"]:
            raise StorageError("the disk is full (test)")
        return real_add(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ReceiptStore, "add", add)
    monkeypatch.setattr(queues_module, "_BACKOFF_S", (0.1,))
    for n in range(5):
        fake.put(STATUS_Q, status_body(n))
    thread, stop = run_consumer(tmp_path, fake)
    try:
        wait_until(lambda: sum(m.dequeue_count for m in fake.queues[STATUS_Q]) >= 10)
        assert fake.remaining(STATUS_Q) == 5 and fake.deleted == 0
        failing["on"] = False  # the disk has room again
        wait_until(lambda: fake.remaining(STATUS_Q) == 0)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert count(tmp_path, "receipts") == 5


@pytest.mark.slow
def test_the_command_consumes_until_sigterm(tmp_path: Path, fake: FakeQueues) -> None:
    for n in range(3):
        fake.put(STATUS_Q, status_body(n), base64_body=True)
    env = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": "test-key-id",
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-key-secret"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "campaigner", "receive", "--queue", "--account-uid", "1234567890",
         "--queue-endpoint", fake.url, "--token-endpoint", fake.url, "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        wait_until(lambda: fake.remaining(STATUS_Q) == 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"Consuming {STATUS_Q} and {INBOUND_Q} at {fake.url}" in out
    assert "Stopped" in out
    assert count(tmp_path, "receipts") == 3
    assert "test-key-secret" not in out + err


def test_the_command_needs_the_account(tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "campaigner", "receive", "--queue"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "--account-uid" in ran.stderr
