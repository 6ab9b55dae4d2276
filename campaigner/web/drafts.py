"""A draft: the folder in the workspace (named by a random id) that holds a new campaign's
uploaded list, its campaign file (uploaded, or made by the fill-in form) and its preview
by ``api.preview``. A run started from it reads its list and campaign file from there."""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from campaigner import api
from campaigner.config import load_campaign
from campaigner.errors import CampaignerError
from campaigner.inputs import open_input
from campaigner.web.context import web
from campaigner.web.workspace import read_json, write_json

__all__ = (
    "CAMPAIGN",
    "PREVIEW",
    "META",
    "columns",
    "find_draft",
    "human_duration",
    "not_found",
    "preview",
    "preview_values",
    "recipients",
)

META = "draft.json"
PREVIEW = "preview.json"
CAMPAIGN = "campaign.toml"
_EXAMPLES = 5


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


def find_draft(request: Request) -> tuple[str, Path] | None:
    draft_id = request.path_params["draft"]
    folder = web(request).workspace.draft(draft_id)
    return (draft_id, folder) if folder is not None else None


def not_found() -> Response:
    return PlainTextResponse("no such draft", 404)


def recipients(folder: Path) -> Path:
    meta = read_json(folder / META)
    return folder / str(meta.get("recipients_file", "recipients.csv"))


async def preview(folder: Path) -> str | None:
    """Preview the draft (in a worker thread); its figures to ``preview.json``.
    The problem in words when the campaign or list is refused."""
    campaign_file, input_path = folder / CAMPAIGN, recipients(folder)
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
    write_json(folder / PREVIEW, summary)
    return None


async def columns(folder: Path) -> tuple[str, ...]:
    def read() -> tuple[str, ...]:
        return tuple(open_input(recipients(folder)).columns)

    return await anyio.to_thread.run_sync(read)


def preview_values(folder: Path) -> dict[str, Any] | None:
    summary = read_json(folder / PREVIEW)
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
        "meta": read_json(folder / META),
        "zone": datetime.now().astimezone().tzname(),
    }
