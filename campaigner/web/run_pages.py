"""The campaigns list and the run pages: live state and counts (server-sent events), Pause,
Resume, Cancel, Reconcile, and the report downloads at any time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from campaigner import api
from campaigner.cams import DEFAULT_ENDPOINT
from campaigner.errors import CampaignerError
from campaigner.report.summary import SUMMARY_NAME
from campaigner.runstate import META_SCHEDULED_FOR
from campaigner.web.context import EVENT_EVERY_S, Web, page, redirect, signed_in, web
from campaigner.web.runner import ActiveRun
from campaigner.web.workspace import RunInfo, read_json

__all__ = ("routes", "run_status")

_CHART_POINTS = 300
_ACTIVE_STATES = ("sending", "scheduled")
_ENDED_EARLY = ("paused", "stopped", "cancelled")


def _summary(run_dir: Path) -> dict[str, Any]:
    return read_json(run_dir / SUMMARY_NAME)


def _counts(info: RunInfo, summary: dict[str, Any]) -> dict[str, int]:
    """Sent, failed, unknown from the journal; remaining: the rows a resume would send. A
    run that ended (paused, stopped, cancelled) wrote them in its summary as not_attempted;
    otherwise the journal's rows not yet settled (rows it never reached are not counted)."""
    remaining = info.count("pending") + info.count("intent")
    by_status = summary.get("by_status")
    if info.state in _ENDED_EARLY and isinstance(by_status, dict):
        remaining = int(by_status.get("not_attempted") or 0)
    return {
        "sent": info.count("sent"),
        "failed": info.count("failed"),
        "unknown": info.count("unknown"),
        "remaining": 0 if info.state == "done" else remaining,
    }


def _funnel(summary: dict[str, Any]) -> dict[str, int]:
    """The delivery funnel as the run's last report counted it."""
    delivery = summary.get("delivery")
    delivery = delivery if isinstance(delivery, dict) else {}
    return {k: int(delivery.get(k) or 0) for k in ("delivered", "read", "replied", "failed")}


def _live_state(recorded: str, active: ActiveRun) -> str:
    """A run this server sends: scheduled or sending until its thread ends, then what the
    journal says (done, paused, stopped, ...), or how the thread ended."""
    if not active.finished.is_set():
        return recorded if recorded in _ACTIVE_STATES else "sending"
    return recorded if recorded not in ("interrupted", *_ACTIVE_STATES) else active.state


def run_status(app: Web, run_id: str) -> dict[str, Any] | None:
    """A run's state and figures now: this server's live progress for its own sends, the
    journal for any other (a CLI run, a finished one)."""
    info = app.workspace.info(run_id, keep_open=True)
    if info is None:
        return None
    active = app.runner.active(run_id)
    summary = _summary(info.run_dir)
    state, counts = info.state, _counts(info, summary)
    rate, eta, history, error = 0.0, None, [], None
    notices: list[str] = []
    if active is not None:
        state = _live_state(info.state, active)
        progress = active.progress
        if progress is not None and not active.finished.is_set():
            counts["remaining"] = max(progress.total - progress.done, 0)
        rate = active.rate()
        if rate > 0 and counts["remaining"]:
            eta = round(counts["remaining"] / rate)
        history = list(active.history)[-_CHART_POINTS:]
        error = active.error
        notices = list(active.notices)
    else:
        error = app.workspace.web_state(run_id).get("error")
    return {
        "run": run_id,
        "name": info.name,
        "created_at": info.created_at,
        "state": state,
        "counts": counts,
        "rate": round(rate, 1),
        "eta": eta,
        "funnel": _funnel(summary),
        "history": history,
        "deliveries": list(app.reports.deliveries.get(run_id, []))[-_CHART_POINTS:],
        "error": error,
        "notices": notices,
        "destination": info.meta.get("destination", ""),
        "scheduled_for": info.meta.get(META_SCHEDULED_FOR, ""),
        "resumable": state in ("paused", "stopped", "interrupted"),
    }


async def shared_status(app: Web, run_id: str) -> dict[str, Any] | None:
    """``run_status``, read once per beat for every page and event stream of the run."""
    status: dict[str, Any] | None = app.statuses.fresh(run_id)
    if status is None:
        status = await anyio.to_thread.run_sync(
            app.statuses.get, run_id, lambda: run_status(app, run_id)
        )
    return status


@signed_in
async def campaigns(request: Request) -> Response:
    app = web(request)
    runs = await anyio.to_thread.run_sync(app.workspace.runs)
    rows = []
    for info in runs:
        active = app.runner.active(info.run_id)
        state = info.state if active is None else _live_state(info.state, active)
        rows.append((info, state, _counts(info, _summary(info.run_dir))))
    return page(request, "campaigns.html", runs=rows)


def _run_id(request: Request) -> str:
    value: str = request.path_params["run"]
    return value


@signed_in
async def run_page(request: Request) -> Response:
    status = await shared_status(web(request), _run_id(request))
    if status is None:
        return PlainTextResponse("no such run", 404)
    return page(request, "run.html", run=status, message=None)


@signed_in
async def run_events(request: Request) -> Response:
    app, run_id = web(request), _run_id(request)
    if app.workspace.run_dir(run_id) is None:
        return PlainTextResponse("no such run", 404)

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        due = anyio.current_time()
        while True:
            status = await shared_status(app, run_id)
            if status is None:
                return
            yield f"data: {json.dumps(status)}\n\n"
            if status["state"] != "interrupted":  # receipts may be arriving: recount them
                sending = status["state"] in _ACTIVE_STATES
                app.reports.refresh_soon(
                    run_id, app.workspace.out / run_id, sending=sending, began=status["created_at"]
                )
            due += EVENT_EVERY_S  # a steady beat, whatever each event took
            await anyio.sleep(max(due - anyio.current_time(), 0.0))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _after(request: Request, problem: str | None) -> Response:
    run_id = _run_id(request)
    web(request).statuses.forget(run_id)  # the action's outcome shows at once
    if problem is None:
        return redirect(f"/runs/{quote(run_id)}")
    status = await shared_status(web(request), run_id)
    if status is None:
        return PlainTextResponse("no such run", 404)
    return page(request, "run.html", status=409, run=status, message=problem)


@signed_in
async def pause(request: Request) -> Response:
    ok = web(request).runner.stop(_run_id(request), "paused")
    return await _after(request, None if ok else "Only a run this server is sending can pause.")


@signed_in
async def cancel(request: Request) -> Response:
    """A run this server sends stops (a scheduled one is cancelled before it sends); a
    scheduled run another process waits with is cancelled through its journal."""
    app, run_id = web(request), _run_id(request)
    if app.runner.stop(run_id, "cancelled"):
        return await _after(request, None)
    run_dir = app.workspace.run_dir(run_id)
    if run_dir is None:
        return PlainTextResponse("no such run", 404)
    try:
        await anyio.to_thread.run_sync(api.cancel_run, run_dir)
    except CampaignerError as exc:
        return await _after(request, str(exc))
    return await _after(request, None)


@signed_in
async def retry(request: Request) -> Response:
    """A new run of the failed rows with a retriable code, then its page."""
    app = web(request)
    try:
        run = app.runner.retry(_run_id(request))
    except CampaignerError as exc:
        return await _after(request, str(exc))
    await anyio.to_thread.run_sync(run.control.started.wait, 900.0)
    if run.control.run_dir is None:
        return await _after(request, run.error or "the retry has not started")
    return redirect(f"/runs/{quote(run.control.run_dir.name)}")


@signed_in
async def resume(request: Request) -> Response:
    app, run_id = web(request), _run_id(request)
    try:
        run = app.runner.resume(run_id)
    except CampaignerError as exc:
        return await _after(request, str(exc))
    await anyio.to_thread.run_sync(run.control.started.wait, 900.0)
    return await _after(request, run.error if run.control.run_dir is None else None)


@signed_in
async def reconcile(request: Request) -> Response:
    app, run_id = web(request), _run_id(request)
    run_dir = app.workspace.run_dir(run_id)
    if run_dir is None:
        return PlainTextResponse("no such run", 404)
    info = await anyio.to_thread.run_sync(app.workspace.info, run_id)
    if info is not None and info.meta.get("destination") == "sandbox":
        return await _after(
            request,
            "This run went to a sandbox simulator, which ended with its send: there is "
            "nothing to look its unknown rows up in.",
        )
    options = api.ReconcileOptions(run_dir, app.runner.endpoint or DEFAULT_ENDPOINT)
    try:
        result = await anyio.to_thread.run_sync(lambda: api.reconcile(options))
    except CampaignerError as exc:
        return await _after(request, str(exc))
    app.workspace.set_web_state(
        run_id,
        error=f"Reconciled: {result.found_sent} found sent, {result.not_sent} not sent, "
        f"{result.still_unknown} still unknown, {result.lookup_errors} lookups failed.",
    )
    return await _after(request, None)


async def _download(request: Request, name: str, media_type: str) -> Response:
    """The report as of now: rebuilt from input and journal unless the run is over and it
    is there (a rebuild while the run sends is what `campaigner report` does)."""
    app, run_id = web(request), _run_id(request)
    info = await anyio.to_thread.run_sync(app.workspace.info, run_id)
    if info is None:
        return PlainTextResponse("no such run", 404)
    path = info.run_dir / name
    active = app.runner.active(run_id)
    live = info.state in _ACTIVE_STATES or (active is not None and not active.finished.is_set())
    if live or not path.is_file():
        xlsx = True if name.endswith(".xlsx") else None
        try:
            await anyio.to_thread.run_sync(app.reports.rebuild, run_id, info.run_dir, xlsx)
        except CampaignerError as exc:
            return PlainTextResponse(f"the report cannot be rebuilt: {exc}", 409)
    if not path.is_file():
        return PlainTextResponse("this run has no such report", 404)
    return FileResponse(
        path,
        media_type=media_type,
        filename=name,
        content_disposition_type="attachment",
    )


@signed_in
async def report_csv(request: Request) -> Response:
    return await _download(request, "report.csv", "text/csv")


@signed_in
async def report_xlsx(request: Request) -> Response:
    return await _download(
        request,
        "report.xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


routes = [
    Route("/", campaigns, methods=["GET"]),
    Route("/runs/{run}", run_page, methods=["GET"]),
    Route("/runs/{run}/events", run_events, methods=["GET"]),
    Route("/runs/{run}/pause", pause, methods=["POST"]),
    Route("/runs/{run}/resume", resume, methods=["POST"]),
    Route("/runs/{run}/cancel", cancel, methods=["POST"]),
    Route("/runs/{run}/reconcile", reconcile, methods=["POST"]),
    Route("/runs/{run}/retry", retry, methods=["POST"]),
    Route("/runs/{run}/report.csv", report_csv, methods=["GET"]),
    Route("/runs/{run}/report.xlsx", report_xlsx, methods=["GET"]),
]
