"""Proof by killing the process: no row lost, no message sent twice.

Every test here runs real processes: `campaigner sandbox` as CAMS (its log of accepted sends
is the truth about what recipients received) and `campaigner send`, killed with SIGKILL at
random moments or at exact crash points, then resumed and reconciled.
"""

from __future__ import annotations

import os
import pty
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import pytest

from campaigner.crashpoints import POINTS
from campaigner.journal import Journal
from campaigner.sim.crashcheck import check, read_report, run_dir, write_campaign
from campaigner.sim.harness import CREDENTIALS, Sandbox, campaigner, run, send_args
from tests.crashkit import wait_for_run, wait_for_sent

ROWS = 600
pytestmark = [pytest.mark.slow, pytest.mark.stress]


def finish(campaign: Path, out: Path, sandbox: Sandbox, first: Path | None) -> Path:
    """Resume until done, reconcile the unknown rows, resume once more for the unsent."""
    resume = first or run_dir(out)
    for _ in range(10):
        code, _, err = run(*send_args(campaign, out, sandbox.url, resume))
        assert code in (0, 3), err
        resume = resume or run_dir(out)
        if code in (0, 3):
            break
    assert resume is not None
    code, _, err = run("reconcile", str(resume), "--endpoint", sandbox.url, "--grace-s", "0")
    assert code in (0, 3), err
    code, _, err = run(*send_args(campaign, out, sandbox.url, resume))
    assert code in (0, 3), err
    return resume


def assert_no_loss_no_duplicate(tmp_path: Path, sandbox: Sandbox, run_folder: Path) -> None:
    verdict = check(run_folder / "report.csv", ROWS, sandbox.accepted())
    assert verdict.ok, verdict
    assert verdict.statuses.get("unknown", 0) == 0, verdict
    assert verdict.statuses.get("not_attempted", 0) == 0, verdict
    # Every valid, first-seen row was sent exactly once.
    assert verdict.statuses["sent"] == len(sandbox.accepted())


def test_random_kills_then_resume_and_reconcile(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    rng = random.Random(4)
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=80) as sandbox:
        resume = None
        for _ in range(6):
            proc = campaigner(*send_args(campaign, out, sandbox.url, resume))
            time.sleep(rng.uniform(0.6, 1.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            resume = resume or run_dir(out)
        folder = finish(campaign, out, sandbox, resume)
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


@pytest.mark.parametrize("point", [p for p in POINTS if p != "run_folder"])
def test_kill_at_each_step_of_a_rows_life(tmp_path: Path, point: str) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        code, _, _ = run(
            *send_args(campaign, out, sandbox.url, None),
            env={"CAMPAIGNER_CRASH_AT": f"{point}:3" if point != "report_write" else point},
        )
        assert code == -signal.SIGKILL
        folder = run_dir(out)
        assert folder is not None
        if point == "report_write":
            assert list(folder.glob(".report.*.tmp"))  # what the killed writer left
            code, _, err = run("report", str(folder))
            assert code in (0, 3), err
            assert not list(folder.glob(".report.*.tmp"))
        folder = finish(campaign, out, sandbox, folder)
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


def test_sigterm_stops_gracefully_and_resume_completes(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=100) as sandbox:
        proc = campaigner(*send_args(campaign, out, sandbox.url, None), "--qps", "50")
        folder = wait_for_run(out)
        assert folder is not None
        wait_for_sent(folder)  # sending has started (12 s to go at 50/s)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err.decode()
        verdict = check(folder / "report.csv", ROWS, sandbox.accepted())
        assert verdict.ok, verdict
        assert verdict.statuses.get("unknown", 0) == 0
        assert verdict.statuses.get("not_attempted", 0) > 0
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 3, err  # 3: the list has invalid and duplicate rows
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


def test_a_second_process_on_the_same_run_is_refused(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=200) as sandbox:
        # 20/s: the first run is still going (30 s) while the second starts.
        first = campaigner(*send_args(campaign, out, sandbox.url, None), "--qps", "20")
        folder = wait_for_run(out)
        assert folder is not None
        wait_for_sent(folder)
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 1
        assert "another campaigner process" in err
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
        assert first.returncode == 143  # the refused second process did not disturb it
        verdict = check(folder / "report.csv", ROWS, sandbox.accepted())
        assert verdict.ok, verdict


def test_resume_refuses_a_changed_list(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 50)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl") as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))
        assert code == 3, err
        folder = run_dir(out)
        assert folder is not None
        with (tmp_path / "c" / "recipients.csv").open("a") as f:
            f.write("8613999999999,late\n")
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 1
        assert "recipient list" in err and "changed" in err


def test_resend_unknown_is_an_explicit_opt_in(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 200)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        code, _, _ = run(
            *send_args(campaign, out, sandbox.url, None),
            env={"CAMPAIGNER_CRASH_AT": "after_send:5"},
        )
        assert code == -signal.SIGKILL
        folder = run_dir(out)
        assert folder is not None
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder), "--resend-unknown")
        assert code == 3, err
        assert "may already have been delivered" in err
        verdict = check(folder / "report.csv", 200, sandbox.accepted())
        assert verdict.statuses.get("unknown", 0) == 0
        # The server had accepted the in-flight message: resending it duplicated it.
        assert verdict.duplicates >= 1
        # Without --resume it would be silently ignored: a usage error instead.
        code, _, err = run(*send_args(campaign, out, sandbox.url, None), "--resend-unknown")
        assert code == 2, err
        assert "--resend-unknown works only with --resume" in err


def test_a_new_run_while_one_is_unfinished_asks_first(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 200)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        run(
            *send_args(campaign, out, sandbox.url, None),
            env={"CAMPAIGNER_CRASH_AT": "after_intent:20"},
        )
        earlier = run_dir(out)
        assert earlier is not None
        args = [a for a in send_args(campaign, out, sandbox.url, None) if a != "--yes"]
        code, _, err = run(*args)
        assert code == 1
        assert f"--resume {earlier}" in err
        # Its rows in flight may have been delivered: --yes (a cron job) does not start over.
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))
        assert code == 1, err
        assert f"--resume {earlier}" in err and "--again" in err
        code, _, err = run(*send_args(campaign, out, sandbox.url, None, again=True))
        assert code == 3, err
        assert run_dir(out) != earlier


def test_report_can_be_rebuilt_while_the_run_is_going(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=300) as sandbox:
        # 20/s: the run is still going (30 s) while the report is rebuilt.
        proc = campaigner(*send_args(campaign, out, sandbox.url, None), "--qps", "20")
        folder = wait_for_run(out)
        assert folder is not None
        wait_for_sent(folder)
        code, _, err = run("report", str(folder))
        assert code == 3, err
        during = check(folder / "report.csv", ROWS, [])
        assert during.report_rows == ROWS and not during.missing_rows
        assert during.statuses.get("not_attempted", 0) > 0  # the run is not done yet
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=120)
        assert proc.returncode == 143
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 3, err
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


def visible(out: Path) -> list[Path]:
    """The run folders (the workspace's stores, ledger.sqlite, sit beside them)."""
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


def journal_count(folder: Path, state: str) -> int:
    db = sqlite3.connect(folder / "journal.sqlite")
    try:
        return int(db.execute("SELECT count(*) FROM rows WHERE state=?", (state,)).fetchone()[0])
    finally:
        db.close()


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_a_kill_while_the_run_folder_is_made_leaves_no_folder(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        code, _, _ = run(
            *send_args(campaign, out, sandbox.url, None),
            env={"CAMPAIGNER_CRASH_AT": "run_folder"},
        )
        assert code == -signal.SIGKILL  # the journal holds the campaign; no name yet
        assert visible(out) == []  # no folder that a --resume would choke on
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))  # nothing was sent
        assert code == 3, err
        [folder] = visible(out)
        # The abandoned one was cleared away.
        assert [p for p in out.iterdir() if p.is_dir()] == [folder]
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


@pytest.mark.parametrize("left", ["a journal without a campaign", "no journal"])
def test_resume_of_a_run_that_never_recorded_its_campaign_starts_it(
    tmp_path: Path, left: str
) -> None:
    """What a kill in a run's first moments left before run folders appeared complete."""
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    folder = out / "crash-20260101T000000Z"
    folder.mkdir(parents=True)
    (folder / "run.lock").touch()
    if left == "a journal without a campaign":
        Journal.in_run(folder).close()
        code, _, err = run("report", str(folder))
        assert code == 1
        assert "nothing was sent" in err and f"--resume {folder}" in err
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 3, err
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


def test_reconcile_right_after_a_kill_settles_the_rows_in_flight(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        code, _, _ = run(
            *send_args(campaign, out, sandbox.url, None),
            env={"CAMPAIGNER_CRASH_AT": "after_send:5"},  # the 5th answer was never read
        )
        assert code == -signal.SIGKILL
        folder = run_dir(out)
        assert folder is not None
        in_flight = journal_count(folder, "intent")
        assert in_flight >= 1
        code, stdout, err = run(
            "reconcile", str(folder), "--endpoint", sandbox.url, "--grace-s", "0"
        )
        assert code in (0, 3), err
        assert f"{in_flight} rows were in flight" in stdout
        found = int(stdout.split("Reconciled")[1].split(": ")[1].split(" found sent")[0])
        assert found >= 1  # the server had accepted the 5th
        assert journal_count(folder, "intent") == journal_count(folder, "unknown") == 0
        statuses = {r["status"] for r in read_report(folder / "report.csv")}
        assert "unknown" not in statuses
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 3, err
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


def test_a_sent_campaign_is_not_sent_again_without_again(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 50)
    out, other_out = tmp_path / "out", tmp_path / "elsewhere"
    with Sandbox(tmp_path / "accepted.jsonl") as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))
        assert code == 3, err
        first = run_dir(out)
        assert first is not None
        sent_once = len(sandbox.accepted())
        for where in (out, other_out):  # the earlier run is found whatever --out says
            code, _, err = run(*send_args(campaign, where, sandbox.url, None))  # --yes, no tty
            assert code == 1, err
            [line] = error_lines(err)
            assert first.name in line and "already sent" in line and "--again" in line
        assert len(sandbox.accepted()) == sent_once
        assert not other_out.exists() or visible(other_out) == []
        code, _, err = run(*send_args(campaign, other_out, sandbox.url, None, again=True))
        assert code == 3, err
        assert len(sandbox.accepted()) == 2 * sent_once


def test_on_a_terminal_sending_again_asks_and_defaults_to_no(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 50)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl") as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))
        assert code == 3, err
        sent_once = len(sandbox.accepted())
        controller, terminal = pty.openpty()
        try:
            os.write(controller, b"\n")  # Enter: the default answer
            proc = subprocess.run(
                [sys.executable, "-m", "campaigner", *send_args(campaign, out, sandbox.url, None)],
                stdin=terminal,
                capture_output=True,
                text=True,
                env=os.environ | CREDENTIALS,
                timeout=300,
                check=False,
            )
        finally:
            os.close(controller)
            os.close(terminal)
        assert "Send it to everyone AGAIN? [y/N]" in proc.stderr
        assert proc.returncode == 1, proc.stderr
        assert len(sandbox.accepted()) == sent_once


def test_an_unwritable_state_home_warns_once_and_still_finds_runs_under_out(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    env = {"XDG_STATE_HOME": str(tmp_path / "a-file" / "state")}  # fails even for root
    campaign = write_campaign(tmp_path / "c", 50)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl") as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, None), env=env)
        assert code == 3, err
        assert len([line for line in err.splitlines() if "record of runs" in line]) == 1
        code, _, err = run(*send_args(campaign, out, sandbox.url, None), env=env)
        assert code == 1, err
        assert "already sent" in err


def xlsx_statuses(path: Path) -> list[str]:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    column = rows[0].index("status")
    return [str(r[column]) for r in rows[1:]]


def test_the_run_remembers_its_report_formats(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)  # a CSV list: XLSX only on request
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=30) as sandbox:
        code, _, _ = run(
            *send_args(campaign, out, sandbox.url, None),
            "--format",
            "xlsx",
            env={"CAMPAIGNER_CRASH_AT": "after_answer:50"},
        )
        assert code == -signal.SIGKILL
        folder = run_dir(out)
        assert folder is not None
        code, _, err = run("report", str(folder))  # no --format: the run's own formats
        assert code == 3, err
        assert xlsx_statuses(folder / "report.xlsx").count("not_attempted") > 0
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))  # nor here
        assert code == 3, err
        csv_statuses = [r["status"] for r in read_report(folder / "report.csv")]
        assert xlsx_statuses(folder / "report.xlsx") == csv_statuses
        assert "not_attempted" not in csv_statuses


def test_a_damaged_journal_is_one_honest_line(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 200)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl") as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))
        assert code == 3, err
        folder = run_dir(out)
        assert folder is not None
        journal = folder / "journal.sqlite"
        data = bytearray(journal.read_bytes())
        data[4096:] = b"\xff" * (len(data) - 4096)  # every page but the header's
        journal.write_bytes(bytes(data))
        for args in (("report", str(folder)), send_args(campaign, out, sandbox.url, folder)):
            code, _, err = run(*args)
            assert code == 1, err
            [line] = error_lines(err)
            assert "is damaged" in line and "may have been sent" in line
            for wrong in ("nothing was lost", "ExceptionGroup", "Traceback", "internal error"):
                assert wrong not in err


def test_the_harness_never_writes_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox without a log once wrote accepted sends (with numbers) to ./None."""
    campaign = write_campaign(tmp_path / "c", 20)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with Sandbox() as sandbox:
        code, _, err = run(*send_args(campaign, tmp_path / "out", sandbox.url, None))
        assert code == 3, err
        assert sandbox.accepted()
    assert list(cwd.iterdir()) == []
