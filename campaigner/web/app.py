"""The web app: its routes, static files, security headers, and what happens at start
(runs a dead server was sending are resumed) and at stop (runs stop gracefully)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigner.receipts.receiver import receiver_routes
from campaigner.web import new_pages, preview_pages, run_pages, signin
from campaigner.web.context import Web

__all__ = ("CALLBACK_TOKEN_ENV", "CSP", "create_app")

log = logging.getLogger(__name__)

CALLBACK_TOKEN_ENV = "CAMPAIGNER_CALLBACK_TOKEN"  # noqa: S105 (a variable name)
# No inline script or style anywhere: every script is a file under /static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_STATIC = Path(__file__).with_name("static")


class SecurityHeaders:
    """CSP and friends on every response; pages (not static files) are never cached."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        https = scope.get("scheme") == "https" or any(
            name == b"x-forwarded-proto" and value.split(b",")[0].strip().lower() == b"https"
            for name, value in scope.get("headers", [])
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += _HEADERS
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                if https:  # browsers keep to https for this host from then on
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


def _receipt_routes(out: Path, environ: dict[str, str]) -> list[BaseRoute]:
    """CAMS's receipt callbacks (no session: CAMS holds the token), when a token is set."""
    token = environ.get(CALLBACK_TOKEN_ENV)
    if not token:
        return []
    return receiver_routes(out, token)


def create_app(web: Web, *, environ: dict[str, str] | None = None) -> Starlette:
    env = dict(os.environ) if environ is None else environ

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        resumed = await anyio.to_thread.run_sync(web.runner.recover)
        for run_id in resumed:
            log.warning("resuming %s (it was sending when the server stopped)", run_id)
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(web.runner.shutdown)

    routes: list[BaseRoute] = [
        *signin.routes,
        *run_pages.routes,
        *new_pages.routes,
        *preview_pages.routes,
        *_receipt_routes(web.workspace.out, env),
        Mount("/static", StaticFiles(directory=_STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.web = web
    app.add_middleware(SecurityHeaders)
    return app
