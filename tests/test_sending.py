"""The library's send path in this process (``campaigner.api.send``) against the simulator
over real loopback HTTP: what is sent, what the journal and the report say, and resume."""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from campaigner import api
from campaigner.errors import ConfirmationDeclined
from campaigner.inputs import InputTable
from campaigner.journal import Journal, Outcome
from campaigner.report import build
from campaigner.report.journal_rows import JournalRows, rows_frame
from campaigner.signing import Credentials
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox
from campaigner.statuses import JournalState, Status
from tests.samples import campaign_toml

CAMPAIGN = campaign_toml("library-send", list_file="list.csv")
# Rows 2-4 are sent; row 5 is not a phone number; row 6 repeats row 2's recipient.
ROWS = ["8613900000002", "8613900000003", "+86 139 0000 0004", "not a number", "8613900000002"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(tmp_path_factory.mktemp("sim") / "accepted.jsonl", latency_ms=5) as sandbox:
        yield sandbox


@pytest.fixture
def options(tmp_path: Path, sandbox: Sandbox) -> api.SendOptions:
    (tmp_path / "campaign.toml").write_text(CAMPAIGN, encoding="utf-8")
    (tmp_path / "list.csv").write_text(
        "phone,name\n" + "".join(f"{phone},Ana\n" for phone in ROWS), encoding="utf-8"
    )
    return api.SendOptions(
        tmp_path / "campaign.toml",
        out=tmp_path / "out",
        endpoint=sandbox.url,
        yes=True,
        credentials=Credentials(KEY_ID, SECRET),
    )


def sent_to(sandbox: Sandbox, since: int) -> list[str]:
    return [str(a["to"]) for a in sandbox.accepted()[since:]]


def report_statuses(run_dir: Path) -> dict[int, str]:
    with (run_dir / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        return {int(r["row"]): r["status"] for r in csv.DictReader(f)}


def test_each_valid_row_is_sent_once_and_every_row_is_reported(
    options: api.SendOptions, sandbox: Sandbox
) -> None:
    before = len(sandbox.accepted())
    snapshots: list[api.SendProgress] = []
    result = api.send(options, snapshots.append)

    assert sorted(sent_to(sandbox, before)) == [
        "8613900000002",
        "8613900000003",
        "8613900000004",
    ]
    assert report_statuses(result.run_dir) == {
        2: Status.SENT,
        3: Status.SENT,
        4: Status.SENT,
        5: Status.INVALID,
        6: Status.DUPLICATE,
    }
    assert result.tally.rows == 5 and result.tally.count(Status.SENT) == 3
    assert not result.all_sent  # two rows were not sent
    journal = Journal.in_run(result.run_dir)
    try:
        assert journal.counts() == {"sent": 3, "invalid": 1, "duplicate": 1}
    finally:
        journal.close()
    assert all(s.done <= s.total == 3 for s in snapshots)


def test_a_resume_of_a_finished_run_sends_nothing_again(
    options: api.SendOptions, sandbox: Sandbox
) -> None:
    first = api.send(options)
    before = len(sandbox.accepted())
    again = api.send(replace(options, resume=first.run_dir))
    assert again.run_dir == first.run_dir
    assert sent_to(sandbox, before) == []
    assert report_statuses(again.run_dir) == report_statuses(first.run_dir)
    assert again.tally.count(Status.SENT) == 3


def test_a_declined_confirmation_sends_nothing(options: api.SendOptions, sandbox: Sandbox) -> None:
    before = len(sandbox.accepted())
    questions: list[str] = []

    def no(question: str) -> bool:
        questions.append(question)
        return False

    with pytest.raises(ConfirmationDeclined):
        api.send(replace(options, yes=False), confirm=no)
    assert questions  # it asked before sending the valid rows
    assert sent_to(sandbox, before) == []


def test_the_report_taken_from_the_journal_is_the_report_of_checking_again(
    options: api.SendOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild takes the rows the journal holds as the run checked them, without checking
    them again: the same report, to the byte, as checking every row again gives."""
    result = api.send(options, lambda _: None)
    taken = (result.run_dir / "report.csv").read_bytes()
    monkeypatch.setattr(build, "_as_journaled", lambda batch, jf: None)  # check every row
    api.report(api.ReportOptions(result.run_dir))
    assert (result.run_dir / "report.csv").read_bytes() == taken
    assert b"same recipient as row 2" in taken and b"invalid" in taken


def test_journal_rows_read_as_one_text_are_the_rows_fetched_one_by_one(tmp_path: Path) -> None:
    odd = ['a "quoted", comma', "two\nlines", "ünïcödé ✓ 中文", "", None, "\\ back\\slash"]
    journal = Journal.in_run(tmp_path)
    try:
        journal.add_rows((r, JournalState.PENDING, f"86139{r:08d}", None) for r in range(2, 9))
        journal.apply(
            [8],
            [
                Outcome(r, JournalState.FAILED, r, f"m{r}", text, text, text, text)
                for r, text in zip(range(2, 8), odd, strict=True)
            ],
        )
        with closing(JournalRows(tmp_path)) as rows:
            assert rows.between(2, 8).equals(rows_frame(journal.rows_between(2, 8)))
            assert rows.between(9, 15).equals(rows_frame(journal.rows_between(9, 15)))  # ahead
            assert rows.between(3, 4).equals(rows_frame(journal.rows_between(3, 4)))
    finally:
        journal.close()


def test_rows_the_run_never_read_are_checked_against_the_rows_it_did(
    options: api.SendOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run stopped before reading its last rows: those are checked again, and a recipient
    an earlier row (taken from the journal) already had is still a duplicate."""
    result = api.send(options, lambda _: None)
    with sqlite3.connect(result.run_dir / "journal.sqlite") as db:
        db.execute("DELETE FROM rows WHERE row = 6")  # as if never read
    batches = InputTable.batches
    monkeypatch.setattr(InputTable, "batches", lambda self, _=0: batches(self, 2))
    api.report(api.ReportOptions(result.run_dir))
    assert report_statuses(result.run_dir)[6] == Status.DUPLICATE
