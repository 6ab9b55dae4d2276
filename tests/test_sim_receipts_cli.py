"""``campaigner sandbox --callback-base`` pushing to ``campaigner receive``, both real child
processes: every message of a send gets its receipts stored, and ListChatappMessage agrees."""

from __future__ import annotations

import csv
import json
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from campaigner.cams import LIST_ACTION
from campaigner.cli import cli
from campaigner.send.client import CamsClient
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox, free_port, run, send_args
from tests.samples import sample_campaign

ORDER = {"Sent": 0, "Delivered": 1, "Read": 2, "Failed": 3}
LISTED = {"Sent": "success", "Delivered": "delivered", "Read": "read", "Failed": "failed"}


def wait_for(check: object, what: str, timeout_s: float = 60.0) -> None:
    """Poll ``check()`` until true; fail after ``timeout_s`` (a deadline, not a guess)."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def receiver(workspace: Path, token: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``campaigner receive`` as a child on ``port``."""
    proc = subprocess.Popen(
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
        stderr=subprocess.PIPE,
        env=os.environ | {"CAMPAIGNER_CALLBACK_TOKEN": token},
    )
    try:
        wait_for(lambda: listening(port) or proc.poll() is not None, "the receiver")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def stored(workspace: Path) -> dict[str, str]:
    """MessageId -> its furthest status in the workspace's store."""
    path = workspace / "receipts.sqlite"
    if not path.exists():
        return {}
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT message_id, status FROM receipts").fetchall()
    furthest: dict[str, str] = {}
    for message_id, status in rows:
        if status in ORDER and ORDER[status] > ORDER.get(furthest.get(message_id, ""), -1):
            furthest[message_id] = status
    return furthest


async def listed(url: str, business: str, numbers: list[str]) -> dict[str, str]:
    """MessageId -> MessageStatus, as the simulator's ListChatappMessage says."""
    found = {}
    async with CamsClient(Credentials(KEY_ID, SECRET), endpoint=url) as client:
        for to in numbers:
            status, body = await client.call(
                LIST_ACTION,
                {
                    "ChannelType": "whatsapp",
                    "BusinessNumber": business,
                    "UserNumber": to,
                    "Page": '{"Index":1,"Size":100}',
                },
            )
            assert status == 200, body
            for item in body["Data"]:
                found[item["MessageId"]] = item["MessageStatus"]
    return found


@pytest.mark.slow
def test_the_sandbox_pushes_every_message_s_receipts_to_campaigner_receive(
    tmp_path: Path,
) -> None:
    workspace = tmp_path / "reports"
    token = secrets.token_urlsafe(24)
    port = free_port()
    options = [
        "--callback-base",
        f"http://127.0.0.1:{port}",
        "--receipt-delay-ms",
        "10:200",
        "--push-retry-s",
        "0.2,0.5,1,2,4,8,16",
        "--seed",
        "17",
        "--duplicate-rate",
        "0.1",
    ]
    with (
        receiver(workspace, token, port),
        Sandbox(extra=options, env={"CAMPAIGNER_CALLBACK_TOKEN": token}) as sim,
    ):
        code, out, err = run(*send_args(sample_campaign(tmp_path), workspace, sim.url, None))
        assert code == 3, err  # the sample list has invalid rows on purpose
        run_dir = Path(json.loads(out)["run_dir"])
        with (run_dir / "report.csv").open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.DictReader(f) if r["MessageId"]]
        ids = {r["MessageId"] for r in rows}
        assert len(ids) > 900

        def drained() -> bool:
            push = sim.stats().get("push")
            return isinstance(push, dict) and push["outstanding"] == 0

        wait_for(drained, "every receipt pushed", timeout_s=120)
        push = sim.stats()["push"]
        assert isinstance(push, dict)
        assert push["acknowledged"] == push["scheduled"] and push.get("given_up", 0) == 0
        assert 1 < push["max_batch"] <= 100
        distinct = push["scheduled"] - push["duplicates"]
        assert 0.05 * distinct < push["duplicates"] < 0.15 * distinct  # --duplicate-rate 0.1
        furthest = stored(workspace)
        assert set(furthest) == ids
        counts = {s: list(furthest.values()).count(s) for s in ORDER}
        assert counts["Failed"] > 5 and counts["Read"] > 300 and counts["Delivered"] > 200
        numbers = sorted({r["To"] for r in rows if r["To"]})
        assert numbers
        states = anyio.run(listed, sim.url, "8613800000000", numbers)
    assert {m: LISTED[s] for m, s in furthest.items()} == {m: states[m] for m in furthest}
    with sqlite3.connect(workspace / "receipts.sqlite") as db:
        replies = db.execute("SELECT COUNT(*) FROM inbound").fetchone()[0]
    assert replies > 10


def test_bad_receipt_options_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CAMPAIGNER_CALLBACK_TOKEN", raising=False)
    runner = CliRunner()
    cases = [
        (["--callback-base", "http://127.0.0.1:9"], "--callback-token"),
        (["--callback-base", "ftp://x", "--callback-token", "t" * 20], "http(s) URL"),
        (["--receipt-delay-ms", "500"], "MIN:MAX"),
        (["--receipt-delay-ms", "9:1"], "MIN is above MAX"),
        (["--receipt-delay-ms", "a:1"], "must be a number"),
        (["--deliver-rate", "1.5"], "--deliver-rate"),
        (
            ["--callback-base", "http://h", "--callback-token", "t" * 20, "--push-retry-s", "1,x"],
            "--push-retry-s",
        ),
    ]
    for args, words in cases:
        result = runner.invoke(cli, ["sandbox", "--port", "0", *args])
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, (args, result.output)


def test_the_receipt_options_are_described() -> None:
    result = CliRunner().invoke(cli, ["sandbox", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "%%" not in text  # click prints help as written: no printf escapes
    options = "callback-base callback-token deliver-rate read-rate fail-rate reply-rate"
    more = ("receipt-delay-ms", "push-retry-s", "duplicate-rate", "disorder-rate")
    for option in (*options.split(), *more):
        assert f"--{option}" in text
    assert "CAMPAIGNER_CALLBACK_TOKEN" in text
