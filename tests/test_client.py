"""CamsClient: signed requests the simulator accepts; transport failures classified once."""

from __future__ import annotations

import anyio
import httpx
import pytest

from campaigner.cams import Reply, ReplyKind
from campaigner.client import CamsClient
from campaigner.signing import Credentials
from campaigner.simulator import Simulator, serve

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


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


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
