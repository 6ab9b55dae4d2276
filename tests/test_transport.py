"""Http11Transport against raw loopback servers: framing, keep-alive, timeouts, errors."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from campaigner.cams import Reply, ReplyKind
from campaigner.send.client import CamsClient
from campaigner.send.http11 import request_bytes
from campaigner.send.transport import Http11Transport
from campaigner.signing import Credentials

pytestmark = pytest.mark.anyio

Answer = Callable[[bytes], bytes | None]  # request head -> raw answer (None: close)


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that answers each request head with bytes chosen by ``answer``."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                heads.append(head)
                out = answer(head)
                if out is None:
                    break
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()


def ok(body: bytes = b'{"Code":"OK"}', extra: bytes = b"") -> Answer:
    return lambda _: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%b\r\n%b" % (len(body), extra, body)


async def test_content_length_and_keep_alive() -> None:
    async with raw_server(ok()) as (url, heads):
        transport = Http11Transport()
        for _ in range(3):
            r = await transport.handle_async_request(httpx.Request("POST", f"{url}/?a=b%20c"))
            assert r.status_code == 200 and r.content == b'{"Code":"OK"}'
        await transport.aclose()
    assert transport.connections_opened == 1  # one connection, reused
    assert heads[0].startswith(b"POST /?a=b%20c HTTP/1.1\r\n")
    assert b"Content-Length: 0\r\n" in heads[0]


async def test_chunked_body_and_connection_close() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n"
    )
    async with raw_server(lambda _: chunked) as (url, _):
        transport = Http11Transport()
        r1 = await transport.handle_async_request(httpx.Request("GET", url))
        r2 = await transport.handle_async_request(httpx.Request("GET", url))
        await transport.aclose()
    assert r1.content == r2.content == b"abcdefg"
    assert "transfer-encoding" not in r1.headers
    assert transport.connections_opened == 2  # Connection: close is honoured


async def test_body_until_close() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    transport = Http11Transport()
    response = await transport.handle_async_request(httpx.Request("GET", url))
    assert response.content == b"all of it"
    assert transport.open_connections == 0  # not reusable
    await transport.aclose()
    server.close()


async def test_read_timeout_after_write() -> None:
    async with raw_server(lambda _: b"") as (url, heads):  # reads, never answers
        transport = Http11Transport(read_timeout_s=0.2)
        with pytest.raises(httpx.ReadTimeout):
            await transport.handle_async_request(httpx.Request("POST", url))
        await transport.aclose()
    assert len(heads) == 1  # it was written: the outcome is unknown, not "not sent"


async def test_disconnect_after_write_is_not_a_connect_error() -> None:
    async with raw_server(lambda _: None) as (url, _):
        transport = Http11Transport()
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.handle_async_request(httpx.Request("POST", url))
        await transport.aclose()


async def test_connection_refused_is_a_connect_error() -> None:
    async with raw_server(ok()) as (url, _):
        pass  # closed again: nothing listens on that port now
    transport = Http11Transport()
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("POST", url))
    with pytest.raises(httpx.ConnectError) as info:
        await transport.ready(httpx.URL(url))
    await transport.aclose()
    # The words a user sees in the log while the run keeps retrying.
    assert str(info.value) == f"cannot connect to {url[7:]}: connection refused"


async def test_ready_then_start_writes_synchronously() -> None:
    async with raw_server(ok()) as (url, heads):
        transport = Http11Transport(spare=2)
        await transport.ready(httpx.URL(url))
        assert transport.idle_count(httpx.URL(url)) >= 1
        host = httpx.URL(url).netloc
        data = request_bytes(b"POST", b"/?x=1", [(b"Host", host), (b"Content-Length", b"0")])
        future = transport.start(httpx.URL(url), data)
        assert future is not None
        response = await future  # the parsed answer, not an httpx.Response (cheaper)
        assert response.status == 200
        assert response.keep_alive
        assert heads[0].startswith(b"POST /?x=1 ")
        await transport.aclose()


async def test_bad_status_line_is_a_protocol_error() -> None:
    async with raw_server(lambda _: b"garbage\r\n\r\n") as (url, _):
        transport = Http11Transport()
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.handle_async_request(httpx.Request("POST", url))
        await transport.aclose()


async def test_an_unreachable_server_gets_few_connect_attempts() -> None:
    """warm() tries one connection before opening hundreds, and ready() reports a failure
    instead of starting new attempts after each one (a storm of DNS lookups and SYNs)."""
    async with raw_server(ok()) as (url, _):
        pass  # closed again: connections are refused
    loop = asyncio.get_running_loop()
    attempts = 0
    real = loop.create_connection

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal attempts
        attempts += 1
        return await real(*args, **kwargs)

    loop.create_connection = counting  # type: ignore[method-assign]
    try:
        transport = Http11Transport(spare=8)
        await transport.warm(httpx.URL(url), 250)
        assert attempts == 1
        with pytest.raises(httpx.ConnectError, match="connection refused"):
            await transport.ready(httpx.URL(url))
        assert attempts <= 1 + 8
        await transport.aclose()
    finally:
        del loop.create_connection  # type: ignore[method-assign]


@pytest.mark.parametrize(
    ("answer", "kind", "detail"),
    [
        (ok(b'{"Code":"OK","MessageId":"m-1"}'), ReplyKind.SENT, "m-1"),
        # The fast path classifies the parsed answer itself: its headers must still count.
        (
            ok(b'{"Code":"Throttling.User"}', b"X-Acs-Retry-After: 2000\r\n"),
            ReplyKind.RETRY,
            "2.0",
        ),
        # A compressed body (never asked for, but possible) is decoded as httpx would.
        (
            ok(gzip.compress(b'{"Code":"OK","MessageId":"m-2"}'), b"Content-Encoding: gzip\r\n"),
            ReplyKind.SENT,
            "m-2",
        ),
    ],
)
async def test_the_client_fast_path_classifies_the_parsed_answer(
    answer: Answer, kind: ReplyKind, detail: str
) -> None:
    async with raw_server(answer) as (url, _):
        client = CamsClient(Credentials("id", "secret"), endpoint=url)
        assert await client.ready() is None
        answered: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        client.start(client.prepare({"To": "8613900000001"}), answered.set_result)
        reply = await asyncio.wait_for(answered, 10)
        await client.aclose()
    assert reply.kind is kind, reply
    assert detail == (reply.message_id if kind is ReplyKind.SENT else str(reply.retry_after_s))
