"""An httpx transport on aiohttp's connection pool.

The code above this module speaks httpx (``httpx.Request``/``httpx.Response`` and the
``httpx.AsyncBaseTransport`` seam, so tests can swap in ``httpx.MockTransport``). The
engine underneath is aiohttp because httpx 0.28's own pool collapses at the ~250
requests in flight that 250 QPS at 1 s latency needs (perf.md §5: 12 req/s at 96 % CPU),
while aiohttp holds the rate at ~0.8 ms of CPU per request.

The one job besides moving bytes: translate aiohttp's errors into the httpx exception
that says *whether the request can have reached the server*, because that decides
between "safe to retry" and "unknown" (reliability.md §2.3):

- ``httpx.ConnectError`` / ``httpx.ConnectTimeout``: no connection, nothing was sent.
- ``httpx.ReadTimeout`` / ``httpx.ReadError`` / ``httpx.RemoteProtocolError``: the
  request may have arrived.
"""

from __future__ import annotations

import ssl

import aiohttp
import httpx
from yarl import URL

__all__ = ("AiohttpTransport",)


class AiohttpTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        *,
        max_connections: int = 1000,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 15.0,
        keepalive_s: float = 15.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._limit = max_connections
        self._keepalive_s = keepalive_s
        self._verify = verify
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit,
                keepalive_timeout=self._keepalive_s,
                ttl_dns_cache=300,
                ssl=self._verify,
            )
            # No cookies, no env proxies surprises beyond the standard variables.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                trust_env=True,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        # encoded=True: the query is already canonical; re-encoding would change the bytes
        # the signature was computed over.
        url = URL(str(request.url), encoded=True)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length",)]
        body = request.content if request.content else None
        try:
            async with session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as resp:
                content = await resp.read()
                # aiohttp already decoded the body: drop headers that would make httpx decode again.
                raw_headers = [
                    (k, v)
                    for k, v in resp.raw_headers
                    if k.lower()
                    not in (b"content-encoding", b"content-length", b"transfer-encoding")
                ]
                status = resp.status
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc) or "cannot connect", request=request) from exc
        except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or "server disconnected", request=request
            ) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
