"""The simulator over real loopback HTTP/1.1 (aiohttp): ``serve``, outages, the log's fsync loop,
the receipt pusher's task and ``run_forever`` for ``campaigner sandbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from campaigner.sim.exchange import Hang, Reply, Request
from campaigner.sim.fate import ReceiptPlan
from campaigner.sim.faults import SimulatorConfig
from campaigner.sim.gateway import Pending, Simulator
from campaigner.sim.push import Pusher, PushTarget

__all__ = ("run_forever", "serve")

logger = logging.getLogger(__name__)


class _Listener:
    """What one ``serve`` adds to the gateway: the outage flag and the shutdown signal."""

    def __init__(self) -> None:
        self.refusing = False
        self.stopping = asyncio.Event()


class _StampingHandler(RequestHandler):
    """aiohttp's connection protocol, noting when a request's first bytes are read.

    The gateway counts a request at its arrival. Stamped when the handler task runs, it
    also carried the simulator's own loop delays (parsing, other connections' answers):
    up to 5 ms more jitter, enough to bunch 251 requests of a client pacing within 250 into
    one counted second. A connection carries one request at a time (no pipelining), so
    the first bytes after the previous request was taken are the next request's.
    """

    __slots__ = ("arrived",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrived: float | None = None

    def data_received(self, data: bytes) -> None:
        if self.arrived is None:
            self.arrived = time.monotonic()
        super().data_received(data)

    def take_arrival(self) -> float | None:
        arrived, self.arrived = self.arrived, None
        return arrived


class _StampingServer(web.Server):
    __slots__ = ()

    def __call__(self) -> RequestHandler:
        return _StampingHandler(self, loop=self._loop, **self._kwargs)


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP RST and no answer."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()


def _app(simulator: Simulator, listener: _Listener, pusher: Pusher | None) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        arrived_wall = time.time()
        body = await request.read()
        # Taken once the whole body is in: a body arriving in pieces must not leave a stamp
        # behind for the connection's next request.
        protocol = request.protocol
        first_bytes = protocol.take_arrival() if isinstance(protocol, _StampingHandler) else None
        if first_bytes is not None:
            arrived_wall -= arrived - first_bytes
            arrived = first_bytes
        url = request.rel_url
        received = Request(
            request.method,
            url.raw_path,
            url.raw_query_string,
            tuple(request.headers.items()),
            body,
            arrived,
            arrived_wall,
        )
        decision = simulator.receive(received, refusing=listener.refusing)
        if isinstance(decision, Pending):
            if decision.delay_s > 0:  # the client's timeout may fire here: accepted, not answered
                await asyncio.sleep(decision.delay_s)
            answer = simulator.answer(decision)
        else:
            answer = decision
        if isinstance(answer, Reply):
            return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
        if isinstance(answer, Hang):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.stopping.wait(), answer.seconds)
        _reset(request)
        return web.Response()  # never written: the transport is gone

    async def accepted(request: web.Request) -> web.Response:
        return web.Response(text=simulator.accepted_lines(), content_type="application/x-ndjson")

    async def stats(request: web.Request) -> web.Response:
        found = simulator.stats()
        if pusher is not None:
            found["push"] = pusher.stats()
        return web.json_response(found)

    # All parameters travel in the URL, so allow long request lines (aiohttp's default is 8 KiB;
    # the live gateway's limit is unknown).
    app = web.Application(handler_args={"max_line_size": 32768, "max_field_size": 16384})
    app.router.add_route("POST", "/", handle)
    app.router.add_route("GET", "/", handle)
    app.router.add_get("/_sim/accepted", accepted)
    app.router.add_get("/_sim/stats", stats)
    return app


@contextlib.asynccontextmanager
async def serve(
    simulator: Simulator, host: str = "127.0.0.1", port: int = 0, *, pusher: Pusher | None = None
) -> AsyncIterator[str]:
    """Serve ``simulator`` on ``host:port`` (0 = a free port); yields ``http://host:PORT``.

    Runs the scheduled ``refuse`` outages, a background fsync of the accepted log and the
    ``pusher`` (fed every accepted send); on exit, hanging ``timeout_after`` handlers are
    released and the log is fsynced.
    """
    listener = _Listener()
    app = _app(simulator, listener, pusher)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    server = runner.server
    if type(server) is web.Server:  # the same object, making _StampingHandler connections
        server.__class__ = _StampingServer
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    bound_port = int(runner.addresses[0][1])
    simulator.restart_clock()
    sites = [site]
    tasks = [
        asyncio.create_task(_outages(simulator, listener, runner, sites, host, bound_port)),
        asyncio.create_task(_fsync_loop(simulator)),
    ]
    if pusher is not None:
        simulator.on_accept.append(pusher.schedule)
        tasks.append(asyncio.create_task(pusher.run()))
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        listener.stopping.set()
        listener.refusing = False
        await runner.cleanup()
        simulator.flush()


async def _outages(
    simulator: Simulator,
    listener: _Listener,
    runner: web.AppRunner,
    sites: list[web.TCPSite],
    host: str,
    port: int,
) -> None:
    for window in simulator.config.faults.outages():
        await asyncio.sleep(max(0.0, simulator.epoch + window.start_s - time.monotonic()))
        logger.info("simulated outage: refusing connections for %.1f s", window.duration_s)
        listener.refusing = True
        await sites[0].stop()
        await asyncio.sleep(window.duration_s)
        site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        sites[0] = site
        listener.refusing = False


async def _fsync_loop(simulator: Simulator, interval_s: float = 0.2) -> None:
    # Lines are flushed to the OS before each answer; fsync in batches off the event loop.
    log = simulator.log
    while log is not None:
        await asyncio.sleep(interval_s)
        fd = log.claim_sync()
        if fd is not None:
            await asyncio.to_thread(os.fsync, fd)


def _quiet_gc() -> None:
    """Keep full garbage collections from stalling the loop for tens of milliseconds.

    A stalled loop reads a backlog of requests at once and counts them in one second, so a
    client pacing exactly 250/s would be throttled by the simulator's own pauses (measured:
    25-61 ms pauses, 252-262 counted in a second). The accepted-send records only grow, so
    they are frozen out of collections; the phone metadata is loaded up front for the same
    reason.
    """
    from campaigner.channels import check_recipient

    check_recipient("whatsapp", "8613900000001")
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 1000)


async def _refreeze_gc(interval_s: float = 2.0) -> None:
    while True:
        await asyncio.sleep(interval_s)
        gc.freeze()


def run_forever(
    config: SimulatorConfig,
    port: int,
    log_path: Path | None,
    *,
    host: str = "127.0.0.1",
    on_ready: Callable[[str], None] | None = None,
    push: PushTarget | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (for ``campaigner sandbox``); ``on_ready`` gets the base URL.
    With ``push``, receipts of ``config.receipts`` (default rates if None) are posted there."""

    async def main() -> None:
        simulator = Simulator(config, log_path=log_path)
        pusher = None
        if push is not None:
            pusher = Pusher(push, config.receipts or ReceiptPlan(), config.seed)
        _quiet_gc()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        refreeze = asyncio.create_task(_refreeze_gc())
        try:
            async with serve(simulator, host, port, pusher=pusher) as url:
                logger.info("CAMS simulator listening on %s", url)
                if on_ready is not None:
                    on_ready(url)
                await stop.wait()
        finally:
            refreeze.cancel()
            simulator.close()

    try:  # uvloop spends less time per request, so arrivals are read (and stamped) sooner
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
