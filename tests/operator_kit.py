"""A small campaign, its list and send options for the operator-control tests (schedule,
runs, limit, test send, retry), sent to the simulator over loopback HTTP."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from campaigner import api
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox
from tests.samples import campaign_toml

CAMPAIGN = campaign_toml("operator", list_file="list.csv", send="max_attempts = 1")
# Rows 2..6 are valid phone numbers; row 7 is not a number.
PHONES = ["8613900000002", "8613900000003", "8613900000004", "8613900000005", "8613900000006"]


def write_campaign(folder: Path, phones: list[str] | None = None) -> Path:
    """campaign.toml and list.csv (the phones, then one invalid row) in ``folder``."""
    (folder / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    rows = [*(phones or PHONES), "not a number"]
    (folder / "list.csv").write_text(
        "phone,name\n" + "".join(f"{p},Name{i}\n" for i, p in enumerate(rows, 2)),
        encoding="utf-8",
    )
    return folder / "campaign.toml"


def send_options(folder: Path, sandbox: Sandbox, **changes: Any) -> api.SendOptions:
    options = api.SendOptions(
        write_campaign(folder),
        out=folder / "out",
        endpoint=sandbox.url,
        yes=True,
        credentials=Credentials(KEY_ID, SECRET),
    )
    return replace(options, **changes)


def sent_to(sandbox: Sandbox, since: int = 0) -> list[str]:
    return [str(a["to"]) for a in sandbox.accepted()[since:]]


def report_rows(run_dir: Path) -> dict[int, dict[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        return {int(r["row"]): r for r in csv.DictReader(f)}


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds (generous: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def run_dirs(out: Path) -> list[Path]:
    """The run folders in a workspace (it also holds files: the ledger, ...)."""
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
