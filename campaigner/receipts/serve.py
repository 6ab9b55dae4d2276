"""``campaigner receive``: the receiver alone, served by uvicorn until a signal stops it.

The socket is bound before uvicorn starts, so the port (``0``: any free one) is known and
announced before the first request, and a port in use is a clear error rather than a log line.
uvicorn's access log is off: it would write the callback path, and the path holds the token.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from campaigner.errors import ReceiverError
from campaigner.limits import RECEIPT_HEADERS_TIMEOUT_S, RECEIPT_KEEP_ALIVE_S
from campaigner.receipts.receiver import INBOUND_PATH, STATUS_PATH, check_token, receiver_app
from campaigner.receipts.store import RECEIPTS_NAME

__all__ = ("Listening", "is_loopback", "run_receiver")

_BACKLOG = 2048
_GRACEFUL_S = 10.0


@dataclass(frozen=True, slots=True)
class Listening:
    """Where a started receiver listens and stores; the URLs show the token as ``<token>``."""

    host: str
    port: int
    store: Path
    loopback: bool

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def status_url(self) -> str:
        return self.base_url + STATUS_PATH.replace("{token}", "<token>")

    @property
    def inbound_url(self) -> str:
        return self.base_url + INBOUND_PATH.replace("{token}", "<token>")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ReceiverError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        raise ReceiverError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def _headers_deadline(base: type[asyncio.Protocol]) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with a deadline on each request's headers: a connection that
    has not sent complete headers ``RECEIPT_HEADERS_TIMEOUT_S`` after opening (or after its
    last answer) is closed, so slow-loris clients cannot hold connections forever. uvicorn has
    keep-alive and (with our app) body timeouts, but none for headers."""

    class HeadersDeadline(base):  # type: ignore[valid-type,misc]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(RECEIPT_HEADERS_TIMEOUT_S, self._expired)

        def _expired(self) -> None:
            cycle = self.cycle  # set once a request's headers are complete
            waiting = cycle is None or cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeadersDeadline


def _protocol() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools missing: uvicorn's pure-Python parser
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]
    return _headers_deadline(Base)


def run_receiver(
    workspace: Path,
    token: str | None,
    *,
    host: str,
    port: int,
    on_ready: Callable[[Listening], None] = lambda _: None,
) -> None:
    """Serve the callback endpoints until SIGINT/SIGTERM; ``on_ready`` once it listens."""
    import uvicorn

    app = receiver_app(workspace, check_token(token))
    sock = _bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        http=_protocol(),
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="off",
        server_header=False,
        timeout_keep_alive=int(RECEIPT_KEEP_ALIVE_S),
        timeout_graceful_shutdown=int(_GRACEFUL_S),
    )
    try:
        on_ready(Listening(bound_host, bound_port, workspace / RECEIPTS_NAME, is_loopback(host)))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
