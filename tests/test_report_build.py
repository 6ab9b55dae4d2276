"""The report assembled from a prepared batch and the journal (``report_batch``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from campaigner.columns import ERROR, ROW, STATUS, TO
from campaigner.journal import Journal, Outcome
from campaigner.report import ReportLayout, report_batch
from campaigner.statuses import JournalState, Status

PHONES = ["8613900000002", "8613900000003", "8613900000004", "8613900000005", "8613900000006"]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """Rows 2-6 checked sendable; 2 sent, 3 failed, 4 in flight, 5 unknown, 6 pending."""
    journal = Journal.in_run(tmp_path)
    journal.add_rows((row, JournalState.PENDING, to, None) for row, to in enumerate(PHONES, 2))
    journal.apply(
        [4],
        [
            Outcome(2, JournalState.SENT, 1, "m2", "OK", "success", "r2"),
            Outcome(3, JournalState.FAILED, 1, None, "Bad", "refused", "r3", "refused by CAMS"),
            Outcome(5, JournalState.UNKNOWN, 2, error="timed out"),
        ],
    )
    try:
        yield journal
    finally:
        journal.close()


def prepared(status: Status, error: str | None) -> pl.DataFrame:
    """A prepared batch of rows 2-7 (row 7 never reached the journal), all ``status``."""
    phones = [*PHONES, "8613900000007"]
    return pl.DataFrame(
        {
            "phone": phones,
            ROW: list(range(2, 2 + len(phones))),
            STATUS: [status.value] * len(phones),
            TO: phones,
            ERROR: [error] * len(phones),
        }
    )


def report(journal: Journal, status: Status, error: str | None) -> dict[str, list[object]]:
    layout = ReportLayout.for_input(["phone"])
    return report_batch(layout, prepared(status, error), journal).to_dict(as_series=False)


def test_sendable_rows_take_the_journals_outcome(journal: Journal) -> None:
    got = report(journal, Status.WOULD_SEND, None)
    assert got["status"] == [
        "sent",
        "failed",
        "unknown",
        "unknown",
        "not_attempted",
        "not_attempted",
    ]
    assert got["MessageId"] == ["m2", None, None, None, None, None]
    assert got["attempts"] == [1, 1, 0, 2, 0, 0]
    assert got["error"] == [
        None,
        "refused by CAMS",
        "in flight (or interrupted): may have been delivered",
        "timed out",
        None,
        None,
    ]


def test_an_attempted_row_keeps_its_outcome_when_the_rebuild_calls_it_invalid(
    journal: Journal,
) -> None:
    # The rebuild re-renders every row; a template near the time limit can fail now where it
    # rendered when the row was sent. What happened to the row is the journal's to say.
    slow = "the template took too long to render"
    got = report(journal, Status.INVALID, slow)
    assert got["status"] == ["sent", "failed", "unknown", "unknown", "invalid", "invalid"]
    assert got["MessageId"] == ["m2", None, None, None, None, None]
    assert got["Code"] == ["OK", "Bad", None, None, None, None]
    assert got["error"] == [
        None,
        "refused by CAMS",
        "in flight (or interrupted): may have been delivered",
        "timed out",
        slow,
        slow,
    ]
