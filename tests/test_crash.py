"""Proof by killing the process: no row lost, no message sent twice.

Every test here runs real processes: `campaigner sandbox` as CAMS (its log of accepted sends
is the truth about what recipients received) and `campaigner send`, killed with SIGKILL at
random moments or at exact crash points, then resumed and reconciled.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from campaigner.crashpoints import POINTS
from tests.crashkit import (
    Sandbox,
    campaigner,
    check,
    run,
    run_dir,
    send_args,
    wait_for_run,
    write_campaign,
)

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


@pytest.mark.parametrize("point", POINTS)
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
            code, _, err = run("report", str(folder))
            assert code in (0, 3), err
        folder = finish(campaign, out, sandbox, folder)
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)


def test_sigterm_stops_gracefully_and_resume_completes(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=100) as sandbox:
        proc = campaigner(*send_args(campaign, out, sandbox.url, None))
        wait_for_run(out)
        time.sleep(0.7)  # sending has started
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, err.decode()
        folder = run_dir(out)
        assert folder is not None
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
        first = campaigner(*send_args(campaign, out, sandbox.url, None))
        wait_for_run(out)
        time.sleep(0.5)
        folder = run_dir(out)
        assert folder is not None
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        assert code == 1
        assert "another campaigner process" in err
        first.communicate(timeout=120)
        assert first.returncode == 3


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
        code, _, err = run(*send_args(campaign, out, sandbox.url, None))  # --yes: a new run
        assert code == 3, err
        assert run_dir(out) != earlier


def test_report_can_be_rebuilt_while_the_run_is_going(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=300) as sandbox:
        proc = campaigner(*send_args(campaign, out, sandbox.url, None))
        wait_for_run(out)
        time.sleep(1.0)
        folder = run_dir(out)
        assert folder is not None
        code, _, err = run("report", str(folder))
        assert code == 3, err
        during = check(folder / "report.csv", ROWS, [])
        assert during.report_rows == ROWS and not during.missing_rows
        assert during.statuses.get("not_attempted", 0) > 0  # the run is not done yet
        proc.communicate(timeout=120)
        assert proc.returncode == 3
        assert_no_loss_no_duplicate(tmp_path, sandbox, folder)
