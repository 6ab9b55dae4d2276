"""``send --limit N``: the first N valid rows are sent, the run stops resumably with the
rest not_attempted (with the reason), and --resume sends the rest, each row once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from campaigner import api
from campaigner.runstate import RunState
from campaigner.sim.harness import Sandbox, run
from tests.operator_kit import (
    PHONES,
    report_rows,
    run_dirs,
    send_options,
    sent_to,
    write_campaign,
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(latency_ms=5) as sandbox:
        yield sandbox


def test_limit_sends_the_first_rows_then_resume_sends_the_rest_once(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    options = send_options(tmp_path, sandbox, limit=2)
    before = len(sandbox.accepted())
    said: list[str] = []
    first = api.send(options, say=said.append)

    # The first two rows; sent concurrently, so they may reach the server in either order.
    assert sorted(sent_to(sandbox, before)) == sorted(PHONES[:2])
    assert first.stop_reason == "--limit 2 reached"
    assert not first.all_sent
    rows = report_rows(first.run_dir)
    assert [rows[r]["status"] for r in range(2, 8)] == [
        "sent",
        "sent",
        "not_attempted",
        "not_attempted",
        "not_attempted",
        "invalid",
    ]
    assert "--limit 2 reached" in rows[4]["error"] and "--resume" in rows[4]["error"]
    assert any("Continue with:" in line and str(first.run_dir) in line for line in said)
    [info] = api.list_runs(options.out)
    assert info.state is RunState.STOPPED

    # Another --limit on the resume: two more; then the rest without one.
    second = api.send(replace(options, resume=first.run_dir, limit=2))
    assert second.run_dir == first.run_dir
    assert sorted(sent_to(sandbox, before)) == sorted(PHONES[:4])
    third = api.send(replace(options, resume=first.run_dir, limit=None))
    # Each row exactly once over the three sends.
    assert sorted(sent_to(sandbox, before)) == sorted(PHONES)
    assert third.stop_reason is None
    rows = report_rows(first.run_dir)
    assert [rows[r]["status"] for r in range(2, 7)] == ["sent"] * 5
    assert all(not rows[r]["error"] for r in range(2, 7))  # the limit's reason is gone
    [info] = api.list_runs(options.out)
    assert info.state is RunState.DONE


def test_a_limit_as_large_as_the_list_finishes_the_run(tmp_path: Path, sandbox: Sandbox) -> None:
    result = api.send(send_options(tmp_path, sandbox, limit=len(PHONES)))
    assert result.stop_reason is None
    [info] = api.list_runs(tmp_path / "out")
    assert info.state is RunState.DONE
    assert info.counts.get("sent") == len(PHONES)


def test_the_cli_says_how_to_continue(tmp_path: Path, sandbox: Sandbox) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    args = ["send", str(campaign), "--endpoint", sandbox.url, "--out", str(out), "--yes"]
    code, _, err = run(*args, "--limit", "1", timeout=120)
    assert code == 3, err  # finished with rows not sent
    [run_dir] = run_dirs(out)
    assert f"--resume {run_dir}" in err
    assert "stopped after 1 rows (--limit)" in err
    code, _, err = run(*args, "--limit", "0", timeout=120)
    assert code == 2 and "--limit" in err  # a usage error
