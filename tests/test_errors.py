"""The error hierarchy's helpers: leaves of exception groups, file-system failures in words,
and text made safe for the terminal."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import anyio
import pytest

from campaigner.errors import (
    AccountError,
    CampaignerError,
    JournalError,
    meaningful_leaf,
    storage_problem,
)
from campaigner.journal import Journal
from campaigner.terminal import printable


def test_the_leaf_of_a_task_group_is_the_error_not_the_cancellations() -> None:
    async def fails() -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "/x/journal.sqlite")

    async def waits() -> None:
        await anyio.sleep(10)

    async def main() -> None:
        async with anyio.create_task_group() as outer:
            outer.start_soon(waits)
            async with anyio.create_task_group() as inner:
                inner.start_soon(waits)
                inner.start_soon(fails)

    with pytest.raises(BaseExceptionGroup) as caught:
        anyio.run(main)
    leaf = meaningful_leaf(caught.value)
    assert isinstance(leaf, OSError) and leaf.errno == errno.ENOSPC


def test_our_errors_and_signals_win_over_other_leaves() -> None:
    account = AccountError("refused")
    group = ExceptionGroup("g", [ValueError("x"), ExceptionGroup("h", [account])])
    assert meaningful_leaf(group) is account
    interrupt = KeyboardInterrupt()
    assert meaningful_leaf(BaseExceptionGroup("g", [account, interrupt])) is interrupt
    plain = ValueError("x")
    assert meaningful_leaf(plain) is plain


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (errno.ENOSPC, "the disk is full"),
        (errno.EROFS, "read-only"),
        (errno.ENAMETOOLONG, "name is too long"),
        (errno.EACCES, "permission denied"),
        (errno.ENOTDIR, "is a file, not a folder"),
    ],
)
def test_file_system_errors_in_words(code: int, words: str) -> None:
    problem = storage_problem(OSError(code, "strerror", "/out/run/report.csv"))
    assert problem is not None
    assert problem.describe() == f"{problem.what}: /out/run/report.csv"
    assert words in problem.what


def test_a_real_sqlite_disk_full_error_is_a_storage_problem(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "x.sqlite")
    db.execute("CREATE TABLE t (v BLOB)")
    db.execute("PRAGMA max_page_count = 3")  # SQLite's own "disk is full", no mount needed
    with pytest.raises(sqlite3.OperationalError) as caught:
        db.execute("INSERT INTO t VALUES (zeroblob(100000))")
    db.close()
    problem = storage_problem(caught.value)
    assert problem is not None and problem.what == "the disk is full"


def test_a_wrapper_raised_from_none_is_looked_through(tmp_path: Path) -> None:
    (tmp_path / "journal.sqlite").mkdir()  # a folder where the database should be
    with pytest.raises(JournalError) as caught:
        Journal.in_run(tmp_path)
    assert storage_problem(caught.value) is not None


def test_bugs_are_not_storage_problems() -> None:
    assert storage_problem(ValueError("bug")) is None
    assert storage_problem(OSError(errno.ECONNRESET, "reset")) is None
    try:
        try:
            raise OSError(errno.ENOSPC, "full")
        except OSError:
            raise TypeError("a bug while handling it") from None
    except TypeError as exc:
        assert storage_problem(exc) is None


def test_errors_carry_details_and_exit_codes() -> None:
    err = CampaignerError("m", exit_code=143, details={"run_dir": "x"})
    assert (str(err), err.exit_code, err.details) == ("m", 143, {"run_dir": "x"})
    assert AccountError("m").exit_code == 1 and AccountError("m").details == {}


def test_printable_escapes_controls_escapes_and_bidi() -> None:
    hostile = "a\x1b]0;title\x07b\x9b31mc\u202eexe.txt\nforged line\r\t\x00\x7f\u2028"
    safe = printable(hostile)
    assert safe == (
        "a\\x1b]0;title\\x07b\\x9b31mc\\u202eexe.txt\\x0aforged line\\x0d\\x09\\x00\\x7f\\u2028"
    )
    assert safe.isprintable()


def test_printable_keeps_ordinary_text() -> None:
    text = "Zoë 日本 ‍👩‍💻 +86 138-0013-8000 \\x1b"
    assert printable(text) == text
