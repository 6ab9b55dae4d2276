"""Sends to the in-process sandbox simulator: every start has its own MessageIds, and no
Alibaba Cloud credentials are needed."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import campaigner
from campaigner import api
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


def test_a_sandbox_test_send_needs_no_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It read ALIBABA_CLOUD_* before looking at sandbox: `send --sandbox --test-to` and the
    # web app's Test send failed with "credentials are missing" on a machine without them.
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    options = campaigner.SendOptions(sample_campaign(tmp_path), out=tmp_path, sandbox=True)
    answers = api.test_send(options, ["8613800000011", "8613800000012"])
    assert len(answers) == 2
    assert all(a.sent and a.message_id for a in answers)
