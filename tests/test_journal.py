"""The journal on a real SQLite file: states, ordering, crash settling, the run lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaigner.errors import JournalError
from campaigner.journal import Journal, Outcome, RunLock, file_fingerprint
from campaigner.statuses import JournalState


def test_rows_move_from_pending_to_intent_to_outcome(tmp_path: Path) -> None:
    journal = Journal.in_run(tmp_path)
    journal.add_rows(
        [
            (2, JournalState.PENDING, "8613800000001", None),
            (3, JournalState.INVALID, "x", "bad number"),
        ]
    )
    journal.apply([2], [])
    assert journal.states() == {2: "intent", 3: "invalid"}
    journal.apply([], [Outcome(2, JournalState.SENT, 1, message_id="m-1", code="OK")])
    assert journal.states() == {2: "sent", 3: "invalid"}
    assert journal.integrity_ok()


def test_add_rows_never_overwrites_a_known_row(tmp_path: Path) -> None:
    journal = Journal.in_run(tmp_path)
    journal.add_rows([(2, JournalState.PENDING, "1", None)])
    journal.apply([], [Outcome(2, JournalState.SENT, 1, message_id="m")])
    journal.add_rows([(2, JournalState.PENDING, "1", None)])  # a resume re-adds the batch
    assert journal.states() == {2: "sent"}


def test_outcomes_commit_before_intents_in_one_call(tmp_path: Path) -> None:
    """A retry's 'back to pending' and its new intent can land together: intent wins."""
    journal = Journal.in_run(tmp_path)
    journal.add_rows([(2, JournalState.PENDING, "1", None)])
    journal.apply([2], [Outcome(2, JournalState.PENDING, 1, code="System.LimitControl")])
    assert journal.states() == {2: "intent"}


def test_rows_left_in_intent_become_unknown(tmp_path: Path) -> None:
    journal = Journal.in_run(tmp_path)
    journal.add_rows([(2, JournalState.PENDING, "1", None), (3, JournalState.PENDING, "2", None)])
    journal.apply([2], [])
    journal.close()
    reopened = Journal.in_run(tmp_path)  # as after a crash
    assert reopened.settle_interrupted() == 1
    assert reopened.states() == {2: "unknown", 3: JournalState.PENDING}
    assert reopened.reopen_unknown() == 1
    assert reopened.states() == {2: JournalState.PENDING, 3: JournalState.PENDING}


def test_a_committed_intent_survives_a_killed_process(tmp_path: Path) -> None:
    code = (
        "import os, sys; from pathlib import Path; from campaigner.journal import Journal\n"
        "from campaigner.statuses import JournalState\n"
        "j = Journal.in_run(Path(sys.argv[1]))\n"
        "j.add_rows([(2, JournalState.PENDING, '1', None)])\n"
        "j.apply([2], []); os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=False)
    journal = Journal.in_run(tmp_path)
    assert journal.states() == {2: "intent"}
    assert journal.integrity_ok()


def test_journal_uses_wal_and_full_sync(tmp_path: Path) -> None:
    Journal.in_run(tmp_path)
    db = sqlite3.connect(tmp_path / "journal.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_second_process_on_a_run_is_refused(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(JournalError, match="another campaigner process"):
            RunLock(tmp_path).acquire()
    RunLock(tmp_path).acquire()  # free again once released


def test_damaged_journal_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "journal.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="is damaged"):
        Journal.in_run(tmp_path)


def damage_pages(path: Path) -> None:
    """Overwrite every third page after the first few, as a bad disk or a stray write would."""
    data = bytearray(path.read_bytes())
    for page in range(4, len(data) // 4096, 3):
        data[page * 4096 : (page + 1) * 4096] = b"\xff" * 4096
    path.write_bytes(bytes(data))


def test_corrupted_pages_are_found_on_opening_and_said_honestly(tmp_path: Path) -> None:
    journal = Journal.in_run(tmp_path)
    journal.set_meta({"name": "c"})
    journal.add_rows((r, JournalState.PENDING, f"86139{r:08d}", None) for r in range(2, 5002))
    journal.close()
    damage_pages(tmp_path / "journal.sqlite")
    with pytest.raises(JournalError) as caught:
        Journal.in_run(tmp_path)  # before: opened fine, failed later mid-run
    message = str(caught.value)
    assert "is damaged" in message and "may have been sent" in message
    assert "nothing was lost" not in message and "\n" not in message
    Journal.in_run(tmp_path, check=False).close()  # a quick look (earlier-run scan) still opens


def test_a_journal_that_cannot_be_created_is_not_called_damaged(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot be opened") as caught:
        Journal.in_run(tmp_path / "missing-folder")
    assert "damaged" not in str(caught.value)


def test_fingerprint_changes_with_content(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text("phone\n1\n")
    before = file_fingerprint(path)
    path.write_text("phone\n2\n")
    assert file_fingerprint(path)["sha256"] != before["sha256"]


def test_checkpoints_run_apart_from_the_commits(tmp_path: Path) -> None:
    """A send's commits never copy the log back themselves (that took 50-300 ms while the
    next intents waited): a thread of its own does, and the log stays bounded."""
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    journal.add_rows((r, JournalState.PENDING, f"+86139{r:08d}", None) for r in range(20_000))
    journal.checkpoint_apart()
    (autocheckpoint,) = journal._db.execute("PRAGMA wal_autocheckpoint").fetchone()
    assert autocheckpoint == 0
    base = path.stat().st_size
    for lo in range(0, 20_000, 500):  # about 8,000 pages of log in all
        journal.apply(list(range(lo, lo + 500)), [])
        time.sleep(0.03)
    deadline = time.monotonic() + 10
    while path.stat().st_size == base and time.monotonic() < deadline:
        journal.apply([], [])  # a commit pokes the checkpointer
        time.sleep(0.05)
    assert path.stat().st_size > base  # pages reached the database without a commit's help
    journal.close()
    assert not path.with_name(path.name + "-wal").exists()  # closed cleanly
    assert set(Journal(path).states().values()) == {"intent"}


def _counted(path: Path) -> dict[str, int]:
    """The rows in each state, counted the slow way."""
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())


def test_state_counts_follow_every_change(tmp_path: Path) -> None:
    """counts() reads counts the triggers keep; they must equal counting the rows after
    every kind of change, including a change to the same state and an ignored re-add."""
    journal = Journal.in_run(tmp_path)
    path = tmp_path / "journal.sqlite"
    pending = [(r, JournalState.PENDING, f"86138{r:08d}", None) for r in range(2, 40)]
    journal.add_rows([*pending, (40, JournalState.INVALID, "x", "bad number")])
    journal.add_rows(pending[:5])  # ignored: the rows are known
    steps = [
        lambda: journal.apply(list(range(2, 20)), []),
        lambda: journal.apply(
            [20, 21],
            [Outcome(r, JournalState.SENT, 1, message_id=f"m{r}") for r in range(2, 12)]
            + [Outcome(12, JournalState.FAILED, 1, code="x"), Outcome(13, JournalState.PENDING, 1)],
        ),
        lambda: journal.apply([13], [Outcome(14, JournalState.INTENT, 1)]),  # same state
        lambda: journal.hold_pending([(30, JournalState.SUPPRESSED, "opted out")]),
        lambda: journal.give_up([31, 32]),
        journal.settle_interrupted,
        journal.reopen_unknown,
    ]
    for step in steps:
        step()
        assert journal.counts() == _counted(path)
    assert journal.counts()["sent"] == 10


def test_a_journal_from_before_state_counts_gets_them_on_opening(tmp_path: Path) -> None:
    journal = Journal.in_run(tmp_path)
    journal.add_rows([(r, JournalState.PENDING, str(r), None) for r in range(2, 12)])
    journal.apply([2, 3], [])
    journal.close()
    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as db:  # as an earlier version left it
        for trigger in ("insert", "update", "delete"):
            db.execute(f"DROP TRIGGER state_counts_{trigger}")
        db.execute("DROP TABLE state_counts")
        db.execute("UPDATE rows SET state='sent' WHERE row=2")
    reopened = Journal.in_run(tmp_path)
    assert reopened.counts() == {"pending": 8, "intent": 1, "sent": 1} == _counted(path)
    reopened.apply([4], [Outcome(3, JournalState.SENT, 1, message_id="m")])
    assert reopened.counts() == {"pending": 7, "intent": 1, "sent": 2} == _counted(path)
