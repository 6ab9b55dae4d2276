"""HTTP/1.1 on the wire, I/O-free, in the style of h11: a request's bytes, a response parsed.

``request_bytes`` writes a request; ``ResponseParser`` takes bytes in (``feed``,
``feed_eof``) and gives a ``Response`` once it is whole: Content-Length, chunked and
read-until-close bodies, interim 1xx answers skipped, and whether the connection may be
reused afterwards. No sockets, no event loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = (
    "MAX_BODY",
    "MAX_HEAD",
    "ProtocolError",
    "Response",
    "ResponseParser",
    "request_bytes",
)

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
_NO_BODY_STATUS = frozenset({204, 304})
_IN_TRAILERS = -2  # chunk state after the last (empty) chunk


def request_bytes(
    method: bytes, target: bytes, headers: Iterable[tuple[bytes, bytes]], body: bytes = b""
) -> bytes:
    """A whole request as written: request line, headers in the order given, body.

    ``target`` is the path and query, already canonical; ``headers`` already carry Host
    and Content-Length (nothing is added).
    """
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if body:
        parts.append(body)
    return b"".join(parts)


class ProtocolError(Exception):
    """The bytes are not an HTTP/1.1 response (or one larger than the limits)."""


@dataclass(frozen=True, slots=True)
class Response:
    """One whole response: status, raw header pairs, body, and whether to keep the
    connection (False after ``Connection: close``, HTTP/1.0, a body read until close, or
    bytes beyond the announced length)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


class ResponseParser:
    """Parses one response at a time; ``reset`` before the next request's answer.

    ``feed`` returns the ``Response`` once its last byte is in (None until then) and
    raises ``ProtocolError`` on malformed input; ``feed_eof`` tells it the server closed:
    that ends a body with neither length nor chunks (None if the response is incomplete).
    """

    __slots__ = (
        "_body",
        "_buf",
        "_chunk_left",
        "_chunked",
        "_head_only",
        "_headers",
        "_keep_alive",
        "_length",
        "_status",
    )

    def __init__(self, *, head_request: bool = False) -> None:
        self.reset(head_request=head_request)

    def reset(self, *, head_request: bool = False) -> None:
        """Ready for the answer to a new request (``head_request``: a HEAD, no body)."""
        self._head_only = head_request
        self._buf = bytearray()
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] | None = None
        self._length: int | None = None  # Content-Length; None: chunked or until close
        self._chunked = False
        self._chunk_left = -1  # -1: expecting a chunk-size line; _IN_TRAILERS: after the last
        self._body = bytearray()
        self._keep_alive = True

    @property
    def in_head(self) -> bool:
        """True until the response head (status line and headers) has been read."""
        return self._headers is None

    def feed(self, data: bytes) -> Response | None:
        """Take the next bytes from the connection; the Response once it is complete."""
        self._buf += data
        return self._response() if self._parse() else None

    def feed_eof(self) -> Response | None:
        """The server closed: the Response if that completes one (read until close)."""
        if self._headers is None or self._length is not None or self._chunked:
            return None
        self._keep_alive = False
        self._body = self._buf
        return self._response()

    def _response(self) -> Response:
        assert self._headers is not None
        return Response(self._status, self._headers, bytes(self._body), self._keep_alive)

    def _parse(self) -> bool:
        """Consume buffered bytes; True once the whole response is in."""
        buf = self._buf
        if self._headers is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise ProtocolError("response head too large")
                return False
            head = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            status_line = head[0].split(b" ", 2)
            if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
                raise ProtocolError(f"bad status line {head[0][:80]!r}")
            try:
                status = int(status_line[1])
            except ValueError:
                raise ProtocolError(f"bad status line {head[0][:80]!r}") from None
            headers = []
            for line in head[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    raise ProtocolError("bad header line")
                headers.append((name.strip(), value.strip()))
            if 100 <= status < 200:  # interim answer (100 Continue): the real one follows
                return self._parse() if buf else False
            self._status, self._headers = status, headers
            self._keep_alive = status_line[0] != b"HTTP/1.0"
            self._read_framing(headers)
            if status in _NO_BODY_STATUS or self._head_only:
                self._length = 0
            elif self._length is None and not self._chunked:
                self._keep_alive = False  # read until the server closes
        if self._chunked:
            return self._parse_chunks()
        if self._length is None:
            if len(buf) > MAX_BODY:
                raise ProtocolError("response body too large")
            return False
        if len(buf) >= self._length:
            if len(buf) > self._length:
                self._keep_alive = False  # trailing bytes: do not reuse
            self._body = buf[: self._length]
            return True
        return False

    def _read_framing(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Content-Length, Transfer-Encoding and Connection from the head."""
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-length":
                try:
                    self._length = int(value)
                except ValueError:
                    raise ProtocolError("bad Content-Length") from None
            elif lname == b"transfer-encoding":
                self._chunked = b"chunked" in value.lower()
            elif lname == b"connection":
                v = value.lower()
                if b"close" in v:
                    self._keep_alive = False
                elif b"keep-alive" in v:
                    self._keep_alive = True
        if self._chunked:
            self._length = None

    def _parse_chunks(self) -> bool:
        buf = self._buf
        while True:
            if self._chunk_left == _IN_TRAILERS:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                    return True
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return False
                del buf[: end + 4]  # trailers, ignored
                return True
            if self._chunk_left < 0:
                eol = buf.find(b"\r\n")
                if eol < 0:
                    return False
                size_text = bytes(buf[:eol]).split(b";", 1)[0].strip()
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError("bad chunk size") from None
                del buf[: eol + 2]
                # The last chunk: then trailers (ignored) up to an empty line.
                self._chunk_left = _IN_TRAILERS if size == 0 else size
                continue
            if len(buf) < self._chunk_left + 2:
                return False
            self._body += buf[: self._chunk_left]
            if len(self._body) > MAX_BODY:
                raise ProtocolError("response body too large")
            del buf[: self._chunk_left + 2]
            self._chunk_left = -1
