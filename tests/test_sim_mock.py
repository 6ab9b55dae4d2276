"""The simulator's decisions served through httpx.MockTransport: no sockets, same answers."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping

import httpx
import pytest

from campaigner.signing import Credentials, format_date, sign_request
from campaigner.sim.faults import Fault, FaultPlan, FaultWindow, SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.mock import mock_transport

pytestmark = pytest.mark.anyio
BASE = "http://127.0.0.1:8080"
CREDS = Credentials("testAccessKeyId", "testAccessKeySecret")
QUERY = {
    "ChannelType": "whatsapp",
    "Type": "template",
    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
    "Language": "en",
    "TemplateParams": '{"name":"Ana"}',
    "From": "8613800000000",
    "To": "8613900000000",
}


async def post(
    client: httpx.AsyncClient,
    query: Mapping[str, str] = QUERY,
    credentials: Credentials = CREDS,
    timeout_s: float = 5.0,
) -> httpx.Response:
    signed = sign_request(
        method="POST",
        host=BASE.removeprefix("http://"),
        query=query,
        credentials=credentials,
        date=format_date(time.time()),
        nonce=uuid.uuid4().hex,
    )
    return await client.post(f"{BASE}/?{signed.query}", headers=signed.headers, timeout=timeout_s)


def client_for(simulator: Simulator) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=mock_transport(simulator))


@pytest.fixture
async def plain() -> AsyncIterator[tuple[Simulator, httpx.AsyncClient]]:
    simulator = Simulator(SimulatorConfig(validate=False))
    async with client_for(simulator) as client:
        yield simulator, client


async def test_signed_call_gets_a_message_id_and_is_accepted(
    plain: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, client = plain
    answer = await post(client)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json;charset=utf-8"
    body = answer.json()
    assert (body["Code"], body["Message"]) == ("OK", "OK")
    assert answer.headers["x-acs-request-id"] == body["RequestId"]
    assert [(r.message_id, r.to) for r in simulator.accepted] == [(body["MessageId"], QUERY["To"])]
    stats = (await client.get(f"{BASE}/_sim/stats")).json()
    assert (stats["requests"], stats["accepted"]) == (1, 1)


async def test_bad_signature_is_refused_and_not_accepted(
    plain: tuple[Simulator, httpx.AsyncClient],
) -> None:
    simulator, client = plain
    answer = await post(client, credentials=Credentials(CREDS.access_key_id, "wrong"))
    assert answer.status_code == 400
    body = answer.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    assert body["Code"] == "SignatureDoesNotMatch"
    assert simulator.accepted == []
    unknown = await post(client, credentials=Credentials("LTAI_nobody", "x"))
    assert (unknown.status_code, unknown.json()["Code"]) == (404, "InvalidAccessKeyId.NotFound")


async def test_over_the_rate_is_limit_control() -> None:
    simulator = Simulator(SimulatorConfig(validate=False, qps_limit=3))
    async with client_for(simulator) as client:
        answers = [await post(client, {**QUERY, "To": f"86139{i:08d}"}) for i in range(5)]
    codes = [a.json()["Code"] for a in answers]
    assert codes == ["OK"] * 3 + ["System.LimitControl"] * 2
    assert answers[-1].status_code == 400
    assert answers[-1].json()["Message"] == "The system is under flow control."
    assert len(simulator.accepted) == 3 and simulator.throttled == 2


async def test_resets_hangs_and_outages_are_transport_errors() -> None:
    plan = FaultPlan(every={Fault.RESET_AFTER.value: 1})
    simulator = Simulator(SimulatorConfig(validate=False, faults=plan))
    async with client_for(simulator) as client:
        with pytest.raises(httpx.ReadError):
            await post(client)
    assert [r.fault for r in simulator.accepted] == ["reset_after"]  # accepted, never answered

    plan = FaultPlan(every={Fault.TIMEOUT_AFTER.value: 1}, hang_s=30)
    simulator = Simulator(SimulatorConfig(validate=False, faults=plan))
    async with client_for(simulator) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await post(client, timeout_s=0.2)
        assert time.monotonic() - started < 2
    assert len(simulator.accepted) == 1

    plan = FaultPlan(windows=[FaultWindow(start_s=0, duration_s=60)])  # refuse from the start
    simulator = Simulator(SimulatorConfig(validate=False, faults=plan))
    async with client_for(simulator) as client:
        with pytest.raises(httpx.ConnectError):
            await post(client)
    assert simulator.arrivals == []
