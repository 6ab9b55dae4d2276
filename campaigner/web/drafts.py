"""A new campaign from the browser: the recipient list and a campaign file (or the fill-in
form) uploaded into a draft folder, previewed with ``api.preview``, test-sent, confirmed
and started. A draft is a folder in the workspace named by a random id."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from campaigner import api
from campaigner.config import load_campaign
from campaigner.errors import CampaignerError
from campaigner.inputs import open_input
from campaigner.limits import MAX_CAMPAIGN_BYTES
from campaigner.web.campaign_form import PARAM_SLOTS, CampaignForm
from campaigner.web.context import form_of, page, redirect, signed_in, web
from campaigner.web.invalid_rows import PAGE_ROWS, bad_rows_page
from campaigner.web.uploads import display_name, save_text_upload, save_upload
from campaigner.web.workspace import read_json, write_json

__all__ = ("human_duration", "routes")

_META = "draft.json"
_PREVIEW = "preview.json"
_CAMPAIGN = "campaign.toml"
_EXAMPLES = 5
_START_WAIT_S = 900.0  # validation of a big list before the run folder exists


def human_duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{math.ceil(seconds)} seconds"
    if seconds < 90 * 60:
        return f"{math.ceil(seconds / 60)} minutes"
    return f"{seconds / 3600:.1f} hours"


def _as_read(query: dict[str, str]) -> dict[str, Any]:
    """A rendered call as its recipient meets it: who, which template or message type,
    and the parameters or content it carries (the call's other fields after those)."""
    lines: list[tuple[str, str]] = []
    for key in ("TemplateParams", "Content", "Payload"):
        raw = query.get(key)
        if raw is None:
            continue
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, dict):
            for k, v in value.items():
                lines.append((str(k), v if isinstance(v, str) else json.dumps(v)))
        else:
            lines.append((key, str(value)))
    what = query.get("TemplateCode") or query.get("TemplateName") or query.get("MessageType", "")
    shown = ("To", "TemplateParams", "Content", "Payload", "TemplateCode", "TemplateName")
    return {
        "to": query.get("To", ""),
        "what": f"{query.get('Type', '')} {what} ({query.get('Language', '')})".strip(),
        "lines": lines,
        "call": {k: v for k, v in query.items() if k not in shown},
    }


def _draft(request: Request) -> tuple[str, Path] | None:
    draft_id = request.path_params["draft"]
    folder = web(request).workspace.draft(draft_id)
    return (draft_id, folder) if folder is not None else None


def _not_found() -> Response:
    return PlainTextResponse("no such draft", 404)


def _recipients(folder: Path) -> Path:
    meta = read_json(folder / _META)
    return folder / str(meta.get("recipients_file", "recipients.csv"))


# -- new --------------------------------------------------------------------------------


@signed_in
async def new_form(request: Request) -> Response:
    return page(request, "new.html", error=None)


@signed_in
async def new_upload(request: Request) -> Response:
    form = await form_of(request)
    recipients, campaign = form.get("recipients"), form.get("campaign")
    if not isinstance(recipients, UploadFile) or not recipients.filename:
        return page(request, "new.html", status=400, error="Choose the recipient list to upload.")
    draft_id, folder = web(request).workspace.new_draft()
    path = await save_upload(recipients, folder, "recipients")
    meta: dict[str, Any] = {
        "recipients_name": display_name(recipients),
        "recipients_file": path.name,
    }
    has_campaign = isinstance(campaign, UploadFile) and bool(campaign.filename)
    if isinstance(campaign, UploadFile) and has_campaign:
        try:
            await save_text_upload(campaign, folder / _CAMPAIGN, MAX_CAMPAIGN_BYTES)
        except CampaignerError as exc:
            return page(request, "new.html", status=400, error=str(exc))
        meta["campaign_name"] = display_name(campaign)
    write_json(folder / _META, meta)
    if not has_campaign:
        return redirect(f"/drafts/{draft_id}/form")
    problem = await _preview(folder)
    if problem is not None:
        return page(request, "new.html", status=400, error=problem)
    return redirect(f"/drafts/{draft_id}")


async def _preview(folder: Path) -> str | None:
    """Preview the draft (in a worker thread); its figures to ``preview.json``.
    The problem in words when the campaign or list is refused."""
    campaign_file, input_path = folder / _CAMPAIGN, _recipients(folder)
    # The page offers the CSV preview report only: no time spent on an XLSX one.
    options = api.PreviewOptions(campaign_file, input_path, out=folder / "previews", xlsx=False)
    notices: list[str] = []

    def run() -> dict[str, Any]:
        result = api.preview(options, say=notices.append)
        campaign = load_campaign(campaign_file)
        message = campaign.message
        template = message.get("TemplateCode") or message.get("TemplateName")
        return {
            **result.summary(),
            "report": str(result.run_dir.relative_to(folder) / "report.csv"),
            "examples": [_as_read(e) for e in result.examples[:_EXAMPLES]],
            "sender": str(message.get("From", "")),
            "template": f"template {template}" if template else "a text message",
            "notices": notices,
        }

    try:
        summary = await anyio.to_thread.run_sync(run)
    except CampaignerError as exc:
        return str(exc)
    write_json(folder / _PREVIEW, summary)
    return None


# -- the fill-in form -------------------------------------------------------------------


async def _columns(folder: Path) -> tuple[str, ...]:
    def read() -> tuple[str, ...]:
        return tuple(open_input(_recipients(folder)).columns)

    return await anyio.to_thread.run_sync(read)


@signed_in
async def fill_in(request: Request) -> Response:
    found = _draft(request)
    if found is None:
        return _not_found()
    draft_id, folder = found
    try:
        columns = await _columns(folder)
    except CampaignerError as exc:
        return page(request, "new.html", status=400, error=str(exc))
    fields = read_json(folder / _META).get("form", {})
    form = CampaignForm.from_fields(fields if isinstance(fields, dict) else {})
    return page(
        request,
        "form.html",
        draft=draft_id,
        columns=columns,
        form=form,
        slots=range(PARAM_SLOTS),
        check=form.check(columns) if fields else None,
        meta=read_json(folder / _META),
    )


def _fields(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


@signed_in
async def check_form(request: Request) -> Response:
    """As the user types (htmx): what is wrong, and the TOML so far."""
    found = _draft(request)
    if found is None:
        return _not_found()
    try:
        columns = await _columns(found[1])
    except CampaignerError as exc:
        return PlainTextResponse(str(exc), 400)
    form = CampaignForm.from_fields(_fields(await form_of(request)))
    return page(request, "form_check.html", check=form.check(columns), draft=found[0])


@signed_in
async def submit_form(request: Request) -> Response:
    found = _draft(request)
    if found is None:
        return _not_found()
    draft_id, folder = found
    if "run_id" in read_json(folder / _META):  # its campaign file is the run's now
        return page(
            request,
            "new.html",
            status=409,
            error="This campaign was sent already; start a new campaign to change it.",
        )
    try:
        columns = await _columns(folder)
    except CampaignerError as exc:
        return page(request, "new.html", status=400, error=str(exc))
    fields = _fields(await form_of(request))
    form = CampaignForm.from_fields(fields)
    check = form.check(columns)
    meta = read_json(folder / _META)
    write_json(folder / _META, {**meta, "form": fields})
    if not check.ok:
        return page(
            request,
            "form.html",
            status=400,
            draft=draft_id,
            columns=columns,
            form=form,
            slots=range(PARAM_SLOTS),
            check=check,
            meta=meta,
        )
    (folder / _CAMPAIGN).write_text(check.toml, encoding="utf-8")
    problem = await _preview(folder)
    if problem is not None:
        return page(
            request,
            "form.html",
            status=400,
            draft=draft_id,
            columns=columns,
            form=form,
            slots=range(PARAM_SLOTS),
            check=type(check)(check.toml, [problem]),
            meta=meta,
        )
    return redirect(f"/drafts/{draft_id}")


@signed_in
async def campaign_toml(request: Request) -> Response:
    found = _draft(request)
    if found is None or not (found[1] / _CAMPAIGN).is_file():
        return _not_found()
    return FileResponse(
        found[1] / _CAMPAIGN,
        media_type="application/toml",
        filename="campaign.toml",
        content_disposition_type="attachment",
    )


# -- preview, test send, send -----------------------------------------------------------


def _preview_values(folder: Path) -> dict[str, Any] | None:
    summary = read_json(folder / _PREVIEW)
    if not summary:
        return None
    by_status: dict[str, int] = summary.get("by_status", {})
    would_send = int(summary.get("would_send", 0))
    return {
        "summary": summary,
        "counts": {
            "rows": int(summary.get("rows", 0)),
            "would_send": would_send,
            "invalid": by_status.get("invalid", 0),
            "duplicate": by_status.get("duplicate", 0),
            "suppressed": by_status.get("suppressed", 0),
        },
        "by_status": by_status,
        "reasons": summary.get("invalid_reasons", []),
        "time": human_duration(float(summary.get("estimated_send_seconds", 0.0))),
        "meta": read_json(folder / _META),
        "zone": datetime.now().astimezone().tzname(),
    }


@signed_in
async def preview_page(request: Request) -> Response:
    found = _draft(request)
    if found is None:
        return _not_found()
    draft_id, folder = found
    values = _preview_values(folder)
    if values is None:
        return redirect(f"/drafts/{draft_id}/form")
    bad = await anyio.to_thread.run_sync(bad_rows_page, folder / values["summary"]["report"], 0)
    return page(request, "preview.html", draft=draft_id, bad=bad, error=None, test=None, **values)


@signed_in
async def invalid_rows(request: Request) -> Response:
    found = _draft(request)
    if found is None:
        return _not_found()
    draft_id, folder = found
    summary = read_json(folder / _PREVIEW)
    if not summary:
        return _not_found()
    try:
        number = max(int(request.query_params.get("page", "0")), 0)
    except ValueError:
        number = 0
    bad = await anyio.to_thread.run_sync(bad_rows_page, folder / summary["report"], number)
    return page(request, "bad_rows.html", draft=draft_id, bad=bad, page_rows=PAGE_ROWS)


@signed_in
async def preview_report(request: Request) -> Response:
    found = _draft(request)
    summary = read_json(found[1] / _PREVIEW) if found else {}
    if found is None or not summary:
        return _not_found()
    return FileResponse(
        found[1] / summary["report"],
        media_type="text/csv",
        filename="preview-report.csv",
        content_disposition_type="attachment",
    )


@signed_in
async def test_send(request: Request) -> Response:
    found = _draft(request)
    if found is None:
        return _not_found()
    _, folder = found
    raw = (await form_of(request)).get("test_numbers")
    numbers = [n for n in str(raw or "").replace(",", " ").split() if n]
    if not numbers:
        return page(request, "test_result.html", answers=[], error="Type up to 5 numbers.")
    if len(numbers) > 5:
        return page(request, "test_result.html", answers=[], error="At most 5 numbers.")
    options = web(request).runner.options(folder / _CAMPAIGN, _recipients(folder))

    def run() -> list[api.TestSendAnswer]:
        return api.test_send(options, numbers)

    try:
        answers = await anyio.to_thread.run_sync(run)
    except CampaignerError as exc:
        return page(request, "test_result.html", answers=[], error=str(exc))
    return page(request, "test_result.html", answers=answers, error=None)


@signed_in
async def start_send(request: Request) -> Response:
    found = _draft(request)
    if found is None:
        return _not_found()
    draft_id, folder = found
    values = _preview_values(folder)
    if values is None:
        return redirect(f"/drafts/{draft_id}/form")
    started = read_json(folder / _META).get("run_id")
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
            folder / _CAMPAIGN, _recipients(folder), at=at, once_for=draft_id
        )
        await anyio.to_thread.run_sync(run.control.started.wait, _START_WAIT_S)
        if run.control.run_dir is not None:
            meta = read_json(folder / _META)
            write_json(folder / _META, {**meta, "run_id": run.control.run_dir.name})
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
    Route("/campaigns/new", new_form, methods=["GET"]),
    Route("/campaigns/new", new_upload, methods=["POST"]),
    Route("/drafts/{draft}", preview_page, methods=["GET"]),
    Route("/drafts/{draft}/form", fill_in, methods=["GET"]),
    Route("/drafts/{draft}/form", submit_form, methods=["POST"]),
    Route("/drafts/{draft}/check", check_form, methods=["POST"]),
    Route("/drafts/{draft}/campaign.toml", campaign_toml, methods=["GET"]),
    Route("/drafts/{draft}/invalid", invalid_rows, methods=["GET"]),
    Route("/drafts/{draft}/preview-report.csv", preview_report, methods=["GET"]),
    Route("/drafts/{draft}/test", test_send, methods=["POST"]),
    Route("/drafts/{draft}/send", start_send, methods=["POST"]),
]
