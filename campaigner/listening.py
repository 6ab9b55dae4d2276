"""Listening sockets for campaigner's HTTP servers (``serve``, ``receive``): the bind with a
one-line error, and uvicorn's HTTP protocol with a deadline on request headers.

Low level on purpose: it imports nothing of campaigner, so each caller passes its own error
class and deadline.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

__all__ = ("bind_listener", "headers_deadline_protocol", "is_loopback")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_listener(host: str, port: int, *, backlog: int, error: type[Exception]) -> socket.socket:
    """A socket listening on ``host:port`` (``0``: any free port), or ``error`` in one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise error(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        hint = " (--port 0 picks a free one)" if exc.errno == errno.EADDRINUSE else ""
        raise error(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def headers_deadline_protocol(seconds: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools, else h11) with a deadline on request headers."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:  # httptools missing: uvicorn's pure-Python parser
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base  # type: ignore[assignment]
    return _headers_deadline(Base, seconds)


def _headers_deadline(base: type[asyncio.Protocol], seconds: float) -> type[asyncio.Protocol]:
    """``base`` with a deadline on each request's headers: a connection that has not sent
    complete headers ``seconds`` after opening (or after its last answer) is closed, so
    slow-loris clients cannot hold connections forever. uvicorn has keep-alive and (with our
    apps) body timeouts, but none for headers. A response still going out (an event stream)
    is never cut: the deadline only closes a connection waiting for headers."""

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
            self._deadline = self.loop.call_later(seconds, self._expired)

        def _expired(self) -> None:
            cycle = self.cycle  # set once a request's headers are complete
            waiting = cycle is None or cycle.response_complete
            if waiting and not self.transport.is_closing():
                self.transport.close()

    return HeadersDeadline
