"""The I/O-free HTTP/1.1 response parser, on byte strings: every framing, split at every byte."""

from __future__ import annotations

import pytest

from campaigner.send.http11 import MAX_HEAD, ProtocolError, Response, ResponseParser

LENGTH = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'4\r\n{"ok\r\n7;ext=1\r\n":true}\r\n0\r\n\r\n'
)
CHUNKED_TRAILERS = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'b\r\n{"ok":true}\r\n0\r\nX-Trailer: yes\r\n\r\n'
)
UNTIL_CLOSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"ok":true}'
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\n" + LENGTH


def parse_whole(data: bytes, *, eof: bool = False) -> Response | None:
    parser = ResponseParser()
    response = parser.feed(data)
    if response is None and eof:
        response = parser.feed_eof()
    return response


def parse_bytewise(data: bytes, *, eof: bool = False) -> Response | None:
    """Feed one byte at a time; the response must come with the last byte, not before."""
    parser = ResponseParser()
    for i in range(len(data)):
        response = parser.feed(data[i : i + 1])
        if i < len(data) - 1:
            assert response is None, f"complete after {i + 1} of {len(data)} bytes"
    if eof:
        assert response is None
        response = parser.feed_eof()
    return response


@pytest.mark.parametrize(
    ("data", "eof"),
    [
        (LENGTH, False),
        (CHUNKED, False),
        (CHUNKED_TRAILERS, False),
        (INTERIM, False),
        (UNTIL_CLOSE, True),
    ],
    ids=["content-length", "chunked", "chunked-trailers", "interim-100", "until-close"],
)
def test_every_framing_whole_bytewise_and_split_at_every_byte(data: bytes, eof: bool) -> None:
    expected = parse_whole(data, eof=eof)
    assert expected is not None
    assert expected.status == 200 and expected.body == b'{"ok":true}'
    assert parse_bytewise(data, eof=eof) == expected
    for cut in range(1, len(data)):
        parser = ResponseParser()
        first = parser.feed(data[:cut])
        assert first is None
        second = parser.feed(data[cut:])
        if eof:
            assert second is None
            second = parser.feed_eof()
        assert second == expected, f"split at byte {cut}"


def test_keep_alive_follows_the_framing_and_the_version() -> None:
    assert parse_whole(LENGTH) == Response(
        200,
        [(b"Content-Type", b"application/json"), (b"Content-Length", b"11")],
        b'{"ok":true}',
        keep_alive=True,
    )
    until_close = parse_whole(UNTIL_CLOSE, eof=True)
    assert until_close is not None and not until_close.keep_alive
    closing = parse_whole(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert closing is not None and not closing.keep_alive
    old = parse_whole(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert old is not None and not old.keep_alive
    old_kept = parse_whole(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
    )
    assert old_kept is not None and old_kept.keep_alive
    trailing = parse_whole(LENGTH + b"HTTP/1.1")  # bytes beyond the body: do not reuse
    assert trailing is not None and trailing.body == b'{"ok":true}' and not trailing.keep_alive


def test_bodyless_answers_end_at_the_head() -> None:
    no_content = parse_whole(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert no_content is not None and no_content.body == b"" and no_content.keep_alive
    parser = ResponseParser(head_request=True)
    head = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    assert head is not None and head.body == b""


def test_incomplete_at_eof_is_none() -> None:
    assert parse_whole(LENGTH[:-1], eof=True) is None
    assert parse_whole(CHUNKED[:-2], eof=True) is None
    assert parse_whole(b"HTTP/1.1 200 OK\r\n", eof=True) is None


def test_reset_reads_the_next_response() -> None:
    parser = ResponseParser()
    assert parser.feed(LENGTH) is not None
    parser.reset()
    assert parser.in_head
    second = parser.feed(CHUNKED)
    assert second is not None and second.body == b'{"ok":true}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/2 200 OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 abc OK\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * MAX_HEAD, "response head too large"),
    ],
)
def test_malformed_input_is_a_protocol_error(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        ResponseParser().feed(data)
