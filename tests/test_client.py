"""CamsClient: signed requests the simulator accepts; transport failures classified once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from campaigner.cams import Reply, ReplyKind
from campaigner.errors import ConfigError
from campaigner.send.client import CamsClient, check_endpoint
from campaigner.send.http11 import request_bytes
from campaigner.signing import Credentials
from campaigner.sim.gateway import Simulator
from campaigner.sim.server import serve

pytestmark = pytest.mark.anyio
CREDS = Credentials("testAccessKeyId", "testAccessKeySecret")
QUERY = {
    "ChannelType": "whatsapp",
    "From": "8613800000000",
    "Language": "en",
    "TemplateCode": "tpl",
    "TemplateParams": '{"name":"Zoë 李","code":"a b+c&d=e"}',
    "To": "8613900000001",
    "Type": "template",
}


async def test_the_simulator_accepts_the_signed_request() -> None:
    simulator = Simulator()
    async with serve(simulator) as url, CamsClient(CREDS, endpoint=url) as client:
        reply = await client.send(QUERY)
        assert reply.kind is ReplyKind.SENT, reply
        replies: list[Reply] = []
        assert await client.ready() is None
        client.start(client.prepare({**QUERY, "To": "8613900000002"}), replies.append)
        while not replies:
            await simulator_tick()
    assert replies[0].kind is ReplyKind.SENT, replies
    assert [a.to for a in simulator.accepted] == ["8613900000001", "8613900000002"]


def test_the_fast_path_writes_the_bytes_httpx_would() -> None:
    """as_bytes skips httpx.URL (its parse costs ~50 µs) but must not change the wire."""
    client = CamsClient(CREDS, endpoint="https://cams.example.com")
    signed = client.prepare(QUERY)
    request = client.as_httpx(signed)
    expected = request_bytes(b"POST", request.url.raw_path, request.headers.raw)
    assert client.as_bytes(signed) == expected
    assert expected.startswith(b"POST /?ChannelType=whatsapp&From=8613800000000&")


async def simulator_tick() -> None:
    await anyio.sleep(0.01)


def mock(handler: object) -> CamsClient:
    return CamsClient(
        CREDS,
        endpoint="http://127.0.0.1:9",
        transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (httpx.ConnectError("refused"), ReplyKind.RETRY, "ConnectError"),
        (httpx.ConnectTimeout("slow"), ReplyKind.RETRY, "ConnectError"),
        (httpx.ReadTimeout("no answer"), ReplyKind.UNKNOWN, "Timeout"),
        (httpx.ReadError("reset"), ReplyKind.UNKNOWN, "ReadError"),
        (httpx.RemoteProtocolError("gone"), ReplyKind.UNKNOWN, "RemoteProtocolError"),
    ],
)
async def test_transport_failures_are_classified(
    exc: Exception, kind: ReplyKind, code: str
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with mock(handler) as client:
        reply = await client.send(QUERY)
        started: list[Reply] = []
        client.start(client.prepare(QUERY), started.append)  # the task path of start()
        while not started:
            await simulator_tick()
    assert (reply.kind, reply.code) == (kind, code)
    assert (started[0].kind, started[0].code) == (kind, code)


async def test_answers_are_classified_by_cams() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"Code": "System.LimitControl", "Message": "slow down"})

    async with mock(handler) as client:
        reply = await client.send(QUERY)
    assert reply.kind is ReplyKind.RETRY and reply.code == "System.LimitControl"


async def test_ready_reports_an_unreachable_server_as_retry() -> None:
    async with CamsClient(CREDS, endpoint="http://127.0.0.1:9") as client:  # discard port
        reply = await client.ready()
    assert reply is not None and reply.kind is ReplyKind.RETRY and reply.code == "ConnectError"


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        ("https://cams.ap-southeast-1.aliyuncs.com", "cams.ap-southeast-1.aliyuncs.com"),
        ("https://cams.example.com:8443/", "cams.example.com:8443"),
        ("http://127.0.0.1:8765", "127.0.0.1:8765"),
        ("http://[::1]:8765", "[::1]:8765"),
        ("http://localhost:8765", "localhost:8765"),
    ],
)
def test_good_endpoints(endpoint: str, expected: str) -> None:
    assert check_endpoint(endpoint)[1] == expected


@pytest.mark.parametrize(
    ("endpoint", "error"),
    [
        ("notaurl", "endpoint must be a URL such as https://"),
        ("cams.example.com", "endpoint must be a URL such as https://"),
        ("localhost:8765", "endpoint must be a URL such as https://"),
        ("https://", "endpoint must be a URL such as https://"),
        ("https://not a host", "endpoint must be a URL such as https://"),
        ("ftp://cams.example.com", "endpoint must be a URL such as https://"),
        ("http://127.0.0.1:99999", "endpoint must be a URL such as https://"),
        ("http://127.0.0.1:0", "endpoint must be a URL such as https://"),
        ("https://id:secret@cams.example.com", "must not contain a user name or password"),
        ("https://cams.example.com/v1", "must not have a path or query"),
        ("http://example.com", "refusing plain http to example.com"),
    ],
)
def test_bad_endpoints_are_refused(endpoint: str, error: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_endpoint(endpoint)
    assert error in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("command", ["send", "reconcile"])
def test_a_bad_endpoint_is_a_usage_error_before_anything_is_read(
    tmp_path: Path, command: str
) -> None:
    target = tmp_path / ("missing.toml" if command == "send" else "")
    result = subprocess.run(
        [sys.executable, "-m", "campaigner", command, str(target), "--endpoint", "notaurl"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "Invalid value for '--endpoint': endpoint must be a URL" in result.stderr
    assert "missing.toml" not in result.stderr and "ALIBABA" not in result.stderr
