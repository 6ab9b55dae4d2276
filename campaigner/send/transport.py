"""A small HTTP/1.1 keep-alive transport for httpx, on asyncio Protocols.

The code above this module speaks httpx (``httpx.Request``/``httpx.Response`` and the
``httpx.AsyncBaseTransport`` seam, so tests can swap in ``httpx.MockTransport``). The
engine is our own because the workload is one tiny request shape at 250/s with up to a
few hundred requests in flight: httpx 0.28's pool collapses there (docs/performance.md), aiohttp
holds it at ~0.8 ms of CPU per request, and this engine at about a fifth of that
(bench/send.py prints the whole-process figure). It does only what that needs:
HTTP/1.1 with keep-alive, Content-Length, chunked and read-until-close bodies, TLS via an
``ssl.SSLContext``, connect and read timeouts. No proxies, redirects, cookies, HTTP/2.
Responses are parsed by ``campaigner.send.http11`` (I/O-free); this module owns the
sockets. It stays on asyncio, not anyio: an ``asyncio.Protocol`` is the callback API that
lets a response complete without a task per request, and its timers and waits go with it.

Besides ``handle_async_request`` it offers a two-step fast path for the send pool:
``await ready(url)`` makes sure an idle connection is open (connecting if needed), then
``start(url, data)`` writes the request bytes *synchronously* and returns a future, so the
pacer's grant and the moment the bytes reach the socket are the same instant.

Errors say *whether the request can have reached the server*, because that decides
between "safe to retry" and "unknown" (docs/row-states.md#retry-classes):

- ``httpx.ConnectError`` / ``httpx.ConnectTimeout``: no connection, nothing was sent.
- ``httpx.ReadTimeout`` / ``httpx.ReadError`` / ``httpx.RemoteProtocolError``: the
  request was written and may have arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time

import httpx

from campaigner.limits import CONNECT_TIMEOUT_S, DEFAULT_TIMEOUT_S
from campaigner.send.http11 import ProtocolError, Response, ResponseParser, request_bytes

__all__ = ("Http11Transport", "as_httpx_response")

_Origin = tuple[str, str, int]  # scheme, host, port


def _origin(url: httpx.URL) -> _Origin:
    scheme = url.scheme
    port = url.port or (443 if scheme == "https" else 80)
    return scheme, url.host, port


def _serialize(request: httpx.Request, body: bytes) -> bytes:
    # raw_path: path + "?" + query, as given (already canonical)
    return request_bytes(
        request.method.encode("ascii"), request.url.raw_path, request.headers.raw, body
    )


def as_httpx_response(parsed: Response, request: httpx.Request | None = None) -> httpx.Response:
    """A parsed response as httpx's (which also decodes a ``Content-Encoding`` body)."""
    headers = [(k, v) for k, v in parsed.headers if k.lower() != b"transfer-encoding"]
    return httpx.Response(
        parsed.status,
        headers=headers,
        content=parsed.body,
        request=request,
        extensions={"http_version": b"HTTP/1.1"},
    )


def _timeouts(request: httpx.Request, connect: float, read: float) -> tuple[float, float]:
    t = request.extensions.get("timeout")
    if not t:
        return connect, read
    c, r = t.get("connect", connect), t.get("read", read)
    return (connect if c is None else float(c)), (read if r is None else float(r))


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request at a time (no pipelining)."""

    __slots__ = (
        "_closed",
        "_loop",
        "_parser",
        "_pool",
        "_read_timeout",
        "_request",
        "_timer",
        "_waiter",
        "idle_since",
        "origin",
        "transport",
    )

    def __init__(self, pool: Http11Transport, origin: _Origin) -> None:
        self._pool = pool
        self._loop = asyncio.get_running_loop()
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.idle_since = time.monotonic()
        self._closed = False
        self._waiter: asyncio.Future[Response] | None = None
        self._request: httpx.Request | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._read_timeout = DEFAULT_TIMEOUT_S
        self._parser = ResponseParser()

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection is out of step; drop it.
            self.close()
            return
        try:
            response = self._parser.feed(data)
        except ProtocolError as exc:
            self._fail(httpx.RemoteProtocolError(str(exc), request=self._request))
            return
        if response is not None:
            self._complete(response)
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = self._loop.call_later(self._read_timeout, self._timed_out)

    def _until_close_done(self) -> bool:
        """The server closed: that ends a body that had neither length nor chunks."""
        if self._waiter is None:
            return False
        response = self._parser.feed_eof()
        if response is None:
            return False
        self._complete(response)
        return True

    def eof_received(self) -> bool | None:
        self._until_close_done()
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.transport = None
        self._pool._forget(self)
        if exc is None and self._until_close_done():
            return
        if self._waiter is not None:
            if exc is None:
                err: httpx.TransportError = httpx.RemoteProtocolError(
                    "server disconnected without sending a complete response",
                    request=self._request,
                )
            else:
                err = httpx.ReadError(str(exc) or type(exc).__name__, request=self._request)
            self._fail(err)

    # -- requests -----------------------------------------------------------------------
    @property
    def usable(self) -> bool:
        return not self._closed and self.transport is not None and not self.transport.is_closing()

    def send(
        self, request: httpx.Request | None, data: bytes, read_timeout: float
    ) -> asyncio.Future[Response]:
        """Write ``data`` (the whole request; ``request``: its httpx form, when there is one)."""
        assert self.transport is not None and self._waiter is None
        waiter: asyncio.Future[Response] = self._loop.create_future()
        self._waiter, self._request, self._read_timeout = waiter, request, read_timeout
        self._parser.reset(head_request=request is not None and request.method == "HEAD")
        self._timer = self._loop.call_later(read_timeout, self._timed_out)
        self.transport.write(data)
        return waiter

    def _complete(self, parsed: Response) -> None:
        waiter = self._waiter
        assert waiter is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._waiter = self._request = None
        if parsed.keep_alive and self.usable:
            self._pool._release(self)
        else:
            self.close()
        if not waiter.done():
            waiter.set_result(parsed)

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        self._waiter = self._request = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.close()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(httpx.ReadTimeout("timed out waiting for the answer", request=self._request))

    def close(self) -> None:
        if self.transport is not None and not self._closed:
            self.transport.abort() if self._waiter is not None else self.transport.close()
        self._closed = True
        self._pool._forget(self)


def _why(exc: OSError) -> str:
    """A connect failure in plain words ("connection refused"), for the user's log."""
    if isinstance(exc, ssl.SSLError):
        detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
        return f"TLS handshake failed ({detail})"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if exc.errno is not None and exc.errno > 0:
        # asyncio's own text ("Connect call failed ('127.0.0.1', 1)") names no cause.
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


class Http11Transport(httpx.AsyncBaseTransport):
    """A keep-alive connection pool; ``max_connections`` bounds open connections."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = DEFAULT_TIMEOUT_S,
        keepalive_s: float = 15.0,
        verify: ssl.SSLContext | bool = True,
        spare: int = 8,
    ) -> None:
        self._limit = max_connections
        self._connect_timeout = connect_timeout_s
        self._read_timeout = read_timeout_s
        self._keepalive = keepalive_s
        self._spare = spare
        if isinstance(verify, ssl.SSLContext):
            self._ssl: ssl.SSLContext | None = verify
        elif verify:
            self._ssl = None  # created on first https use
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._all: set[_Connection] = set()
        self._connecting: dict[_Origin, int] = {}
        self._freed: asyncio.Event | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._last_error: Exception | None = None  # of the latest background connect
        self._error_at = 0.0
        self._closed = False
        self.connections_opened = 0

    # -- pool bookkeeping -----------------------------------------------------------------
    @property
    def open_connections(self) -> int:
        return len(self._all)

    def _release(self, conn: _Connection) -> None:
        conn.idle_since = time.monotonic()
        self._idle.setdefault(conn.origin, []).append(conn)
        if self._freed is not None:
            self._freed.set()

    def _forget(self, conn: _Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            idle = self._idle.get(conn.origin)
            if idle and conn in idle:
                idle.remove(conn)
            if self._freed is not None:
                self._freed.set()

    def _pop_idle(self, origin: _Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()
        # The oldest idle ones sit at the bottom (LIFO reuse): expire them first.
        while idle and now - idle[0].idle_since > self._keepalive:
            idle.pop(0).close()
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
            conn.close()
        return None

    def idle_count(self, url: httpx.URL) -> int:
        return len(self._idle.get(_origin(url), ()))

    def _ssl_for(self, origin: _Origin) -> ssl.SSLContext | None:
        if origin[0] != "https":
            return None
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(
        self, origin: _Origin, limit_s: float, *, counted: bool = False
    ) -> _Connection:
        """A new connection; ``counted``: already in ``_connecting`` (since it was scheduled)."""
        scheme, host, port = origin
        if not counted:
            self._connecting[origin] = self._connecting.get(origin, 0) + 1
        try:
            if self._closed:
                raise httpx.ConnectError("the transport is closed")
            loop = asyncio.get_running_loop()
            ctx = self._ssl_for(origin)
            async with asyncio.timeout(limit_s):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin),
                    host,
                    port,
                    ssl=ctx,
                    server_hostname=host if ctx is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(
                f"cannot connect to {host}:{port}: no answer within {limit_s:g} s"
            ) from exc
        except OSError as exc:  # ssl.SSLError included
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {_why(exc)}") from exc
        finally:
            self._connecting[origin] -= 1
        if self._closed:
            conn.close()
            raise httpx.ConnectError("the transport is closed")
        self._all.add(conn)
        self.connections_opened += 1
        return conn

    async def _warm(self, origin: _Origin, *, counted: bool = False) -> None:
        try:
            conn = await self._connect(origin, self._connect_timeout, counted=counted)
        except httpx.TransportError as exc:
            self._last_error, self._error_at = exc, time.monotonic()
            if self._freed is not None:
                self._freed.set()
            return
        self._last_error = None
        self._release(conn)

    def _top_up(self, origin: _Origin) -> None:
        """Open connections in the background so that ``spare`` are idle or on the way."""
        if self._closed:
            return
        want = self._spare - len(self._idle.get(origin, ())) - self._connecting.get(origin, 0)
        room = self._limit - len(self._all) - sum(self._connecting.values())
        for _ in range(max(0, min(want, room))):
            # Counted from now, not from when the task first runs: a second call before
            # then would otherwise start another ``spare`` attempts.
            self._connecting[origin] = self._connecting.get(origin, 0) + 1
            task = asyncio.get_running_loop().create_task(self._warm(origin, counted=True))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # -- the fast path ----------------------------------------------------------------
    async def warm(self, url: httpx.URL, count: int) -> None:
        """Open up to ``count`` connections at once (failures are left to ``ready``)."""
        origin = _origin(url)
        room = self._limit - len(self._all) - sum(self._connecting.values())
        count = max(0, min(count, room))
        if count:
            # One first: when the server is unreachable (or its name does not resolve),
            # hundreds of attempts would only delay the run, and ready() reports it anyway.
            await self._warm(origin)
            if self._last_error is None:
                await asyncio.gather(*(self._warm(origin) for _ in range(count - 1)))

    async def ready(self, url: httpx.URL) -> None:
        """Return once ``start`` can write to ``url`` at once; raises ConnectError/-Timeout."""
        origin = _origin(url)
        self._top_up(origin)
        if self._idle.get(origin):
            return
        began = time.monotonic()
        deadline = began + self._connect_timeout
        while not self._idle.get(origin):
            err = self._last_error
            failed = err is not None and self._error_at >= began
            if err is not None and failed and not self._connecting.get(origin):
                self._last_error = None
                raise type(err)(str(err))
            if not failed:  # once an attempt failed, no new ones: report it (no connect storm)
                self._top_up(origin)
            left = deadline - time.monotonic()
            if left <= 0:  # say why, when a connect attempt failed meanwhile
                raise httpx.ConnectTimeout(
                    str(err)
                    if err is not None
                    else f"cannot connect to {origin[1]}:{origin[2]}: no connection within "
                    f"{self._connect_timeout:g} s"
                )
            self._freed = self._freed or asyncio.Event()
            self._freed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._freed.wait()

    def start(
        self, url: httpx.URL, data: bytes, read_timeout_s: float | None = None
    ) -> asyncio.Future[Response] | None:
        """Write ``data``, a whole request (``http11.request_bytes``), now on an idle
        connection to ``url``'s origin; None when none is idle.

        Bytes, not an ``httpx.Request``: the caller has the request target at hand, and
        an ``httpx.URL`` for it would be parsed again (~50 µs for a signed query). The
        answer is the parsed ``Response``, not an ``httpx.Response`` (~12 µs each to build).
        """
        conn = self._pop_idle(_origin(url))
        if conn is None:
            return None
        read = self._read_timeout if read_timeout_s is None else read_timeout_s
        return conn.send(None, data, read)

    # -- httpx.AsyncBaseTransport -------------------------------------------------------
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        connect, read = _timeouts(request, self._connect_timeout, self._read_timeout)
        origin = _origin(request.url)
        conn = self._pop_idle(origin)
        if conn is None:
            while len(self._all) >= self._limit:
                self._freed = self._freed or asyncio.Event()
                self._freed.clear()
                try:
                    async with asyncio.timeout(connect):
                        await self._freed.wait()
                except TimeoutError:
                    raise httpx.PoolTimeout("no connection became free in time") from None
                conn = self._pop_idle(origin)
                if conn is not None:
                    break
            if conn is None:
                conn = await self._connect(origin, connect)
        future = conn.send(request, _serialize(request, body), read)
        try:
            parsed = await future
        except asyncio.CancelledError:
            conn.close()
            raise
        return as_httpx_response(parsed, request)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
