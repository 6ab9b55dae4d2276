"""What a watched run costs the server: its figures read once per beat for all its pages and
event streams, and its journal kept open while it sends instead of opened for every read."""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigner.journal import JOURNAL_NAME, Journal, RunLock
from campaigner.web.context import Shared
from campaigner.web.workspace import Workspace
from tests.test_web_routes import make_client, sign_in


def a_run(out: Path, name: str = "r1") -> Path:
    run_dir = out / name
    run_dir.mkdir(parents=True)
    Journal.in_run(run_dir).close()
    return run_dir


def test_pages_of_one_run_share_its_figures_until_an_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    real_info = Workspace.info

    def counted(self: Workspace, run_id: str, *, keep_open: bool = False) -> object:
        reads.append(run_id)
        return real_info(self, run_id, keep_open=keep_open)

    monkeypatch.setattr(Workspace, "info", counted)
    with make_client(tmp_path / "out") as client:
        a_run(tmp_path / "out")
        client.app.state.web.statuses = Shared(3600.0)  # type: ignore[attr-defined]
        token = sign_in(client)
        reads.clear()
        for _ in range(3):
            assert 'data-state="interrupted"' in client.get("/runs/r1").text
        assert reads == ["r1"]
        # An action's outcome is read anew (this one is refused: nothing sends r1).
        assert client.post("/runs/r1/pause", data={"csrf_token": token}).status_code == 409
        assert reads == ["r1", "r1"]


def test_a_sending_runs_journal_stays_open_between_reads_and_closes_when_it_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = Workspace(tmp_path / "out")
    run_dir = a_run(workspace.out)
    opened: list[Path] = []
    real_open = Journal.in_run

    def counted(run_dir: Path, *, check: bool = True) -> Journal:
        opened.append(run_dir)
        return real_open(run_dir, check=check)

    monkeypatch.setattr(Journal, "in_run", counted)
    with RunLock(run_dir):  # as a send holds it
        for _ in range(3):
            info = workspace.info("r1", keep_open=True)
            assert info is not None and info.state == "sending"
        assert len(opened) == 1
        assert workspace.info("r1") is not None  # a read without keep_open opens its own
        assert len(opened) == 2
    info = workspace.info("r1", keep_open=True)  # the send is over: closed after this read
    assert info is not None and info.state == "interrupted"
    assert len(opened) == 2
    assert not (run_dir / f"{JOURNAL_NAME}-wal").exists()  # as after a CLI run
    workspace.info("r1", keep_open=True)  # opened for this read alone
    assert len(opened) == 3
