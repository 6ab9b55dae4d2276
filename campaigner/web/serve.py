"""``campaigner serve``: the web app on uvicorn until a signal stops it.

The socket is bound and listening before anything is printed, so the printed address (a
free port for ``--port 0``) already takes connections. uvicorn's access log is off: paths
carry run names and, for receipts, the callback token."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from campaigner.errors import CampaignerError
from campaigner.limits import WEB_HEADERS_TIMEOUT_S
from campaigner.listening import bind_listener, headers_deadline_protocol, is_loopback
from campaigner.web.app import create_app
from campaigner.web.auth import PASSWORD_ENV, PASSWORD_FILE
from campaigner.web.context import Web

__all__ = ("serve",)

_BACKLOG = 1024
_GRACEFUL_S = 5  # open event streams are closed after this at shutdown


def serve(
    *,
    host: str,
    port: int,
    out: Path,
    sandbox: bool,
    endpoint: str | None = None,
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> None:
    """Serve until SIGINT/SIGTERM; ``say`` the address (and a generated password, once)."""
    import uvicorn

    web = Web(out, sandbox=sandbox, endpoint=endpoint)
    app = create_app(web)
    sock = bind_listener(host, port, backlog=_BACKLOG, error=CampaignerError)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        app,
        http=headers_deadline_protocol(WEB_HEADERS_TIMEOUT_S),
        access_log=False,
        log_config=None,
        log_level="warning",
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_S,
    )
    server = uvicorn.Server(config)

    def stop(signum: int, frame: object) -> None:
        server.should_exit = True

    try:
        # A stop from now on is graceful (runs stop, the workspace keeps which to resume):
        # uvicorn takes SIGINT/SIGTERM over once it runs, and until then this asks it to stop
        # as soon as it has started. It raises the signal again at the end, for the handler
        # it found: this one, so that the stop is a clean exit.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, stop)
        if not is_loopback(host):
            warn(
                f"warning: listening on {host}, not only this machine: put a TLS proxy "
                "(https) in front, or passwords and reports cross the network in clear"
            )
        say(f"campaigner web: http://{shown}:{bound_port}/")
        if web.password.generated:
            say(f"password: {web.password.generated}")
        if os.environ.get(PASSWORD_ENV) is None and not web.password.generated:
            warn(
                "sign in with the password printed at the first start (lost? delete "
                f"{web.workspace.web_dir / PASSWORD_FILE} and start again, or set {PASSWORD_ENV})"
            )
        server.run(sockets=[sock])
    finally:
        sock.close()
