"""The simulator as an ``httpx.MockTransport`` handler: the same gateway decisions with no sockets
(latency is slept; a reset, a hang or an outage becomes the error an httpx client would see).
"""

from __future__ import annotations

import time

import anyio
import httpx

from campaigner.sim.exchange import Hang, Reply, Request
from campaigner.sim.gateway import Pending, Simulator

__all__ = ("MockGateway", "mock_transport")


class MockGateway:
    """An async handler for ``httpx.MockTransport`` serving ``simulator``; fault windows count
    from its creation. Use it with an ``httpx.AsyncClient``."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        simulator.restart_clock()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        simulator = self.simulator
        arrived = time.monotonic()
        arrived_wall = time.time()
        if simulator.config.faults.refusing_at(arrived - simulator.epoch):
            raise httpx.ConnectError("[Errno 111] Connection refused (outage)", request=request)
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        if request.method == "GET" and path == "/_sim/accepted":
            return httpx.Response(200, text=simulator.accepted_lines())
        if request.method == "GET" and path == "/_sim/stats":
            return httpx.Response(200, json=simulator.stats())
        received = Request(
            request.method,
            path,
            query,
            tuple(request.headers.multi_items()),
            request.content,
            arrived,
            arrived_wall,
        )
        decision = simulator.receive(received)
        if isinstance(decision, Pending):
            if decision.delay_s > 0:
                await anyio.sleep(decision.delay_s)
            answer = simulator.answer(decision)
        else:
            answer = decision
        if isinstance(answer, Reply):
            return httpx.Response(answer.status, headers=answer.headers, content=answer.body)
        if isinstance(answer, Hang):
            timeouts = request.extensions.get("timeout", {})
            read_timeout = timeouts.get("read")
            if read_timeout is not None and read_timeout < answer.seconds:
                await anyio.sleep(read_timeout)
                raise httpx.ReadTimeout("timed out", request=request)
            await anyio.sleep(answer.seconds)
        raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)


def mock_transport(simulator: Simulator) -> httpx.MockTransport:
    """An ``httpx.MockTransport`` answering like ``simulator`` served over loopback would."""
    return httpx.MockTransport(MockGateway(simulator))
