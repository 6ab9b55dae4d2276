"""Opt-outs keep rows from being sent: the screen on prepared batches, preview and send
against the loopback simulator (counted where the messages arrive), resume keeping what
the journal says, and ``[send] stop_words``."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from campaigner import api
from campaigner.cli import cli
from campaigner.columns import ERROR, ROW, STATUS
from campaigner.config import load_campaign, parse_campaign
from campaigner.errors import ConfigError
from campaigner.inputs import open_input
from campaigner.journal import Journal
from campaigner.receipts.parse import Inbound, phone_key
from campaigner.receipts.store import ReceiptStore
from campaigner.rows import Deduper, Plan
from campaigner.screening import Screen, Suppressions, recipient_keys, suppression_error
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox
from campaigner.statuses import Status

BUSINESS = "8613800000000"
CAMPAIGN = """\
name = "opt-outs"
input = "list.csv"
{send}
[message]
ChannelType = "whatsapp"
Type = "template"
From = "{sender}"
To = "{{{{ phone }}}}"
TemplateCode = "tpl"
Language = "en"

[message.TemplateParams]
name = "{{{{ name }}}}"
"""
# Row 2 is sent; 3 asked by phone (manual); 4 replied a stop word; 5 replied something
# else; 6 repeats 3's recipient; 7 opted out of another business number only.
PHONES = [
    "8613900000002",
    "+86 139 0000 0003",
    "8613900000004",
    "8613900000005",
    "8613900000003",
    "8613900000007",
]
T0_MS = 1_795_000_000_000  # 2026-11-18 11:06:40 UTC


@dataclass(frozen=True)
class Suppressed:
    since_ms: int | None
    reason: str


def write_campaign(folder: Path, *, send: str = "", sender: str = BUSINESS) -> Path:
    (folder / "campaign.toml").write_text(
        CAMPAIGN.format(send=send, sender=sender), encoding="utf-8"
    )
    (folder / "list.csv").write_text(
        "phone,name\n" + "".join(f"{p},N{i}\n" for i, p in enumerate(PHONES)), encoding="utf-8"
    )
    return folder / "campaign.toml"


def opt_outs(workspace: Path) -> None:
    with ReceiptStore.open(workspace) as store:
        store.add_suppression(BUSINESS, "8613900000003", "asked by phone")
        store.add_suppression("8613899999999", "8613900000007", "other number")
        store.add_inbound(
            [
                Inbound("in-4", "8613900000004", BUSINESS, "TEXT", " Stop ", None, T0_MS, "{}"),
                Inbound("in-5", "8613900000005", BUSINESS, "TEXT", "thanks!", None, T0_MS, "{}"),
            ]
        )


def statuses(run_dir: Path) -> dict[int, tuple[str, str]]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        return {int(r["row"]): (r["status"], r["error"]) for r in csv.DictReader(f)}


# -- the screen on prepared batches -------------------------------------------------------


@given(st.text(alphabet="0123456789 +-()abcXY_.٣\u00a0\t", max_size=20))
def test_recipient_keys_are_the_receipt_stores_phone_keys(value: str) -> None:
    assert recipient_keys(pl.Series([value]))[0] == phone_key(value)


def test_the_error_says_since_when_and_why() -> None:
    assert (
        suppression_error(Suppressed(T0_MS, "replied 'STOP'"))
        == "opted out on 2026-11-18 11:06 UTC: replied 'STOP'"
    )
    assert suppression_error(Suppressed(None, "")) == "opted out: on the suppression list"


def prepared(folder: Path, campaign: Path) -> tuple[Plan, pl.DataFrame]:
    plan = Plan(load_campaign(campaign))
    table = open_input(folder / "list.csv")
    [batch] = list(table.batches())
    return plan, plan.prepare(batch, Deduper())


def test_the_screen_holds_back_the_suppressed_recipients_of_the_sender(tmp_path: Path) -> None:
    plan, frame = prepared(tmp_path, write_campaign(tmp_path))
    asked: list[str] = []

    def lookup(business: str) -> dict[str, Suppressed]:
        asked.append(business)
        return {"8613900000003": Suppressed(T0_MS, "asked"), "8613900000005": Suppressed(0, "x")}

    out = Screen(plan, suppressed=lookup).apply(frame)
    got = dict(zip(out[ROW].to_list(), out[STATUS].to_list(), strict=True))
    assert got == {
        2: Status.WOULD_SEND,
        3: Status.SUPPRESSED,
        4: Status.WOULD_SEND,
        5: Status.SUPPRESSED,
        6: Status.DUPLICATE,  # its recipient's first row (3) holds the opt-out
        7: Status.WOULD_SEND,
    }
    assert out.filter(pl.col(ROW) == 3)[ERROR][0] == "opted out on 2026-11-18 11:06 UTC: asked"
    assert asked == [BUSINESS]  # once per sender number and batch
    assert out.columns == frame.columns and out.height == frame.height


def test_a_sender_rendered_per_row_is_looked_up_per_sender(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path, sender="{{ '86138000000' ~ (name[1:] | int % 2) }}")
    plan, frame = prepared(tmp_path, campaign)
    lists = {
        "861380000000": {"8613900000002": Suppressed(1, "a"), "8613900000003": Suppressed(1, "b")},
        "861380000001": {"8613900000002": Suppressed(1, "c"), "8613900000003": Suppressed(1, "d")},
    }
    out = Screen(plan, suppressed=lambda business: lists[business]).apply(frame)
    by_row = {r: (s, e) for r, s, e in out.select(ROW, STATUS, ERROR).iter_rows()}
    # Row 2 (N0) is sent from ...0, row 3 (N1) from ...1: each by its own sender's list.
    assert by_row[2] == (Status.SUPPRESSED, "opted out on 1970-01-01 00:00 UTC: a")
    assert by_row[3] == (Status.SUPPRESSED, "opted out on 1970-01-01 00:00 UTC: d")
    assert by_row[4][0] == Status.WOULD_SEND


def test_suppressions_are_read_again_after_the_refresh_interval(tmp_path: Path) -> None:
    now = [0.0]
    source = Suppressions(tmp_path, refresh_s=60, clock=lambda: now[0])
    assert source(BUSINESS) == {}  # no receipts.sqlite: nobody opted out, none created
    assert not (tmp_path / "receipts.sqlite").exists()
    opt_outs(tmp_path)
    now[0] = 59.0
    assert source(BUSINESS) == {}
    now[0] = 61.0
    assert set(source(BUSINESS)) == {"8613900000003", "8613900000004"}


# -- [send] stop_words ----------------------------------------------------------------------


def test_stop_words_are_a_list_of_non_empty_strings() -> None:
    base = {"name": "x", "message": {"ChannelType": "whatsapp"}}
    ok = parse_campaign({**base, "send": {"stop_words": [" ALTO ", "取消"]}})
    assert ok.send.stop_words == ("ALTO", "取消")
    for bad in ("STOP", [""], ["  "], [1], [["STOP"]]):
        with pytest.raises(ConfigError, match=r"\[send\] stop_words must be a list"):
            parse_campaign({**base, "send": {"stop_words": bad}})


# -- preview and send, end to end -------------------------------------------------------------


def test_preview_marks_the_suppressed_rows_and_counts_them_apart(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path)
    opt_outs(tmp_path / "out")
    result = CliRunner().invoke(
        cli, ["preview", str(campaign), "--out", str(tmp_path / "out"), "--json"]
    )
    assert result.exit_code == 3, result.output  # row 6 is a duplicate
    summary = json.loads(result.stdout)
    assert summary["by_status"] == {"would_send": 3, "suppressed": 2, "duplicate": 1}
    report = statuses(Path(summary["run_dir"]))
    assert report[3][0] == Status.SUPPRESSED  # a manual entry: since it was made
    assert report[3][1].startswith("opted out on ") and report[3][1].endswith(": asked by phone")
    assert report[4] == (Status.SUPPRESSED, "opted out on 2026-11-18 11:06 UTC: replied ' Stop '")
    assert report[5][0] == report[7][0] == report[2][0] == Status.WOULD_SEND
    # Without the duplicate every row is sendable or held back on purpose: exit 0.
    lines = (tmp_path / "list.csv").read_text().splitlines()
    (tmp_path / "fine.csv").write_text("\n".join(lines[:5] + lines[6:]) + "\n")
    printed = CliRunner().invoke(
        cli,
        [
            "preview",
            str(campaign),
            "--input",
            str(tmp_path / "fine.csv"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert printed.exit_code == 0, printed.output
    assert [line.split() for line in printed.stdout.splitlines() if "suppressed" in line] == [
        ["suppressed", "2"]
    ]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(tmp_path_factory.mktemp("sim") / "accepted.jsonl", latency_ms=5) as sandbox:
        yield sandbox


def options(campaign: Path, sandbox: Sandbox) -> api.SendOptions:
    return api.SendOptions(
        campaign,
        out=campaign.parent / "out",
        endpoint=sandbox.url,
        yes=True,
        credentials=Credentials(KEY_ID, SECRET),
    )


def sent_to(sandbox: Sandbox, since: int) -> list[str]:
    return sorted(str(a["to"]) for a in sandbox.accepted()[since:])


@pytest.mark.slow
def test_send_never_sends_to_a_suppressed_recipient(tmp_path: Path, sandbox: Sandbox) -> None:
    campaign = write_campaign(tmp_path, send='[send]\nstop_words = ["thanks!"]\n')
    opt_outs(tmp_path / "out")
    before = len(sandbox.accepted())
    result = api.send(options(campaign, sandbox))
    # 5 replied "thanks!", a stop word of this campaign only; 7 opted out of another number.
    assert sent_to(sandbox, before) == ["8613900000002", "8613900000007"]
    report = statuses(result.run_dir)
    assert [report[r][0] for r in range(2, 8)] == [
        Status.SENT,
        Status.SUPPRESSED,
        Status.SUPPRESSED,
        Status.SUPPRESSED,
        Status.DUPLICATE,
        Status.SENT,
    ]
    assert report[5][1] == "opted out on 2026-11-18 11:06 UTC: replied 'thanks!'"
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["by_status"] == {"sent": 2, "suppressed": 3, "duplicate": 1}
    journal = Journal.in_run(result.run_dir)
    try:
        assert journal.counts() == {"sent": 2, "suppressed": 3, "duplicate": 1}
    finally:
        journal.close()


@pytest.mark.slow
def test_a_resume_keeps_sent_rows_and_holds_back_pending_ones_now_suppressed(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    campaign = write_campaign(tmp_path)
    first = api.send(options(campaign, sandbox))
    assert statuses(first.run_dir)[2][0] == Status.SENT
    # As if the run had stopped before rows 4 and 5 were sent: they are still pending.
    db = sqlite3.connect(first.run_dir / "journal.sqlite")
    db.execute("UPDATE rows SET state='pending', message_id=NULL, code=NULL WHERE row IN (4, 5)")
    db.execute("UPDATE meta SET value='no' WHERE key='finished'")
    db.commit()
    db.close()
    opt_outs(tmp_path / "out")  # 2 never opted out; 3 and 4 did, after the run started
    with ReceiptStore.open(tmp_path / "out") as store:
        store.add_suppression(BUSINESS, "8613900000002", "asked after it was sent")
    before = len(sandbox.accepted())
    resumed = api.send(replace(options(campaign, sandbox), resume=first.run_dir))
    assert sent_to(sandbox, before) == ["8613900000005"]  # only the pending row not opted out
    report = statuses(resumed.run_dir)
    assert report[2] == (Status.SENT, "")  # sent before the opt-out: reported sent
    assert report[3][0] == Status.SENT  # sent in the first part of the run
    assert report[4] == (Status.SUPPRESSED, "opted out on 2026-11-18 11:06 UTC: replied ' Stop '")
    assert report[5][0] == Status.SENT
    # The journal keeps it: the report rebuilt later says the same.
    assert statuses(api.report(api.ReportOptions(first.run_dir)).run_dir) == report
