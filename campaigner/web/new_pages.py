"""A new campaign: the upload form, and the fill-in form that makes the campaign file (its
problems shown as the user types, the TOML downloadable)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from campaigner.errors import CampaignerError
from campaigner.limits import MAX_CAMPAIGN_BYTES
from campaigner.web.campaign_form import PARAM_SLOTS, CampaignForm
from campaigner.web.context import form_of, page, redirect, signed_in, web
from campaigner.web.drafts import CAMPAIGN, META, find_draft, not_found, preview
from campaigner.web.drafts import columns as list_columns
from campaigner.web.uploads import display_name, save_text_upload, save_upload
from campaigner.web.workspace import read_json, write_json

__all__ = ("routes",)


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
            await save_text_upload(campaign, folder / CAMPAIGN, MAX_CAMPAIGN_BYTES)
        except CampaignerError as exc:
            return page(request, "new.html", status=400, error=str(exc))
        meta["campaign_name"] = display_name(campaign)
    write_json(folder / META, meta)
    if not has_campaign:
        return redirect(f"/drafts/{draft_id}/form")
    problem = await preview(folder)
    if problem is not None:
        return page(request, "new.html", status=400, error=problem)
    return redirect(f"/drafts/{draft_id}")


def _fields(form: Any) -> dict[str, str]:
    return {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}


@signed_in
async def fill_in(request: Request) -> Response:
    found = find_draft(request)
    if found is None:
        return not_found()
    draft_id, folder = found
    try:
        columns = await list_columns(folder)
    except CampaignerError as exc:
        return page(request, "new.html", status=400, error=str(exc))
    fields = read_json(folder / META).get("form", {})
    form = CampaignForm.from_fields(fields if isinstance(fields, dict) else {})
    return page(
        request,
        "form.html",
        draft=draft_id,
        columns=columns,
        form=form,
        slots=range(PARAM_SLOTS),
        check=form.check(columns) if fields else None,
        meta=read_json(folder / META),
    )


@signed_in
async def check_form(request: Request) -> Response:
    """As the user types (htmx): what is wrong, and the TOML so far."""
    found = find_draft(request)
    if found is None:
        return not_found()
    try:
        columns = await list_columns(found[1])
    except CampaignerError as exc:
        return PlainTextResponse(str(exc), 400)
    form = CampaignForm.from_fields(_fields(await form_of(request)))
    return page(request, "form_check.html", check=form.check(columns), draft=found[0])


@signed_in
async def submit_form(request: Request) -> Response:
    found = find_draft(request)
    if found is None:
        return not_found()
    draft_id, folder = found
    if "run_id" in read_json(folder / META):  # its campaign file is the run's now
        return page(
            request,
            "new.html",
            status=409,
            error="This campaign was sent already; start a new campaign to change it.",
        )
    try:
        columns = await list_columns(folder)
    except CampaignerError as exc:
        return page(request, "new.html", status=400, error=str(exc))
    fields = _fields(await form_of(request))
    form = CampaignForm.from_fields(fields)
    check = form.check(columns)
    meta = read_json(folder / META)
    write_json(folder / META, {**meta, "form": fields})
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
    (folder / CAMPAIGN).write_text(check.toml, encoding="utf-8")
    problem = await preview(folder)
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
    found = find_draft(request)
    if found is None or not (found[1] / CAMPAIGN).is_file():
        return not_found()
    return FileResponse(
        found[1] / CAMPAIGN,
        media_type="application/toml",
        filename="campaign.toml",
        content_disposition_type="attachment",
    )


routes = [
    Route("/campaigns/new", new_form, methods=["GET"]),
    Route("/campaigns/new", new_upload, methods=["POST"]),
    Route("/drafts/{draft}/form", fill_in, methods=["GET"]),
    Route("/drafts/{draft}/form", submit_form, methods=["POST"]),
    Route("/drafts/{draft}/check", check_form, methods=["POST"]),
    Route("/drafts/{draft}/campaign.toml", campaign_toml, methods=["GET"]),
]
