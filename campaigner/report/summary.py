"""summary.json brought up to date after a run's report is rebuilt (``campaigner report``,
``campaigner status``): the delivery funnel replaced, everything else kept as the run
wrote it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from campaigner.report.atomic import write_json_atomic
from campaigner.report.funnel import Funnel

__all__ = ("SUMMARY_NAME", "record_delivery")

SUMMARY_NAME: Final = "summary.json"


def record_delivery(run_dir: Path, funnel: Funnel) -> None:
    """Set summary.json's ``delivery`` to ``funnel`` (a run killed before it wrote one
    gets a summary holding just that)."""
    path = run_dir / SUMMARY_NAME
    summary: dict[str, Any] = {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):  # none yet, or torn by hand: rewritten whole
        loaded = None
    if isinstance(loaded, dict):
        summary = loaded
    summary["delivery"] = funnel.as_dict()
    write_json_atomic(path, summary)
