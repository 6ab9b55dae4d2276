"""The CAMS client: signs a call, sends it, and classifies the answer exactly once.

Per-row outcomes come back as ``cams.Reply`` values, never exceptions; transport
failures are folded in here, in one place, by whether the request can have reached
the server.
"""

from __future__ import annotations

import ipaddress
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from campaigner.cams import DEFAULT_ENDPOINT, Reply, ReplyKind, classify_reply
from campaigner.crashpoints import crash_point
from campaigner.errors import ConfigError
from campaigner.signing import Credentials, format_date, sign_request
from campaigner.transport import AiohttpTransport

__all__ = ("DEFAULT_ENDPOINT", "CamsClient", "check_endpoint")

_USER_AGENT = "campaigner/0.1 (+httpx; aiohttp)"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str) -> tuple[str, str]:
    """(base URL, host header) for an endpoint; plain http only on loopback."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint must be an https:// URL (got {endpoint!r})")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            f"refusing plain http to {parts.hostname}: credentials-signed traffic needs https "
            "(http is allowed only for a loopback simulator)"
        )
    if parts.path not in ("", "/") or parts.query:
        raise ConfigError(f"endpoint must not have a path or query (got {endpoint!r})")
    return f"{parts.scheme}://{parts.netloc}", parts.netloc


class CamsClient:
    """Signs and sends CAMS calls over an httpx transport (aiohttp-backed by default)."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        endpoint: str = DEFAULT_ENDPOINT,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_s: float = 15.0,
        max_connections: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._base, self._host = check_endpoint(endpoint)
        self._credentials = credentials
        self._clock = clock
        self._transport = transport or AiohttpTransport(
            max_connections=max_connections, read_timeout_s=timeout_s
        )
        self._timeout = httpx.Timeout(timeout_s, connect=5.0)

    def _request(self, query: Mapping[str, str], action: str) -> httpx.Request:
        signed = sign_request(
            method="POST",
            host=self._host,
            query=query,
            credentials=self._credentials,
            date=format_date(self._clock()),
            nonce=uuid.uuid4().hex,
            action=action,
            user_agent=_USER_AGENT,
        )
        return httpx.Request(
            "POST",
            f"{self._base}/?{signed.query}",
            headers=signed.headers,
            extensions={"timeout": self._timeout.as_dict()},
        )

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        # Straight to the transport: AsyncClient's cookie, auth and redirect machinery costs
        # ~0.4 ms a request and none of it applies to a signed one-shot POST.
        response = await self._transport.handle_async_request(request)
        await response.aread()
        return response

    async def send(self, query: Mapping[str, str]) -> Reply:
        """One SendChatappMessage call, classified."""
        try:
            response = await self._exchange(self._request(query, "SendChatappMessage"))
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Reply(ReplyKind.RETRY, code="ConnectError", message=_brief(exc))
        except httpx.TimeoutException as exc:
            return Reply(ReplyKind.UNKNOWN, code="Timeout", message=_brief(exc))
        except httpx.TransportError as exc:
            return Reply(ReplyKind.UNKNOWN, code=type(exc).__name__, message=_brief(exc))
        crash_point("after_send")
        headers = {k.lower(): v for k, v in response.headers.items()}
        return classify_reply(response.status_code, headers, response.content)

    async def call(self, action: str, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Any other CAMS action (e.g. ListChatappMessage): status and parsed JSON body."""
        response = await self._exchange(self._request(query, action))
        try:
            body = json.loads(response.content)
        except ValueError:
            body = {}
        return response.status_code, body if isinstance(body, dict) else {}

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> CamsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _brief(exc: Exception) -> str:
    return (str(exc) or type(exc).__name__)[:200]
