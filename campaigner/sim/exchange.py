"""A request and its answer as plain values: what a server hands the gateway and what it writes
back (a reply: status, headers, body; a reset; a hang). Bodies: docs/simulator.md#answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = (
    "JSON_CONTENT_TYPE",
    "MESSAGE_500",
    "MESSAGE_503",
    "MESSAGE_LIMIT",
    "Answer",
    "Hang",
    "Reply",
    "Request",
    "Reset",
    "error_reply",
    "json_reply",
    "malformed_reply",
)

JSON_CONTENT_TYPE = "application/json;charset=utf-8"
MESSAGE_LIMIT = "The system is under flow control."
MESSAGE_503 = "The request has failed due to a temporary failure of the server."
MESSAGE_500 = "The request processing has failed due to some unknown error, exception or failure."


@dataclass(frozen=True, slots=True)
class Request:
    """A received request: every parameter is in the raw query; ``arrived`` is monotonic."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]  # (name, value) as received, repeats allowed
    body: bytes
    arrived: float
    arrived_wall: float

    def first_headers(self) -> dict[str, str]:
        """Header names in lower case → their first value."""
        first: dict[str, str] = {}
        for name, value in self.headers:
            first.setdefault(name.lower(), value)
        return first


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer to write as is."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class Reset:
    """Drop the connection with a TCP RST and no answer; ``kind`` names why."""

    kind: str


@dataclass(frozen=True, slots=True)
class Hang:
    """Answer nothing for ``seconds`` (or until the server stops), then reset the connection."""

    kind: str
    seconds: float


Answer = Reply | Reset | Hang


def json_reply(
    status: int,
    body: Mapping[str, Any],
    request_id: str,
    *,
    close: bool = False,
    extra: Mapping[str, str] | None = None,
) -> Reply:
    """A compact JSON answer with the gateway's content type and ``x-acs-request-id``."""
    headers = {"Content-Type": JSON_CONTENT_TYPE, "x-acs-request-id": request_id}
    if close:
        headers["Connection"] = "close"
    if extra:
        headers.update(extra)
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return Reply(status, headers, data)


def error_reply(
    status: int,
    code: str,
    message: str,
    request_id: str,
    host_id: str,
    *,
    gateway: bool = True,
    close: bool = False,
    extra: Mapping[str, str] | None = None,
) -> Reply:
    """An error: the gateway shape ``{RequestId, HostId, Code, Message, Recommend}``, or with
    ``gateway=False`` the backend's ``{RequestId, Code, Message}``."""
    body: dict[str, Any] = {"RequestId": request_id}
    if gateway:
        body["HostId"] = host_id
    body["Code"] = code
    body["Message"] = message
    if gateway:
        body["Recommend"] = f"https://api.aliyun.com/troubleshoot?q={code}"
    return json_reply(status, body, request_id, close=close, extra=extra)


def malformed_reply(variant: int, request_id: str, message_id: str) -> Reply:
    """A 200 the client cannot use: truncated JSON (0), an HTML page (1), no MessageId (2)."""
    headers = {"x-acs-request-id": request_id}
    if variant == 0:
        full = json.dumps({"RequestId": request_id, "Code": "OK", "MessageId": message_id})
        body = full[: len(full) // 2].encode()
        return Reply(200, {**headers, "Content-Type": JSON_CONTENT_TYPE}, body)
    if variant == 1:
        html = "<html><body><h1>200 OK</h1><p>Welcome to tengine!</p></body></html>"
        return Reply(200, {**headers, "Content-Type": "text/html"}, html.encode())
    return json_reply(200, {"RequestId": request_id, "Code": "OK", "Message": "OK"}, request_id)
