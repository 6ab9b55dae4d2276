"""What every route shares: the app's state (workspace, runner, templates, session codec),
the session guard with its CSRF check, and page rendering with autoescaped templates."""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from campaigner.web.auth import (
    COOKIE,
    SESSION_MAX_AGE_S,
    AttemptLimiter,
    Password,
    Session,
    SessionCodec,
    csrf_ok,
    load_secret_key,
)
from campaigner.web.reports import ReportRebuilds
from campaigner.web.runner import Runner
from campaigner.web.uploads import UploadError, read_form
from campaigner.web.workspace import Workspace

__all__ = (
    "EVENT_EVERY_S",
    "Handler",
    "Shared",
    "Web",
    "page",
    "redirect",
    "safe_next",
    "signed_in",
    "web",
)

Handler = Callable[[Request], Awaitable[Response]]

# A run's figures are read once per this, however many pages watch it: a little under the
# run page's beat (EVENT_EVERY_S), so each event still shows figures read for it.
EVENT_EVERY_S = 0.33  # the run page updates at least once a second, with room to spare
STATUS_FRESH_S = 0.25


class Shared:
    """Values computed at most once per ``fresh_s`` per key and handed to every caller
    meanwhile: a run watched from ten pages is read once per beat, not ten times."""

    def __init__(self, fresh_s: float) -> None:
        self._fresh_s = fresh_s
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._values: dict[str, tuple[float, Any]] = {}

    def fresh(self, key: str) -> Any | None:
        """The value if it is fresh (no waiting: the event loop may ask)."""
        found = self._values.get(key)
        if found is None or time.monotonic() - found[0] >= self._fresh_s:
            return None
        return found[1]

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        """The fresh value, or ``compute()``'s (callers asking meanwhile wait for it)."""
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            value = self.fresh(key)
            if value is None:
                value = compute()
                self._values[key] = (time.monotonic(), value)
            return value

    def forget(self, key: str) -> None:
        """After an action (pause, resume, ...): the next caller computes anew."""
        self._values.pop(key, None)


class Web:
    """The web app's state, one per server."""

    def __init__(
        self,
        out: Path,
        *,
        sandbox: bool = False,
        endpoint: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.workspace = Workspace(out)
        self.sandbox = sandbox
        env = dict(os.environ) if environ is None else environ
        self.password = Password.load(self.workspace.web_dir, env)
        self.codec = SessionCodec(load_secret_key(self.workspace.web_dir))
        self.limiter = AttemptLimiter()
        self.runner = Runner(self.workspace, sandbox=sandbox, endpoint=endpoint)
        self.reports = ReportRebuilds()
        self.statuses = Shared(STATUS_FRESH_S)  # run pages' figures by run id
        self.templates = jinja2.Environment(
            loader=jinja2.PackageLoader("campaigner.web", "templates"),
            autoescape=True,  # every page: cells, column and file names, CAMS messages
            undefined=jinja2.StrictUndefined,
        )


def web(request: Request) -> Web:
    state: Web = request.app.state.web
    return state


def is_https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def session_of(request: Request) -> Session | None:
    return web(request).codec.loads(request.cookies.get(COOKIE))


def set_session(request: Request, response: Response, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        web(request).codec.dumps(session),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
        path="/",
    )


def page(request: Request, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
    session: Session | None = getattr(request.state, "session", None)
    html = (
        web(request)
        .templates.get_template(template)
        .render(
            csrf=session.csrf if session else "",
            signed_in=bool(session and session.signed_in),
            sandbox=web(request).sandbox,
            **values,
        )
    )
    return HTMLResponse(html, status_code=status)


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None) -> str:
    """Only a path on this site (``//host`` and ``/\\host`` are other sites to a browser)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


async def form_of(request: Request) -> FormData:
    """The POST body's form, read once (uploads streamed to disk, bounded in size)."""
    cached: FormData | None = getattr(request.state, "form", None)
    if cached is None:
        cached = await read_form(request)
        request.state.form = cached
    return cached


def signed_in(handler: Handler) -> Handler:
    """A session is required (else to sign-in); a POST needs its CSRF token (else 403)."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        session = session_of(request)
        if session is None or not session.signed_in:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return redirect("/signin?next=" + quote(target, safe=""))
        request.state.session = session
        if request.method not in ("GET", "HEAD"):
            token = request.headers.get("x-csrf-token")
            if token is None:
                try:
                    value = (await form_of(request)).get("csrf_token")
                except UploadError as exc:
                    return PlainTextResponse(str(exc), exc.status)
                token = value if isinstance(value, str) else None
            if not csrf_ok(session, token):
                return PlainTextResponse("the form has expired: reload the page", 403)
        return await handler(request)

    return guarded
