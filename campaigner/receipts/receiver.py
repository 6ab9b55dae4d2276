"""The HTTP callback endpoints CAMS pushes receipts and inbound messages to.

``POST /cams/status/<token>`` and ``POST /cams/inbound/<token>``: a wrong token is a 404, a
body over ``RECEIPT_BODY_MAX_BYTES`` a 413 (counted while it streams in), a body that does
not arrive within ``RECEIPT_BODY_TIMEOUT_S`` a 408, a body that is not JSON objects a 400
with nothing stored. ``200 {"code":0,"msg":"OK"}`` is answered only after the commit, so a
receipt that got its 200 survives a crash; anything else makes CAMS send it again, and the
store keeps a repeat once.

Group commit: handlers hand parsed bodies to one writer thread, which commits everything
that arrived meanwhile in one transaction (one fsync for many requests) and then releases
their answers. The writer starts with the first request and stops after a quiet spell, so
the app needs no lifespan events (the sandbox runs it with lifespan off).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from campaigner.errors import ReceiptFormatError, ReceiverError, StorageError
from campaigner.limits import (
    CALLBACK_TOKEN_MIN_CHARS,
    RECEIPT_BODY_MAX_BYTES,
    RECEIPT_BODY_MAX_ITEMS,
    RECEIPT_BODY_TIMEOUT_S,
)
from campaigner.receipts.parse import Inbound, Receipt, parse_inbound_body, parse_status_body
from campaigner.receipts.store import ReceiptStore, Stored

__all__ = (
    "STATUS_PATH",
    "INBOUND_PATH",
    "ReceiptWriter",
    "check_token",
    "receiver_app",
    "receiver_routes",
)

logger = logging.getLogger(__name__)

STATUS_PATH = "/cams/status/{token}"
INBOUND_PATH = "/cams/inbound/{token}"

_TOKEN = re.compile(r"[A-Za-z0-9._~-]+")
_OK = b'{"code":0,"msg":"OK"}'
# Bodies above this are parsed off the event loop, so a big one never stalls the others.
_PARSE_IN_THREAD_BYTES = 32 * 1024
# One transaction takes what arrived meanwhile up to about this many rows.
_BATCH_ROWS = 20_000
# The writer thread stops after this long without work; the next request starts it again.
_IDLE_S = 5.0

Kind = Literal["status", "inbound"]


def check_token(token: str | None) -> str:
    """The callback token, or ``ReceiverError`` saying why it cannot be used."""
    if not token:
        raise ReceiverError(
            "set CAMPAIGNER_CALLBACK_TOKEN to a secret of at least "
            f"{CALLBACK_TOKEN_MIN_CHARS} characters (it is the callback URLs' last part)"
        )
    if len(token) < CALLBACK_TOKEN_MIN_CHARS:
        raise ReceiverError(
            f"CAMPAIGNER_CALLBACK_TOKEN is {len(token)} characters; use at least "
            f"{CALLBACK_TOKEN_MIN_CHARS} (e.g. python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(24))')"
        )
    if not _TOKEN.fullmatch(token):
        raise ReceiverError(
            "CAMPAIGNER_CALLBACK_TOKEN may hold only letters, digits and . _ ~ - "
            "(it goes into a URL path)"
        )
    return token


@dataclass(eq=False)
class _Job:
    receipts: Sequence[Receipt]
    inbound: Sequence[Inbound]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[Stored]
    rows: int = field(init=False)

    def __post_init__(self) -> None:
        self.rows = len(self.receipts) + len(self.inbound)


class ReceiptWriter:
    """One thread committing every waiting request's rows in one transaction."""

    def __init__(self, workspace: Path, source: str = "push") -> None:
        self.workspace = workspace
        self.source = source
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[_Job] = deque()
        self._running = False
        self.commits = 0  # transactions so far (for tests and benches)

    async def write(self, receipts: Sequence[Receipt], inbound: Sequence[Inbound]) -> Stored:
        """Store them; returns once they are committed. ``StorageError`` if they could not be."""
        loop = asyncio.get_running_loop()
        job = _Job(receipts, inbound, loop, loop.create_future())
        with self._lock:
            self._pending.append(job)
            if self._running:
                self._wake.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="receipt-writer", daemon=True).start()
        return await job.done

    def _take(self) -> list[_Job]:
        with self._lock:
            if not self._pending:
                self._wake.wait(timeout=_IDLE_S)
            if not self._pending:
                self._running = False
                return []
            taken: list[_Job] = []
            rows = 0
            while self._pending and (not taken or rows + self._pending[0].rows <= _BATCH_ROWS):
                job = self._pending.popleft()
                taken.append(job)
                rows += job.rows
            return taken

    def _run(self) -> None:
        # The store belongs to this thread: a writer stopping while the next one starts
        # must not close the other's connection.
        store: list[ReceiptStore] = []
        try:
            while jobs := self._take():
                outcome = self._commit(store, jobs)
                if isinstance(outcome, StorageError) and len(jobs) > 1:
                    # One bad request must not fail the others: each again on its own.
                    for job in jobs:
                        _settle(job, self._commit(store, [job]))
                    continue
                # Each job learns the totals of its transaction: enough for logs and tests.
                for job in jobs:
                    _settle(job, outcome)
        finally:
            _close(store)

    def _commit(self, store: list[ReceiptStore], jobs: list[_Job]) -> Stored | StorageError:
        try:
            if not store:
                store.append(ReceiptStore.open(self.workspace))
            stored = store[0].add(
                (r for job in jobs for r in job.receipts),
                (m for job in jobs for m in job.inbound),
                self.source,
            )
        except Exception as exc:  # StorageError, or a bug: never leave a request hanging
            logger.error("receipts not stored (the senders will retry): %s", exc)
            _close(store)
            return exc if isinstance(exc, StorageError) else StorageError(f"not stored: {exc!r}")
        self.commits += 1
        return stored


def _close(store: list[ReceiptStore]) -> None:
    while store:
        store.pop().close()


def _settle(job: _Job, outcome: Stored | BaseException) -> None:
    def resolve() -> None:
        if job.done.done():  # the request was cancelled (its client went away)
            return
        if isinstance(outcome, BaseException):
            job.done.set_exception(outcome)
        else:
            job.done.set_result(outcome)

    try:
        job.loop.call_soon_threadsafe(resolve)
    except RuntimeError:  # that loop has closed: nobody waits for the answer any more
        pass


def _answer(status: int, message: str) -> Response:
    body = json.dumps({"code": status, "msg": message}, ensure_ascii=False)
    return Response(body, status_code=status, media_type="application/json")


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > RECEIPT_BODY_MAX_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > RECEIPT_BODY_MAX_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(kind: Kind, body: bytes) -> tuple[list[Receipt], list[Inbound]]:
    if kind == "status":
        return parse_status_body(body, RECEIPT_BODY_MAX_ITEMS), []
    return [], parse_inbound_body(body, RECEIPT_BODY_MAX_ITEMS)


def _endpoint(kind: Kind, token: str, writer: ReceiptWriter) -> Route:
    expected = token.encode()

    async def receive(request: Request) -> Response:
        given = str(request.path_params.get("token", "")).encode()
        if not secrets.compare_digest(given, expected):
            return Response("Not Found", status_code=404, media_type="text/plain")
        try:
            async with asyncio.timeout(RECEIPT_BODY_TIMEOUT_S):
                body = await _read_body(request)
        except _TooLarge:
            return _closing(_answer(413, f"the body is over {RECEIPT_BODY_MAX_BYTES} bytes"))
        except TimeoutError:
            return _closing(_answer(408, "the body did not arrive in time"))
        except ClientDisconnect:
            return _answer(400, "the client went away")
        try:
            if len(body) > _PARSE_IN_THREAD_BYTES:
                receipts, inbound = await asyncio.to_thread(_parse, kind, body)
            else:
                receipts, inbound = _parse(kind, body)
        except ReceiptFormatError as exc:
            logger.warning("refused a body to /cams/%s (%d bytes): %s", kind, len(body), exc)
            return _answer(400, str(exc))
        if receipts or inbound:
            try:
                await writer.write(receipts, inbound)
            except StorageError:
                return _answer(503, "not stored; send it again")
        return Response(_OK, media_type="application/json")

    path = STATUS_PATH if kind == "status" else INBOUND_PATH
    return Route(path, receive, methods=["POST"], name=f"cams-{kind}")


def _closing(response: Response) -> Response:
    # The rest of a refused body is not read: the connection cannot carry another request.
    response.headers["connection"] = "close"
    return response


def receiver_routes(
    workspace: Path, token: str, writer: ReceiptWriter | None = None
) -> list[BaseRoute]:
    """The two callback routes, to mount in another Starlette app (the web app).

    The store is opened (and created) here, so an unusable workspace fails at startup.
    """
    check_token(token)
    ReceiptStore.open(workspace).close()
    writer = writer or ReceiptWriter(workspace)
    return [_endpoint("status", token, writer), _endpoint("inbound", token, writer)]


def receiver_app(workspace: Path, token: str) -> Starlette:
    """The receiver alone: what ``campaigner receive`` and ``send --sandbox`` serve."""
    return Starlette(routes=receiver_routes(workspace, token))
