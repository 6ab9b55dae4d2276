"""Signing in and out: one team password, 5 failed attempts a minute per client."""

from __future__ import annotations

import math

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from campaigner.web.auth import COOKIE, Session, csrf_ok
from campaigner.web.context import (
    form_of,
    page,
    redirect,
    safe_next,
    session_of,
    set_session,
    signed_in,
    web,
)
from campaigner.web.uploads import UploadError

__all__ = ("routes",)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def signin_form(request: Request) -> Response:
    session = session_of(request) or Session.fresh()
    request.state.session = session
    response = page(request, "signin.html", next=safe_next(request.query_params.get("next")))
    set_session(request, response, session)
    return response


async def signin(request: Request) -> Response:
    app = web(request)
    client = _client(request)
    wait = app.limiter.wait_s(client)
    if wait > 0:
        seconds = math.ceil(wait)
        return PlainTextResponse(
            f"too many failed sign-ins: try again in {seconds} s",
            429,
            headers={"Retry-After": str(seconds)},
        )
    session = session_of(request)
    try:
        form = await form_of(request)
    except UploadError as exc:
        return PlainTextResponse(str(exc), exc.status)
    token, password = form.get("csrf_token"), form.get("password")
    if not csrf_ok(session, token if isinstance(token, str) else None):
        return PlainTextResponse("the form has expired: reload the page", 403)
    next_page = safe_next(str(form.get("next") or "/"))
    ok = isinstance(password, str) and await anyio.to_thread.run_sync(
        app.password.matches, password
    )
    if not ok:
        app.limiter.failed(client)
        request.state.session = session
        return page(request, "signin.html", status=401, next=next_page, error="Wrong password.")
    response = redirect(next_page)
    set_session(request, response, Session.fresh(signed_in=True))  # a new token once signed in
    return response


@signed_in
async def signout(request: Request) -> Response:
    response = redirect("/signin")
    response.delete_cookie(COOKIE, path="/")
    return response


routes = [
    Route("/signin", signin_form, methods=["GET"]),
    Route("/signin", signin, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
]
