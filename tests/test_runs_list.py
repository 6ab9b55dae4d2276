"""``campaigner runs`` / ``api.list_runs``: each run of a workspace with its state, derived
from what the run recorded and whether a process holds its lock, and its row counts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from campaigner import api
from campaigner.journal import RunLock
from campaigner.runstate import RunState, lock_held, shown_state
from campaigner.sim.harness import Sandbox, campaigner, run
from tests.operator_kit import PHONES, send_options, wait_for, write_campaign
from tests.samples import one_line_error


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(latency_ms=5) as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    ("recorded", "held", "shown"),
    [
        ({"state": "scheduled"}, True, RunState.SCHEDULED),
        ({"state": "sending"}, True, RunState.SENDING),
        ({"state": "paused"}, True, RunState.PAUSED),
        ({}, True, RunState.SENDING),  # locked before it recorded a state
        ({"state": "done"}, False, RunState.DONE),
        ({"state": "stopped"}, False, RunState.STOPPED),
        ({"state": "cancelled"}, False, RunState.CANCELLED),
        ({"state": "done"}, True, RunState.DONE),  # a reconcile holds it: still done
        # Nobody holds a run that says it is alive: its process died.
        ({"state": "sending"}, False, RunState.INTERRUPTED),
        ({"state": "scheduled"}, False, RunState.INTERRUPTED),
        ({"state": "paused"}, False, RunState.INTERRUPTED),
        ({}, False, RunState.INTERRUPTED),
        ({"finished": "yes"}, False, RunState.DONE),  # a run from before states
        ({"state": "stopped", "stop_reason": "paused"}, False, RunState.PAUSED),  # web Pause
    ],
)
def test_shown_state(recorded: dict[str, str], held: bool, shown: RunState) -> None:
    assert shown_state(recorded, held) is shown


def test_lock_held_sees_another_holder_and_leaves_no_lock(tmp_path: Path) -> None:
    assert not lock_held(tmp_path)
    assert not (tmp_path / "run.lock").exists()  # the probe creates nothing
    with RunLock(tmp_path):
        assert lock_held(tmp_path)
    assert not lock_held(tmp_path)
    with RunLock(tmp_path):  # the probe did not keep it
        pass


def test_done_stopped_and_interrupted_runs_with_their_counts(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    options = send_options(tmp_path, sandbox)
    done = api.send(options)
    stopped = api.send(replace(options, limit=2, again=True))
    # A process killed mid-send (SIGKILL after its second answer) leaves an interrupted run.
    env = {"CAMPAIGNER_CRASH_AT": "after_answer:2"}
    code, _, _ = run(
        "send",
        str(options.campaign_file),
        "--endpoint",
        sandbox.url,
        "--out",
        str(options.out),
        "--yes",
        "--again",
        env=env,
        timeout=120,
    )
    assert code == -9
    (options.out / "not-a-run").mkdir()  # no journal: not listed
    (options.out / "notes.txt").write_text("x")

    runs = api.list_runs(options.out)
    assert [r.state for r in runs] == [RunState.DONE, RunState.STOPPED, RunState.INTERRUPTED]
    assert [r.run_dir for r in runs[:2]] == [done.run_dir, stopped.run_dir]
    assert runs[0].counts == {"sent": len(PHONES), "invalid": 1}
    assert runs[1].counts["sent"] == 2
    assert runs[1].stop_reason == "--limit 2 reached"
    assert all(r.name == "operator" and r.created_at is not None for r in runs)
    assert runs[0].created_at <= runs[1].created_at <= runs[2].created_at  # type: ignore[operator]

    code, stdout, err = run("runs", "--out", str(options.out), timeout=60)
    assert code == 0, err
    lines = stdout.splitlines()
    assert lines[0].split()[:2] == ["STATE", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["done", "stopped", "interrupted"]
    assert str(stopped.run_dir) in lines[2]


@pytest.mark.slow
def test_a_run_being_sent_shows_as_sending(tmp_path: Path) -> None:
    with Sandbox(latency_ms=5000) as slow:
        campaign = write_campaign(tmp_path)
        out = tmp_path / "out"
        proc = campaigner(
            "send", str(campaign), "--endpoint", slow.url, "--out", str(out), "--yes", "--qps", "1"
        )
        try:

            def sending() -> bool:  # with requests out: the pool is running
                runs = api.list_runs(out)
                return [r.state for r in runs] == [RunState.SENDING] and bool(
                    runs[0].counts.get("intent")
                )

            wait_for(sending, what="the run to show as sending")
            # A run that is sending cannot be cancelled with `campaigner cancel`.
            [info] = api.list_runs(out)
            code, _, err = run("cancel", str(info.run_dir), timeout=60)
            assert code == 1
            assert "is sending, not scheduled" in one_line_error(SimpleNamespace(stderr=err))
        finally:
            proc.terminate()  # a graceful stop: the run ends stopped
            proc.communicate(timeout=120)
        [info] = api.list_runs(out)
        assert info.state is RunState.STOPPED


def test_an_empty_or_missing_workspace_lists_nothing(tmp_path: Path) -> None:
    assert api.list_runs(tmp_path / "missing") == []
    code, stdout, _ = run("runs", "--out", str(tmp_path), timeout=60)
    assert code == 0 and stdout.strip() == "No runs."


def test_the_lock_probe_does_not_disturb_a_send(tmp_path: Path, sandbox: Sandbox) -> None:
    # list_runs while nothing runs, then a send of the same workspace works as ever.
    options = send_options(tmp_path, sandbox)
    api.list_runs(options.out)
    result = api.send(options)
    assert result.tally.rows == len(PHONES) + 1
    assert os.listdir(result.run_dir)
