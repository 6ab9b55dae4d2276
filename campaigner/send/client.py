"""The CAMS client: signs a call, sends it, and classifies the answer exactly once.

Per-row outcomes come back as ``cams.Reply`` values, never exceptions; transport
failures are folded in here, in one place, by whether the request can have reached
the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

import httpx

from campaigner.cams import DEFAULT_ENDPOINT, SEND_ACTION, Reply, ReplyKind, classify_reply
from campaigner.crashpoints import crash_point
from campaigner.errors import ConfigError
from campaigner.limits import CONNECT_TIMEOUT_S, DEFAULT_TIMEOUT_S
from campaigner.listening import is_loopback
from campaigner.send.http11 import Response, request_bytes
from campaigner.send.transport import Http11Transport, as_httpx_response
from campaigner.signing import Credentials, SignedRequest, format_date, sign_request

__all__ = ("DEFAULT_ENDPOINT", "CamsClient", "check_endpoint")

_USER_AGENT = "campaigner/0.1 (+httpx)"
_EMPTY_BODY = (b"Content-Length", b"0")  # first, as httpx puts it (as_bytes == as_httpx)

ReplyCallback = Callable[[Reply], None]


class FastTransport(Protocol):
    """The optional two-step path of ``Http11Transport`` (see campaigner.send.transport)."""

    async def warm(self, url: httpx.URL, count: int) -> None: ...
    async def ready(self, url: httpx.URL) -> None: ...

    def start(
        self, url: httpx.URL, data: bytes, read_timeout_s: float | None = None
    ) -> asyncio.Future[Response] | None: ...


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def _valid_host(host: str) -> bool:
    if _HOST_NAME.fullmatch(host):
        return True
    try:
        ipaddress.ip_address(host)  # IPv6 literals ([::1]) do not match the name pattern
    except ValueError:
        return False
    return True


def check_endpoint(endpoint: str) -> tuple[str, str]:
    """(base URL, host header) for an endpoint; plain http only on loopback.

    Checked before anything is read, so a typo is a usage error, not a run that retries
    an impossible connection.
    """
    parts = urlsplit(endpoint.strip())
    if "@" in parts.netloc:  # user:password@ would be echoed below and sent nowhere useful
        raise ConfigError("endpoint must not contain a user name or password")
    try:
        port = parts.port  # a bad port raises here, not at the first connect
    except ValueError:
        port = 0
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not _valid_host(host) or port == 0:
        raise ConfigError(f"endpoint must be a URL such as {DEFAULT_ENDPOINT} (got {endpoint!r})")
    if parts.scheme == "http" and not is_loopback(host):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: credentials-signed traffic needs https "
            "(http is allowed only for a loopback simulator)"
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"endpoint must not have a path or query (got {endpoint!r})")
    return f"{parts.scheme}://{parts.netloc}", parts.netloc


class CamsClient:
    """Signs and sends CAMS calls over an httpx transport (``Http11Transport`` by default).

    ``send`` is one call start to finish. The send pool uses the split form instead:
    ``prepare`` (sign, build the request) ahead of its turn, ``ready`` (a connection is
    open), then ``start``, which writes the bytes at once when the transport allows it,
    so the pacer's grant is the moment the request hits the socket.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base, self._host = check_endpoint(endpoint)
        self._credentials = credentials
        self._clock = clock
        self._transport = transport or Http11Transport(
            max_connections=max_connections, read_timeout_s=timeout_s
        )
        fast = self._transport
        self._fast = cast(FastTransport, fast) if isinstance(fast, Http11Transport) else None
        self._read_timeout_s = timeout_s
        self._timeout = httpx.Timeout(timeout_s, connect=CONNECT_TIMEOUT_S).as_dict()
        self._base_url = httpx.URL(f"{self._base}/")
        self._tasks: set[asyncio.Task[None]] = set()
        self._date_second, self._date_text = -1, ""

    def prepare(self, query: Mapping[str, str], action: str = SEND_ACTION) -> SignedRequest:
        """A signed call, ready to go (the signature's date is now: send it soon)."""
        return sign_request(
            method="POST",
            host=self._host,
            query=query,
            credentials=self._credentials,
            date=self._date(self._clock()),
            nonce=uuid.uuid4().hex,
            action=action,
            user_agent=_USER_AGENT,
        )

    def _date(self, now: float) -> str:
        # The same text for a whole second: formatting it cost more than the rest of a send's
        # headers together.
        second = int(now)
        if second != self._date_second:
            self._date_second, self._date_text = second, format_date(second)
        return self._date_text

    def as_httpx(self, signed: SignedRequest) -> httpx.Request:
        """The call as an ``httpx.Request``, for any httpx transport (parses its URL)."""
        url = httpx.URL(f"{self._base}/?{signed.query}")
        return httpx.Request(
            "POST", url, headers=signed.headers, extensions={"timeout": self._timeout}
        )

    def as_bytes(self, signed: SignedRequest) -> bytes:
        """The call as written on the wire: the same bytes as ``as_httpx`` gives, without
        an ``httpx.URL`` (parsing and validating a signed query costs ~50 µs, and it is
        canonical already: unreserved characters and %XX only)."""
        headers = [_EMPTY_BODY]
        headers += [(k.encode("ascii"), v.encode("ascii")) for k, v in signed.headers.items()]
        return request_bytes(b"POST", b"/?" + signed.query.encode("ascii"), headers)

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        # Straight to the transport: AsyncClient's cookie, auth and redirect machinery costs
        # ~0.4 ms a request and none of it applies to a signed one-shot POST.
        response = await self._transport.handle_async_request(request)
        await response.aread()
        return response

    async def warm(self, connections: int) -> None:
        """Open connections before the first send, so the first second runs like the rest."""
        if self._fast is not None:
            await self._fast.warm(self._base_url, connections)

    async def ready(self) -> Reply | None:
        """Wait until ``start`` can write at once; a Reply(RETRY) if CAMS is unreachable."""
        if self._fast is None:
            return None
        try:
            await self._fast.ready(self._base_url)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Reply(ReplyKind.RETRY, code="ConnectError", message=_brief(exc))
        return None

    def start(self, signed: SignedRequest, on_reply: ReplyCallback) -> None:
        """Send ``signed``; ``on_reply`` gets the classified answer (from the event loop).

        With ``Http11Transport`` and an idle connection the bytes are written before this
        returns; otherwise the exchange runs in a task.
        """
        fast, future = self._fast, None
        if fast is not None:
            future = fast.start(self._base_url, self.as_bytes(signed), self._read_timeout_s)
        if future is None:
            request = self.as_httpx(signed)
            task = asyncio.get_running_loop().create_task(self._send_task(request, on_reply))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return

        def done(f: asyncio.Future[Response]) -> None:
            if f.cancelled():
                on_reply(Reply(ReplyKind.UNKNOWN, code="Cancelled", message="cancelled"))
                return
            exc = f.exception()
            on_reply(_reply_for(f.result() if exc is None else exc))

        future.add_done_callback(done)

    async def _send_task(self, request: httpx.Request, on_reply: ReplyCallback) -> None:
        try:
            response: httpx.Response | Exception = await self._exchange(request)
        except Exception as exc:  # classified below, like every other failure
            response = exc
        on_reply(_reply_for(response))

    async def send(self, query: Mapping[str, str]) -> Reply:
        """One SendChatappMessage call, classified."""
        try:
            response: httpx.Response | Exception = await self._exchange(
                self.as_httpx(self.prepare(query))
            )
        except httpx.TransportError as exc:
            response = exc
        return _reply_for(response)

    async def call(self, action: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Any other CAMS action (e.g. ListChatappMessage): status and parsed JSON body."""
        response = await self._exchange(self.as_httpx(self.prepare(query, action)))
        try:
            body = json.loads(response.content)
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._transport.aclose()

    async def __aenter__(self) -> CamsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _reply_for(outcome: Response | httpx.Response | BaseException) -> Reply:
    """The one place where a transport outcome becomes a Reply (classified once)."""
    if isinstance(outcome, Response):  # the fast path's answer, as parsed
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in outcome.headers}
        if headers.get("content-encoding", "identity").strip().lower() == "identity":
            crash_point("after_send")
            return classify_reply(outcome.status, headers, outcome.body)
        outcome = as_httpx_response(outcome)  # a compressed body: httpx decodes it
    if isinstance(outcome, httpx.Response):
        crash_point("after_send")
        headers = {k.lower(): v for k, v in outcome.headers.items()}
        return classify_reply(outcome.status_code, headers, outcome.content)
    if isinstance(outcome, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        # No connection: provably nothing was sent.
        return Reply(ReplyKind.RETRY, code="ConnectError", message=_brief(outcome))
    if isinstance(outcome, httpx.TimeoutException):
        return Reply(ReplyKind.UNKNOWN, code="Timeout", message=_brief(outcome))
    if isinstance(outcome, httpx.TransportError):
        return Reply(ReplyKind.UNKNOWN, code=type(outcome).__name__, message=_brief(outcome))
    # Anything else after the request may have left (a bug, a cancelled task): ambiguous.
    return Reply(ReplyKind.UNKNOWN, code=type(outcome).__name__, message=_brief(outcome))


def _brief(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]
