"""The in-process sandbox simulator gives every start its own MessageIds."""

from __future__ import annotations

import csv
from pathlib import Path

import campaigner
from tests.samples import sample_campaign


def _message_ids(campaign: Path, listing: Path, out: Path) -> set[str]:
    options = campaigner.SendOptions(campaign, listing, out=out, sandbox=True, yes=True)
    result = campaigner.send(options, confirm=lambda _: True)
    with (result.run_dir / "report.csv").open(newline="", encoding="utf-8-sig") as f:
        return {row["MessageId"] for row in csv.DictReader(f) if row["MessageId"]}


def test_two_sandbox_runs_share_no_message_id(tmp_path: Path) -> None:
    # A fixed seed gave every sandbox start the same MessageIds, so two runs' reports (and a
    # run resumed after `serve` restarted) held each other's ids.
    listing = tmp_path / "list.csv"
    listing.write_text(
        "phone,first_name,coupon\n" + "".join(f"86139{i:08d},ana,C{i}\n" for i in range(1, 6)),
        encoding="utf-8",
    )
    campaign = sample_campaign(tmp_path)
    first = _message_ids(campaign, listing, tmp_path / "a")
    second = _message_ids(campaign, listing, tmp_path / "b")
    assert len(first) == len(second) == 5
    assert not first & second
