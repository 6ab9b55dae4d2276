"""``campaigner receive``: the receiver alone, served by uvicorn until a signal stops it.

The socket is bound before uvicorn starts, so the port (``0``: any free one) is known and
announced before the first request, and a port in use is a clear error rather than a log line.
uvicorn's access log is off: it would write the callback path, and the path holds the token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from campaigner.errors import ReceiverError
from campaigner.limits import RECEIPT_HEADERS_TIMEOUT_S, RECEIPT_KEEP_ALIVE_S
from campaigner.listening import bind_listener, headers_deadline_protocol, is_loopback
from campaigner.receipts.receiver import INBOUND_PATH, STATUS_PATH, check_token, receiver_app
from campaigner.receipts.store import RECEIPTS_NAME

__all__ = ("Listening", "run_receiver")

_BACKLOG = 2048
_GRACEFUL_S = 10.0


@dataclass(frozen=True, slots=True)
class Listening:
    """Where a started receiver listens and stores; the URLs show the token as ``<token>``."""

    host: str
    port: int
    store: Path
    loopback: bool

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def status_url(self) -> str:
        return self.base_url + STATUS_PATH.replace("{token}", "<token>")

    @property
    def inbound_url(self) -> str:
        return self.base_url + INBOUND_PATH.replace("{token}", "<token>")


def run_receiver(
    workspace: Path,
    token: str | None,
    *,
    host: str,
    port: int,
    on_ready: Callable[[Listening], None] = lambda _: None,
) -> None:
    """Serve the callback endpoints until SIGINT/SIGTERM; ``on_ready`` once it listens."""
    import uvicorn

    app = receiver_app(workspace, check_token(token))
    sock = bind_listener(host, port, backlog=_BACKLOG, error=ReceiverError)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app,
        http=headers_deadline_protocol(RECEIPT_HEADERS_TIMEOUT_S),
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="off",
        server_header=False,
        timeout_keep_alive=int(RECEIPT_KEEP_ALIVE_S),
        timeout_graceful_shutdown=int(_GRACEFUL_S),
    )
    try:
        on_ready(Listening(bound_host, bound_port, workspace / RECEIPTS_NAME, is_loopback(host)))
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
