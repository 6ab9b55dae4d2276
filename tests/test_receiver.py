"""The callback endpoints over real loopback HTTP (uvicorn on port 0, httpx), a real store."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from campaigner.errors import ReceiverError, StorageError
from campaigner.receipts import receiver as receiver_module
from campaigner.receipts.parse import parse_status_body
from campaigner.receipts.receiver import (
    ReceiptWriter,
    check_token,
    receiver_app,
    receiver_routes,
)
from campaigner.receipts.store import RECEIPTS_NAME

TOKEN = "test-token-0123456789abcdef"
OK = {"code": 0, "msg": "OK"}


class Server:
    """The receiver app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, workspace: Path, token: str = TOKEN, app: Starlette | None = None) -> None:
        self.workspace = workspace
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(
            app or receiver_app(workspace, token),
            access_log=False,
            log_level="warning",
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:  # uvicorn has no readiness callback
            assert time.monotonic() < deadline and self.thread.is_alive()
            time.sleep(0.01)

    def url(self, kind: str = "status", token: str = TOKEN) -> str:
        return f"http://127.0.0.1:{self.port}/cams/{kind}/{token}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        db = sqlite3.connect(self.workspace / RECEIPTS_NAME)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "reports")
    yield running
    running.stop()


def receipt(message_id: str, status: str, ts: int = 1_700_000_000_000) -> dict[str, object]:
    return {"MessageId": message_id, "Status": status, "Timestamp": ts, "To": "8613800000001",
            "From": "8613900000000"}  # fmt: skip


def test_receipts_are_stored_before_the_ok_answer(server: Server) -> None:
    body = [receipt("m1", "Sent"), receipt("m1", "Delivered"), receipt("m2", "Failed")]
    answer = httpx.post(server.url(), json=body, timeout=30)
    assert answer.status_code == 200
    assert answer.json() == OK
    # The answer came after the commit: another connection sees every row at once.
    assert server.rows("SELECT message_id, status FROM receipts ORDER BY 1, 2") == [
        ("m1", "Delivered"),
        ("m1", "Sent"),
        ("m2", "Failed"),
    ]


def test_inbound_messages_are_stored(server: Server) -> None:
    body = {"MessageId": "in-1", "From": "+86 138 0000 0001", "To": "8613900000000",
            "Type": "text", "Message": "STOP", "Timestamp ": 1_700_000_000_000}  # fmt: skip
    answer = httpx.post(server.url("inbound"), content=json.dumps(body).encode(), timeout=30)
    assert (answer.status_code, answer.json()) == (200, OK)
    assert server.rows("SELECT message_id, sender, type, text, ts_ms FROM inbound") == [
        ("in-1", "8613800000001", "TEXT", "STOP", 1_700_000_000_000)
    ]


def test_repeats_count_once_and_order_does_not_matter(server: Server) -> None:
    with httpx.Client(timeout=30) as client:
        for body in (
            [receipt("m1", "Read")],  # Read before Delivered
            [receipt("m1", "Delivered"), receipt("m1", "Read")],
            [receipt("m1", "Delivered")],
            [receipt("no-run-knows-me", "Sent")],  # kept for a later join
        ):
            answer = client.post(server.url(), json=body)
            assert (answer.status_code, answer.json()) == (200, OK)
    assert server.rows("SELECT message_id, status FROM receipts ORDER BY 1, 2") == [
        ("m1", "Delivered"),
        ("m1", "Read"),
        ("no-run-knows-me", "Sent"),
    ]


def test_odd_spellings_are_stored_never_refused(server: Server) -> None:
    body = (
        b'[{"messageid":"m1","STATUS":"delivered","Timestamp ":1700000000000,"UserId":"u1",'
        b'"FromUserId":"u2","Surprise":{"nested":true},},]'
    )
    answer = httpx.post(server.url(), content=body, timeout=30)
    assert (answer.status_code, answer.json()) == (200, OK)
    ((status, ts_ms, raw),) = server.rows("SELECT status, ts_ms, raw FROM receipts")
    assert (status, ts_ms) == ("Delivered", 1_700_000_000_000)
    assert json.loads(str(raw))["Surprise"] == {"nested": True}


@pytest.mark.parametrize(
    "body",
    [b"[{", b"\xff\xfe\x00[", b"42", b'["a"]', b"[" * 50_000 + b"]" * 50_000, b""],
)
def test_bad_bodies_are_400_with_nothing_stored(server: Server, body: bytes) -> None:
    answer = httpx.post(server.url("status"), content=body, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["code"] == 400
    assert server.rows("SELECT count(*) FROM receipts") == [(0,)]
    # ... and it keeps serving.
    assert httpx.post(server.url(), json=[receipt("m", "Sent")], timeout=30).status_code == 200


def test_a_wrong_token_is_404(server: Server) -> None:
    for url in (
        server.url(token="x" * len(TOKEN)),
        server.url(token=TOKEN + "x"),
        f"http://127.0.0.1:{server.port}/cams/status/",
        f"http://127.0.0.1:{server.port}/cams/other/{TOKEN}",
    ):
        answer = httpx.post(url, json=[receipt("m", "Sent")], timeout=30)
        assert answer.status_code == 404, url
        assert TOKEN not in answer.text
    assert server.rows("SELECT count(*) FROM receipts") == [(0,)]


def test_over_a_mib_is_413_declared_or_streamed(server: Server) -> None:
    big = b"[" + b",".join([b'{"MessageId":"m","Status":"Sent"}'] * 40_000) + b"]"
    assert len(big) > 1 << 20
    answer = httpx.post(server.url(), content=big, timeout=30)
    assert answer.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    answer = httpx.post(server.url(), content=chunks(), timeout=30)
    assert answer.status_code == 413
    assert server.rows("SELECT count(*) FROM receipts") == [(0,)]
    # Just under the limit is fine.
    pad = "x" * 55
    items = [f'{{"MessageId":"m{i:05d}","Status":"Sent","Pad":"{pad}"}}' for i in range(10_000)]
    fits = ("[" + ",".join(items) + "]").encode()
    assert (1 << 20) - 100_000 < len(fits) <= 1 << 20
    assert httpx.post(server.url(), content=fits, timeout=60).status_code == 200
    assert server.rows("SELECT count(*) FROM receipts") == [(10_000,)]
    # One more object is over the items limit: refused whole.
    over = fits[:-1] + b',{"MessageId":"one-more","Status":"Sent"}]'
    answer = httpx.post(server.url(), content=over, timeout=60)
    assert answer.status_code == 400
    assert "10001 items" in answer.json()["msg"]


def test_a_slow_body_is_408_and_others_are_answered_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(receiver_module, "RECEIPT_BODY_TIMEOUT_S", 1.0)
    server = Server(tmp_path)
    try:
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        slow.sendall(
            f"POST /cams/status/{TOKEN} HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Content-Length: 1000\r\n\r\n["
        )
        started = time.monotonic()
        answer = httpx.post(server.url(), json=[receipt("m", "Sent")], timeout=30)
        assert answer.status_code == 200
        assert time.monotonic() - started < 3
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = slow.recv(4096)
            if not data:
                break
            reply += data
        assert reply.startswith(b"HTTP/1.1 408")
        slow.close()
    finally:
        server.stop()


def test_concurrent_requests_share_commits(tmp_path: Path) -> None:
    writer = ReceiptWriter(tmp_path)

    async def push() -> None:
        await asyncio.gather(
            *(
                writer.write(parse_status_body(json.dumps(receipt(f"m{i}", "Sent")).encode()), [])
                for i in range(200)
            )  # fmt: skip
        )

    asyncio.run(push())
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    assert db.execute("SELECT count(*) FROM receipts").fetchone() == (200,)
    db.close()
    assert 1 <= writer.commits <= 50


@pytest.mark.parametrize("token", [None, "", "short", "has a space in it!!", "a/b" * 10])
def test_an_unusable_token_stops_the_start(tmp_path: Path, token: str | None) -> None:
    with pytest.raises(ReceiverError, match="CAMPAIGNER_CALLBACK_TOKEN"):
        check_token(token)
    if token is not None:
        with pytest.raises(ReceiverError):
            receiver_app(tmp_path, token)


def test_lone_surrogates_are_stored_replaced(server: Server) -> None:
    body = b'[{"MessageId":"m\\ud800","Status":"Read","Note":"\\udfff \\ud83d\\ude00"}]'
    answer = httpx.post(server.url(), content=body, timeout=30)
    assert (answer.status_code, answer.json()) == (200, OK)
    ((message_id, raw),) = server.rows("SELECT message_id, raw FROM receipts")
    assert message_id == "m?"
    assert json.loads(str(raw))["Note"] == "? \U0001f600"


def test_one_unstorable_request_does_not_fail_its_neighbours(tmp_path: Path) -> None:
    writer = ReceiptWriter(tmp_path)
    good = [parse_status_body(json.dumps(receipt(f"m{i}", "Sent")).encode()) for i in range(20)]
    # Not what the parser makes (it replaces lone surrogates): SQLite refuses to encode it.
    (bad,) = parse_status_body(b'{"MessageId":"bad","Status":"Sent"}')
    bad = replace(bad, raw="\ud800")

    async def push() -> list[object]:
        return await asyncio.gather(
            *(writer.write(receipts, []) for receipts in good[:10]),
            writer.write([bad], []),
            *(writer.write(receipts, []) for receipts in good[10:]),
            return_exceptions=True,
        )

    outcomes = asyncio.run(push())
    assert isinstance(outcomes[10], StorageError)
    assert not any(isinstance(o, BaseException) for i, o in enumerate(outcomes) if i != 10)
    db = sqlite3.connect(tmp_path / RECEIPTS_NAME)
    assert db.execute("SELECT count(*) FROM receipts").fetchone() == (20,)
    db.close()


def test_the_routes_mount_in_another_app(tmp_path: Path) -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    routes = [Route("/hello", hello), *receiver_routes(tmp_path, TOKEN)]
    server = Server(tmp_path, app=Starlette(routes=routes))
    try:
        with httpx.Client(timeout=30) as client:
            assert client.get(f"http://127.0.0.1:{server.port}/hello").text == "hello"
            answer = client.post(server.url("inbound"), json={"MessageId": "i", "Type": "TEXT"})
            assert (answer.status_code, answer.json()) == (200, OK)
            assert (
                client.post(server.url(token="wrong-token-wrong-token"), json=[]).status_code == 404
            )
        assert server.rows("SELECT message_id, type FROM inbound") == [("i", "TEXT")]
    finally:
        server.stop()
