"""A fake of the few SMQ (MNS) and dybaseapi calls ``campaigner receive --queue`` makes, over
loopback HTTP, so the official ``aliyun-mns-sdk`` and ``alibabacloud-dybaseapi20170525``
packages talk to it unchanged.

- ``POST /?Action=QueryTokenForMnsQueue`` (dybaseapi, RPC style): temporary queue
  credentials that expire after ``token_ttl_s``; ``ExpireTime`` as Alibaba's China-region
  APIs write times (``YYYY-MM-DD HH:MM:SS``, UTC+8).
- ``GET /queues/<name>/messages?numOfMessages=N&waitseconds=W`` (MNS BatchReceiveMessage):
  up to N visible messages, each hidden for ``visibility_s`` under a fresh receipt handle;
  ``MessageNotExist`` (404) after a long poll of W seconds finds none.
- ``DELETE /queues/<name>/messages`` with ``<ReceiptHandles>`` (MNS BatchDeleteMessage).
- A request whose ``security-token`` header is not a live token is refused with 403
  ``SecurityTokenExpired``, and counted: a consumer must refresh before expiry.

Signatures are not checked: the official packages compute them; what matters here is that
messages are received, stored and only then deleted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from defusedxml import ElementTree

__all__ = ("FakeQueues", "QueuedMessage")

_CHINA = timezone(timedelta(hours=8))
_NS = "http://mns.aliyuncs.com/doc/v1/"


@dataclass
class QueuedMessage:
    message_id: str
    body: str  # as MNS returns it: text, base64-encoded or not
    enqueued_ms: int
    visible_at: float = 0.0
    handle: str | None = None
    dequeue_count: int = 0
    first_dequeue_ms: int = 0


@dataclass
class FakeQueues:
    """The fake, started on a free loopback port by ``start()``; ``url`` is its base URL."""

    token_ttl_s: float = 3600.0
    visibility_s: float = 30.0
    queues: dict[str, list[QueuedMessage]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # security token -> expiry (epoch s)
    tokens_issued: int = 0
    expired_uses: int = 0
    deleted: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    # -- the test's side ---------------------------------------------------------------
    def put(self, queue: str, body: bytes, *, base64_body: bool = False) -> str:
        """Enqueue one message (its body base64-encoded, or as UTF-8 text); its id."""
        text = base64.b64encode(body).decode() if base64_body else body.decode("utf-8")
        message = QueuedMessage(secrets.token_hex(16).upper(), text, int(time.time() * 1000))
        with self._lock:
            self.queues.setdefault(queue, []).append(message)
            self._lock.notify_all()
        return message.message_id

    def remaining(self, queue: str) -> int:
        with self._lock:
            return len(self.queues.get(queue, []))

    def start(self) -> FakeQueues:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: tests read the counters

            def do_POST(self) -> None:
                fake._token(self)

            def do_GET(self) -> None:
                fake._receive(self)

            def do_DELETE(self) -> None:
                fake._delete(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeQueues:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- the calls ----------------------------------------------------------------------
    def _token(self, request: BaseHTTPRequestHandler) -> None:
        form = parse_qs(_read_body(request).decode("utf-8", "replace"))
        query = parse_qs(urlsplit(request.path).query)
        # The action travels in the query (RPC signature v2) or a header (v3), by SDK version.
        action = (
            request.headers.get("x-acs-action")
            or (query.get("Action") or form.get("Action") or [""])[0]
        )
        if action != "QueryTokenForMnsQueue":
            _answer(request, 400, b'{"Code":"InvalidAction"}', "application/json")
            return
        now = time.time()
        token = "STS." + secrets.token_urlsafe(24)
        with self._lock:
            self.tokens[token] = now + self.token_ttl_s
            self.tokens_issued += 1
        expire = datetime.fromtimestamp(now + self.token_ttl_s, UTC).astimezone(_CHINA)
        created = datetime.fromtimestamp(now, UTC).astimezone(_CHINA)
        dto = {
            "AccessKeyId": "STS.fake-" + secrets.token_hex(4),
            "AccessKeySecret": secrets.token_urlsafe(16),
            "SecurityToken": token,
            "CreateTime": created.strftime("%Y-%m-%d %H:%M:%S"),
            "ExpireTime": expire.strftime("%Y-%m-%d %H:%M:%S"),
        }
        body = {"Code": "OK", "Message": "OK", "RequestId": secrets.token_hex(8),
                "MessageTokenDTO": dto}  # fmt: skip
        _answer(request, 200, json.dumps(body).encode(), "application/json")

    def _authorized(self, request: BaseHTTPRequestHandler) -> bool:
        token = request.headers.get("security-token", "")
        with self._lock:
            expiry = self.tokens.get(token)
            if expiry is not None and expiry > time.time():
                return True
            self.expired_uses += 1
        _error(request, 403, "SecurityTokenExpired", "the security token has expired")
        return False

    def _receive(self, request: BaseHTTPRequestHandler) -> None:
        if not self._authorized(request):
            return
        parts = urlsplit(request.path)
        name = parts.path.split("/")[2]
        query = parse_qs(parts.query)
        size = int(query.get("numOfMessages", ["1"])[0])
        deadline = time.monotonic() + float(query.get("waitseconds", ["0"])[0])
        with self._lock:
            while True:
                now = time.time()
                ready = [m for m in self.queues.get(name, []) if m.visible_at <= now][:size]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    break
                self._lock.wait(timeout=min(left, 0.2))
            for message in ready:
                message.visible_at = now + self.visibility_s
                message.handle = secrets.token_hex(12)
                message.dequeue_count += 1
                message.first_dequeue_ms = message.first_dequeue_ms or int(now * 1000)
            xml = "".join(_message_xml(m, int(now * 1000)) for m in ready)
        if not ready:
            _error(request, 404, "MessageNotExist", "Message not exist.")
            return
        body = f'<?xml version="1.0" encoding="UTF-8"?><Messages xmlns="{_NS}">{xml}</Messages>'
        _answer(request, 200, body.encode(), "text/xml")

    def _delete(self, request: BaseHTTPRequestHandler) -> None:
        data = _read_body(request)
        if not self._authorized(request):
            return
        name = urlsplit(request.path).path.split("/")[2]
        handles = {el.text for el in ElementTree.fromstring(data).iter() if el.text}
        with self._lock:
            kept = [m for m in self.queues.get(name, []) if m.handle not in handles]
            self.deleted += len(self.queues.get(name, [])) - len(kept)
            self.queues[name] = kept
        _answer(request, 204, b"", "text/xml")


def _message_xml(message: QueuedMessage, now_ms: int) -> str:
    md5 = hashlib.md5(message.body.encode(), usedforsecurity=False).hexdigest().upper()
    return (
        f"<Message><MessageId>{message.message_id}</MessageId>"
        f"<ReceiptHandle>{message.handle}</ReceiptHandle><MessageBodyMD5>{md5}</MessageBodyMD5>"
        f"<MessageBody>{escape(message.body)}</MessageBody>"
        f"<EnqueueTime>{message.enqueued_ms}</EnqueueTime>"
        f"<NextVisibleTime>{int(message.visible_at * 1000)}</NextVisibleTime>"
        f"<FirstDequeueTime>{message.first_dequeue_ms}</FirstDequeueTime>"
        f"<DequeueCount>{message.dequeue_count}</DequeueCount><Priority>8</Priority></Message>"
    )


def _read_body(request: BaseHTTPRequestHandler) -> bytes:
    length = int(request.headers.get("content-length") or 0)
    return request.rfile.read(length) if length else b""


def _error(request: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error xmlns="{_NS}"><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>{secrets.token_hex(8)}</RequestId>"
        "<HostId>http://127.0.0.1</HostId></Error>"
    )
    _answer(request, status, body.encode(), "text/xml")


def _answer(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
    request.send_response(status)
    request.send_header("Content-Type", kind)
    request.send_header("Content-Length", str(len(body)))
    request.send_header("x-mns-request-id", secrets.token_hex(8))
    request.end_headers()
    request.wfile.write(body)
