"""``send --sandbox``: a simulator in this process and, given a workspace, a receipt receiver
(``campaigner.receipts.receiver``) on another free loopback port that the simulator's pusher
posts to, so the run's receipts are in the workspace's store before its report is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from campaigner.sim.fate import ReceiptPlan
from campaigner.sim.faults import SimulatorConfig
from campaigner.sim.gateway import Simulator
from campaigner.sim.push import Pusher, PushTarget
from campaigner.sim.server import serve

__all__ = (
    "SANDBOX_KEY_ID",
    "SANDBOX_RECEIPTS",
    "SANDBOX_SECRET",
    "ReceiverThread",
    "serve_sandbox",
)

logger = logging.getLogger(__name__)

# The key pair `send --sandbox` signs with and its in-process simulator accepts.
SANDBOX_KEY_ID, SANDBOX_SECRET = "sandbox-access-key", "sandbox-secret"
# Short delays, so a demo's receipts have all arrived a second or so after its last send.
SANDBOX_RECEIPTS = ReceiptPlan(delay_ms=(20.0, 200.0))
_SANDBOX_RETRY_S = (0.2, 0.5, 1.0)
# How long the end of a sandbox send waits for its receipts (bounded: never hangs a run).
DRAIN_S = 5.0

# An ASGI application: the receiver, or a stand-in in tests.
Receiver = Callable[..., Any]


class ReceiverThread:
    """An ASGI app served by uvicorn on a free loopback port in its own thread (and loop), so
    its synchronous commits never stall the send loop."""

    def __init__(self, app: Receiver) -> None:
        import uvicorn

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:  # uvicorn offers no readiness callback: poll its flag
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox's receipt receiver did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()


def _default_receiver(workspace: Path, token: str) -> Receiver:
    from campaigner.receipts.receiver import receiver_app

    return receiver_app(workspace, token)


@contextlib.asynccontextmanager
async def serve_sandbox(
    workspace: Path | None = None,
    *,
    latency_ms: float = 20,
    jitter_ms: float = 30,
    plan: ReceiptPlan = SANDBOX_RECEIPTS,
    receiver: Callable[[Path, str], Receiver | None] = _default_receiver,
    drain_s: float = DRAIN_S,
) -> AsyncIterator[str]:
    """A simulator on a free loopback port accepting ``SANDBOX_KEY_ID`` / ``SANDBOX_SECRET``;
    entering it yields the base URL. With a ``workspace`` its receipts are pushed to
    ``receiver(workspace, token)`` (a random token) and, when the block ends normally, waited
    for up to ``drain_s`` seconds."""
    # A fresh seed per start: with a fixed one every sandbox run (and a run resumed after a
    # restart) got the same MessageIds, so reports and receipts of two runs collided.
    config = SimulatorConfig(
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        seed=secrets.randbits(64),
        credentials={SANDBOX_KEY_ID: SANDBOX_SECRET},
        receipts=plan if workspace is not None else None,
    )
    simulator = Simulator(config)
    token = secrets.token_urlsafe(24)
    app = receiver(workspace, token) if workspace is not None else None
    if app is None:
        async with serve(simulator) as url:
            yield url
        return
    thread = ReceiverThread(app)
    await asyncio.to_thread(thread.start)
    try:
        target = PushTarget(thread.url, token, retry_s=_SANDBOX_RETRY_S)
        pusher = Pusher(target, plan, config.seed)
        async with serve(simulator, pusher=pusher) as url:
            yield url
            if not await pusher.drain(drain_s):
                logger.warning(
                    "%d sandbox receipts were not delivered within %.0f s",
                    pusher.outstanding,
                    drain_s,
                )
    finally:
        await asyncio.to_thread(thread.stop)
