"""~200 hostile bodies at a real `campaigner receive` process while a probe keeps pushing
good receipts: every hostile one is refused (4xx or a closed connection) or, when it is JSON
objects with odd values, stored; never a 5xx; the probe is answered within 3 s throughout;
neither phone numbers nor the token reach the log."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import random
import socket
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from campaigner.receipts.harness import ReceiverProcess
from campaigner.receipts.store import RECEIPTS_NAME

TOKEN = "hostile-test-token-0123456789"
PHONE = "8613812345678"  # in many hostile bodies: must never be logged
MAX_PROBE_S = 3.0


@dataclass(frozen=True)
class Hostile:
    kind: str
    body: bytes
    stored: bool = False  # JSON objects with odd values: stored, answered 200
    chunked: bool = False  # sent without Content-Length


def hostile_bodies(seed: int = 9) -> list[Hostile]:
    rng = random.Random(seed)
    out: list[Hostile] = []
    for _ in range(60):
        out.append(Hostile("garbage", rng.randbytes(rng.randint(1, 4000))))
    good = json.dumps([{"MessageId": f"cut-{i}", "Status": "Read", "To": PHONE} for i in range(50)])
    for _ in range(25):  # valid JSON cut short
        out.append(Hostile("truncated", good.encode()[: rng.randint(1, len(good) - 1)]))
    for depth in range(20):
        n = 2_000 + depth * 10_000
        opener = b"[" if depth % 2 else b'{"a":'
        out.append(Hostile("deep", opener * n + (b"]" if depth % 2 else b"}") * n))
    ten_mb = b"[" + b",".join([b'{"MessageId":"x","Status":"Sent"}'] * 300_000) + b"]"
    out.extend(Hostile("10MB", ten_mb) for _ in range(3))
    out.extend(Hostile("10MB", ten_mb, chunked=True) for _ in range(2))
    for value in (b"42", b'"text"', b"null", b"true", b"[1,2,3]", b'[{"a":1},"b"]', b"[[{}]]"):
        out.extend(Hostile("wrong-type", value) for _ in range(4))
    weird = (
        {"MessageId": {"nested": [PHONE]}, "Status": ["Read"], "To": PHONE},
        {"MessageId": None, "Status": 7, "Timestamp": "yesterday", "To": [PHONE]},
        {"MessageId": 1e308, "Status": True, "Timestamp": -1, "From": {"x": PHONE}},
        {"MessageId": "w" * 10_000, "Status": "", "ErrorCode": [1, {"2": 3}], "To": PHONE},
        {"": "", " ": None, "MESSAGEID": "caps", "status ": "DELIVERED", "To": PHONE},
    )
    for i in range(30):
        item = dict(weird[i % len(weird)], Marker=f"weird-{i}")
        out.append(Hostile("odd-values", json.dumps([item]).encode(), stored=True))
    for i in range(30):
        text = json.dumps([{"MessageId": f"latin-{i}", "Status": "Read", "Name": "José",
                            "To": PHONE}], ensure_ascii=False)  # fmt: skip
        encoding = "latin-1" if i % 2 else "utf-16"
        out.append(Hostile("non-utf8", text.encode(encoding)))
    for _ in range(2):
        out.append(Hostile("many-items", b"[" + b",".join([b"{}"] * 300_000) + b"]"))
    many = [{"MessageId": f"many-{i}", "Status": "Sent", "To": PHONE} for i in range(10_000)]
    out.append(Hostile("big-valid", json.dumps(many).encode()[: 1 << 20], stored=True))
    rng.shuffle(out)
    return out


async def send(url: str, item: Hostile) -> int | None:
    """The status code, or None when the server closed the connection instead."""
    async with httpx.AsyncClient(timeout=120) as client:
        try:
            if item.chunked:

                async def chunks() -> AsyncIterator[bytes]:
                    for start in range(0, len(item.body), 256 * 1024):
                        yield item.body[start : start + 256 * 1024]

                answer = await client.post(url, content=chunks())
            else:
                answer = await client.post(url, content=item.body)
        except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
            return None
        return answer.status_code


async def slow_loris(port: int, path: str, complete_headers: bool) -> bytes:
    """Headers (complete or not) and a trickle of body, then silence: what comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
    writer.write(head.encode() + (b"\r\n[" if complete_headers else b"X-Slow: "))
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), timeout=30)
    except TimeoutError:
        return b""
    finally:
        writer.close()


def probe(url: str, stop: Any, results: Any) -> None:
    """Good receipts, one at a time every 50 ms until ``stop``; their answer times to
    ``results`` (an assertion error kills the process and the test fails on the queue)."""
    latencies: list[float] = []
    with httpx.Client(timeout=60) as client:
        n = 0
        while not stop.is_set():
            started = time.monotonic()
            body = [{"MessageId": f"probe-{n}", "Status": "Delivered", "To": PHONE}]
            answer = client.post(url, json=body)
            assert answer.status_code == 200, answer.text
            latencies.append(time.monotonic() - started)
            n += 1
            time.sleep(0.05)
    results.put(latencies)


@pytest.mark.slow
def test_hostile_bodies_are_refused_and_the_receiver_keeps_answering(tmp_path: Path) -> None:
    items = hostile_bodies()
    assert len(items) >= 200
    workspace = tmp_path / "reports"
    with ReceiverProcess(workspace, TOKEN) as receiver:
        url = receiver.url("status")
        inbound_url = receiver.url("inbound")

        async def attack() -> list[tuple[Hostile, int | None]]:
            limit = asyncio.Semaphore(12)

            async def one(i: int, item: Hostile) -> tuple[Hostile, int | None]:
                async with limit:
                    return item, await send(inbound_url if i % 3 == 0 else url, item)

            path = f"/cams/status/{TOKEN}"
            lorises = [slow_loris(receiver.port, path, complete) for complete in (True, False) * 5]
            results = await asyncio.gather(*(one(i, item) for i, item in enumerate(items)),
                                           *lorises)  # fmt: skip
            answered = [r for r in results if isinstance(r, tuple)]
            loris_replies = [r for r in results if isinstance(r, bytes)]
            # A slow body is cut off with 408 after the body timeout.
            assert sum(reply.startswith(b"HTTP/1.1 408") for reply in loris_replies) == 5
            return answered

        # The probe runs in its own process: the attack's client work must not delay it.
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        results: multiprocessing.Queue[list[float]] = context.Queue()
        prober = context.Process(target=probe, args=(url, stop, results))
        prober.start()
        try:
            answered = asyncio.run(attack())
        finally:
            stop.set()
            probes = results.get(timeout=120)
            prober.join(timeout=60)
        for item, status in answered:
            if item.stored:
                assert status == 200, (item.kind, status)
            elif len(item.body) > 1 << 20:
                assert status in (413, None), (item.kind, status)
            else:
                assert status is not None and 400 <= status < 500, (item.kind, status)
        assert probes and max(probes) <= MAX_PROBE_S, max(probes)
        # Still healthy afterwards.
        assert httpx.post(url, json=[{"MessageId": "after", "Status": "Read"}]).status_code == 200
    db = sqlite3.connect(workspace / RECEIPTS_NAME)
    probes_stored = db.execute(
        "SELECT count(*) FROM receipts WHERE message_id LIKE 'probe-%'"
    ).fetchone()[0]
    markers = {
        json.loads(raw).get("Marker")
        for (raw,) in db.execute("SELECT raw FROM receipts UNION ALL SELECT raw FROM inbound")
    }
    db.close()
    assert probes_stored == len(probes)
    # Every shape of odd values was stored (repeats of one MessageId and status count once).
    stored_shapes = {int(m.split("-")[1]) % 5 for m in markers if str(m).startswith("weird-")}
    assert stored_shapes == set(range(5))
    log = receiver.errors()
    assert "refused a body" in log  # the log is there, and says what happened
    assert PHONE not in log and TOKEN not in log


def test_the_receiver_log_never_shows_the_token_or_numbers(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path, TOKEN, extra_args=["--verbose"]) as receiver:
        with httpx.Client(timeout=30) as client:
            assert client.post(receiver.url(), json=[{"MessageId": "m", "To": PHONE}]).is_success
            assert (
                client.post(receiver.url(), content=b'[{"To":"' + PHONE.encode()).status_code == 400
            )
            assert client.post(receiver.url() + "x", json=[]).status_code == 404
            assert client.get(receiver.url()).status_code == 405
        # A raw request line with the token that the HTTP parser refuses.
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as raw:
            raw.sendall(f"POST /cams/status/{TOKEN} HTTP/9.9 {PHONE}\r\n\r\n".encode())
            raw.recv(4096)
    log = receiver.errors()
    assert PHONE not in log and TOKEN not in log


@pytest.mark.slow
def test_slow_headers_are_cut_off(tmp_path: Path) -> None:
    with ReceiverProcess(tmp_path, TOKEN) as receiver:
        # One connection that never finishes its headers, one that does so on its second request.
        first = socket.create_connection(("127.0.0.1", receiver.port), timeout=60)
        first.sendall(f"POST /cams/status/{TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())
        second = socket.create_connection(("127.0.0.1", receiver.port), timeout=60)
        body = b'[{"MessageId":"m","Status":"Sent"}]'
        request = (
            f"POST /cams/status/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        second.sendall(request)
        answer = b""
        while not answer.endswith(b'{"code":0,"msg":"OK"}'):
            chunk = second.recv(4096)
            assert chunk, answer
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200")
        second.sendall(b"POST /cams/status/")  # the next request, slowly
        started = time.monotonic()
        for conn in (first, second):
            assert conn.recv(4096) == b""  # closed by the receiver, not by our timeout
            conn.close()
        assert time.monotonic() - started < 30
        # Meanwhile and afterwards others are served.
        assert httpx.post(receiver.url(), json=[{"MessageId": "n"}], timeout=30).is_success
