"""The preview page: the figures of ``campaigner preview``, the rows that will not be sent a
page at a time, the rendered messages and the preview report; then a test send, and the
confirmation that starts the run (once per draft)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

import anyio
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from campaigner import api
from campaigner.errors import CampaignerError
from campaigner.web.context import form_of, page, redirect, signed_in, web
from campaigner.web.drafts import (
    CAMPAIGN,
    META,
    PREVIEW,
    find_draft,
    not_found,
    preview_values,
    recipients,
)
from campaigner.web.invalid_rows import PAGE_ROWS, bad_rows_page
from campaigner.web.workspace import read_json, write_json

__all__ = ("routes",)

_START_WAIT_S = 900.0  # validation of a big list before the run folder exists


@signed_in
async def preview_page(request: Request) -> Response:
    found = find_draft(request)
    if found is None:
        return not_found()
    draft_id, folder = found
    values = preview_values(folder)
    if values is None:
        return redirect(f"/drafts/{draft_id}/form")
    bad = await anyio.to_thread.run_sync(bad_rows_page, folder / values["summary"]["report"], 0)
    return page(request, "preview.html", draft=draft_id, bad=bad, error=None, test=None, **values)


@signed_in
async def invalid_rows(request: Request) -> Response:
    found = find_draft(request)
    if found is None:
        return not_found()
    draft_id, folder = found
    summary = read_json(folder / PREVIEW)
    if not summary:
        return not_found()
    try:
        number = max(int(request.query_params.get("page", "0")), 0)
    except ValueError:
        number = 0
    bad = await anyio.to_thread.run_sync(bad_rows_page, folder / summary["report"], number)
    return page(request, "bad_rows.html", draft=draft_id, bad=bad, page_rows=PAGE_ROWS)


@signed_in
async def preview_report(request: Request) -> Response:
    found = find_draft(request)
    summary = read_json(found[1] / PREVIEW) if found else {}
    if found is None or not summary:
        return not_found()
    return FileResponse(
        found[1] / summary["report"],
        media_type="text/csv",
        filename="preview-report.csv",
        content_disposition_type="attachment",
    )


@signed_in
async def test_send(request: Request) -> Response:
    found = find_draft(request)
    if found is None:
        return not_found()
    _, folder = found
    raw = (await form_of(request)).get("test_numbers")
    numbers = [n for n in str(raw or "").replace(",", " ").split() if n]
    if not numbers:
        return page(request, "test_result.html", answers=[], error="Type up to 5 numbers.")
    if len(numbers) > 5:
        return page(request, "test_result.html", answers=[], error="At most 5 numbers.")
    options = web(request).runner.options(folder / CAMPAIGN, recipients(folder))

    def run() -> list[api.TestSendAnswer]:
        return api.test_send(options, numbers)

    try:
        answers = await anyio.to_thread.run_sync(run)
    except CampaignerError as exc:
        return page(request, "test_result.html", answers=[], error=str(exc))
    return page(request, "test_result.html", answers=answers, error=None)


@signed_in
async def start_send(request: Request) -> Response:
    found = find_draft(request)
    if found is None:
        return not_found()
    draft_id, folder = found
    values = preview_values(folder)
    if values is None:
        return redirect(f"/drafts/{draft_id}/form")
    started = read_json(folder / META).get("run_id")
    if isinstance(started, str):  # sent already (a second click, a reload): its page
        return redirect(f"/runs/{quote(started)}")
    at_text = str((await form_of(request)).get("at") or "").strip()
    error = None
    try:
        at = datetime.fromisoformat(at_text) if at_text else None
    except ValueError:
        at, error = None, f"{at_text!r} is not a date and time"
    if error is None:
        # One run per draft, however many clicks: the same draft sent twice at once would
        # pass the earlier-runs check twice (neither run folder exists yet).
        run = web(request).runner.start(
            folder / CAMPAIGN, recipients(folder), at=at, once_for=draft_id
        )
        await anyio.to_thread.run_sync(run.control.started.wait, _START_WAIT_S)
        if run.control.run_dir is not None:
            meta = read_json(folder / META)
            write_json(folder / META, {**meta, "run_id": run.control.run_dir.name})
            return redirect(f"/runs/{quote(run.control.run_dir.name)}")
        error = run.error or "the send has not started yet: see the campaigns list"
    bad = await anyio.to_thread.run_sync(bad_rows_page, folder / values["summary"]["report"], 0)
    return page(
        request,
        "preview.html",
        status=400,
        draft=draft_id,
        bad=bad,
        error=error,
        test=None,
        **values,
    )


routes = [
    Route("/drafts/{draft}", preview_page, methods=["GET"]),
    Route("/drafts/{draft}/invalid", invalid_rows, methods=["GET"]),
    Route("/drafts/{draft}/preview-report.csv", preview_report, methods=["GET"]),
    Route("/drafts/{draft}/test", test_send, methods=["POST"]),
    Route("/drafts/{draft}/send", start_send, methods=["POST"]),
]
