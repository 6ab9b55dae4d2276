"""``send --at``: validated now, a run folder in state scheduled, the wait, then the send;
``campaigner cancel`` from another process and Ctrl-C/SIGTERM end the wait promptly, with
nothing sent and a report of every row not_attempted."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest

from campaigner import api
from campaigner.errors import ConfigError
from campaigner.runstate import RunState
from campaigner.schedule import parse_at
from campaigner.sim.harness import Sandbox, campaigner, run
from tests.operator_kit import PHONES, report_rows, run_dirs, sent_to, wait_for, write_campaign
from tests.samples import one_line_error


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(latency_ms=5) as sandbox:
        yield sandbox


def test_parse_at_reads_iso_8601_with_or_without_an_offset() -> None:
    at = parse_at("2999-12-01T09:00+08:00")
    assert at == datetime(2999, 12, 1, 1, 0, tzinfo=UTC)
    assert at.utcoffset() == timedelta(hours=8)
    local = parse_at("2999-12-01 09:00")  # no offset: this machine's local time
    assert local.tzinfo is not None
    assert local.replace(tzinfo=None) == datetime(2999, 12, 1, 9, 0)
    assert local.utcoffset() == datetime(2999, 12, 1, 9, 0).astimezone().utcoffset()


@pytest.mark.parametrize(
    ("text", "says"),
    [("2001-01-01T00:00Z", "in the past"), ("tomorrow 9am", "not an ISO 8601"), ("", "ISO")],
)
def test_parse_at_refuses_the_past_and_non_times(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_at(text)


def _args(campaign: Path, out: Path, sandbox: Sandbox, at: datetime) -> list[str]:
    return [
        "send",
        str(campaign),
        "--endpoint",
        sandbox.url,
        "--out",
        str(out),
        "--yes",
        "--at",
        at.isoformat(),
    ]


def _notice(proc: subprocess.Popen[bytes]) -> str:
    """The scheduled process's stderr up to its "scheduled: ..." notice."""
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            lines.append(raw.decode())
            if lines[-1].startswith("scheduled: "):
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert lines and lines[-1].startswith("scheduled: "), lines
    return "".join(lines)


def _scheduled_run(out: Path) -> Path:
    """The one run under ``out`` once it shows as scheduled."""
    found: list[api.RunInfo] = []

    def scheduled() -> bool:
        found[:] = api.list_runs(out)
        return bool(found) and found[0].state is RunState.SCHEDULED

    wait_for(scheduled, what="the run to be scheduled")
    return found[0].run_dir


@pytest.mark.slow
def test_a_scheduled_send_waits_then_sends(tmp_path: Path, sandbox: Sandbox) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    before = len(sandbox.accepted())
    at = datetime.now(timezone(timedelta(hours=8))) + timedelta(seconds=4)
    proc = campaigner(*_args(campaign, out, sandbox, at))
    run_dir = _scheduled_run(out)
    [info] = api.list_runs(out)
    assert info.scheduled_for == at
    if datetime.now(UTC) < at - timedelta(seconds=1):  # still well before the time
        assert sent_to(sandbox, before) == []
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err.decode()  # sent; the invalid row was not
    assert datetime.now(UTC) >= at
    assert sorted(sent_to(sandbox, before)) == PHONES
    assert f"scheduled: {run_dir} sends at" in err.decode()
    [info] = api.list_runs(out)
    assert info.state is RunState.DONE


@pytest.mark.slow
def test_cancel_from_another_process_ends_the_wait_and_sends_nothing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    before = len(sandbox.accepted())
    proc = campaigner(*_args(campaign, out, sandbox, datetime.now(UTC) + timedelta(minutes=10)))
    run_dir = _scheduled_run(out)

    code, stdout, err = run("cancel", str(run_dir), timeout=60)
    assert code == 0, err
    assert "nothing was sent" in stdout
    _, waited = proc.communicate(timeout=60)  # it notices within a second; the margin is load
    assert proc.returncode == 1
    assert "cancelled (campaigner cancel): nothing was sent" in waited.decode()
    assert sent_to(sandbox, before) == []
    [info] = api.list_runs(out)
    assert info.state is RunState.CANCELLED
    rows = report_rows(run_dir)
    assert {r: rows[r]["status"] for r in rows} == {
        **dict.fromkeys(range(2, 7), "not_attempted"),
        7: "invalid",
    }
    assert all("cancelled" in rows[r]["error"] for r in range(2, 7))

    # Cancelled once: a second cancel says so again; a finished run cannot be cancelled.
    assert run("cancel", str(run_dir), timeout=60)[0] == 0


@pytest.mark.slow
@pytest.mark.stress
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_waiting_cancels_the_run(
    tmp_path: Path, sandbox: Sandbox, signum: signal.Signals, code: int
) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    before = len(sandbox.accepted())
    proc = campaigner(*_args(campaign, out, sandbox, datetime.now(UTC) + timedelta(minutes=10)))
    run_dir = _scheduled_run(out)
    said = _notice(proc)  # the process is waiting now (the run showed as scheduled before)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert f"cancelled by {signum.name}: nothing was sent" in said + err.decode()
    assert sent_to(sandbox, before) == []
    [info] = api.list_runs(out)
    assert info.state is RunState.CANCELLED
    assert report_rows(run_dir)[2]["status"] == "not_attempted"


def test_a_run_that_is_not_scheduled_cannot_be_cancelled(tmp_path: Path, sandbox: Sandbox) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    args = ["send", str(campaign), "--endpoint", sandbox.url, "--out", str(out), "--yes"]
    assert run(*args, timeout=120)[0] == 3
    [run_dir] = run_dirs(out)
    code, _, err = run("cancel", str(run_dir), timeout=60)
    assert code == 1
    assert "is done, not scheduled" in one_line_error(SimpleNamespace(stderr=err))


def test_a_time_in_the_past_is_a_usage_error(tmp_path: Path, sandbox: Sandbox) -> None:
    campaign = write_campaign(tmp_path)
    code, _, err = run(
        *_args(campaign, tmp_path / "out", sandbox, datetime(2001, 1, 1, tzinfo=UTC)),
        timeout=60,
    )
    assert code == 2
    assert "is in the past" in err
    assert not (tmp_path / "out").exists()  # nothing was created


@pytest.mark.slow
@pytest.mark.stress
def test_cancel_writes_the_report_itself_when_no_process_waits(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    campaign = write_campaign(tmp_path)
    out = tmp_path / "out"
    proc = campaigner(*_args(campaign, out, sandbox, datetime.now(UTC) + timedelta(minutes=10)))
    run_dir = _scheduled_run(out)
    proc.kill()  # SIGKILL: the waiting process is gone
    proc.communicate(timeout=60)
    [info] = api.list_runs(out)
    assert info.state is RunState.INTERRUPTED
    assert not (run_dir / "report.csv").exists()

    assert api.cancel_run(run_dir).state is RunState.CANCELLED
    rows = report_rows(run_dir)
    assert rows[2]["status"] == "not_attempted" and "cancelled" in rows[2]["error"]
