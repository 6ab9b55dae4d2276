"""The servers' listening socket: the caller's error class, in one line, with a hint for a
port in use; loopback hosts told apart. (The header deadline is tested on the live servers:
tests/test_receiver_hostile.py and tests/test_web_routes_live.py.)"""

from __future__ import annotations

import socket

import pytest

from campaigner.errors import ReceiverError
from campaigner.listening import bind_listener, is_loopback


def test_a_free_port_is_bound_and_listening() -> None:
    with bind_listener("127.0.0.1", 0, backlog=8, error=ReceiverError) as sock:
        port = sock.getsockname()[1]
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=30):
            pass


def test_a_port_in_use_is_the_callers_error_with_the_hint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ReceiverError) as raised:
            bind_listener("127.0.0.1", port, backlog=8, error=ReceiverError)
    assert str(raised.value) == (
        f"cannot listen on 127.0.0.1:{port}: Address already in use (--port 0 picks a free one)"
    )


def test_an_unknown_host_is_one_line_without_the_hint() -> None:
    with pytest.raises(ReceiverError) as raised:
        bind_listener("no-such-host.invalid", 0, backlog=8, error=ReceiverError)
    message = str(raised.value)
    assert message.startswith("cannot listen on no-such-host.invalid:0: ")
    assert "\n" not in message and "--port 0" not in message


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
