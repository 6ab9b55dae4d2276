"""The fault matrix (docs/row-states.md#fault-matrix) against the simulator on loopback HTTP.

Each run injects faults, sends, reconciles and resumes; then the report is checked against
the server's log of accepted sends: 0 lost, 0 sent twice, every row's final status right.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from campaigner.sim.crashcheck import check, read_report, run_dir, write_campaign
from campaigner.sim.harness import Sandbox, free_port, run, send_args

pytestmark = [pytest.mark.slow, pytest.mark.stress]
ROWS = 800
BUSINESS_ERROR_TO = "8613900000020"


def send_reconcile_resume(campaign: Path, out: Path, sandbox: Sandbox) -> Path:
    code, _, err = run(*send_args(campaign, out, sandbox.url, None), timeout=240)
    assert code == 3, err
    folder = run_dir(out)
    assert folder is not None
    # Faults keep firing on the resumed rows too: settle and resume until nothing is open.
    for _ in range(6):
        code, _, err = run("reconcile", str(folder), "--endpoint", sandbox.url, "--grace-s", "0")
        assert code in (0, 3), err
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder), timeout=240)
        assert code == 3, err
        statuses = {r["status"] for r in read_report(folder / "report.csv")}
        if not statuses & {"unknown", "not_attempted"}:
            break
    return folder


def test_every_fault_class_ends_in_the_right_status(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", ROWS)
    out = tmp_path / "out"
    faults = [
        "--fault",
        "unavailable_503=0.02",
        "--fault",
        "reset_before=0.02",
        "--fault",
        "reset_after=0.01",
        "--fault",
        "timeout_after=0.01",
        "--fault",
        "error_500_after=0.01",
        "--fault",
        "malformed_200=0.01",
        "--fault",
        "throttle=0.02",
        "--fail-recipient",
        f"{BUSINESS_ERROR_TO}=InvalidParameter.PhoneNumberError",
        "--hang-s",
        "7",
        "--window",
        "1:2:throttle:0.5",
    ]
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=20, extra=faults) as sandbox:
        folder = send_reconcile_resume(campaign, out, sandbox)
        accepted = sandbox.accepted()
        verdict = check(folder / "report.csv", ROWS, accepted)
    assert verdict.ok, verdict
    rows = read_report(folder / "report.csv")
    by_to = {r["To"]: r for r in rows if r["status"] != "duplicate"}
    assert by_to[BUSINESS_ERROR_TO]["status"] == "failed"
    assert by_to[BUSINESS_ERROR_TO]["Code"] == "InvalidParameter.PhoneNumberError"
    assert verdict.statuses.get("unknown", 0) == 0
    assert verdict.statuses.get("not_attempted", 0) == 0
    # Faults after acceptance were recovered by reconcile, not resent.
    assert sum(1 for a in accepted if a["fault"]) > 0
    assert verdict.statuses["sent"] == len(accepted)


def test_a_30_second_outage_pauses_and_resumes(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 400)
    out = tmp_path / "out"
    with Sandbox(
        tmp_path / "accepted.jsonl", latency_ms=20, extra=["--window", "1:30:refuse"]
    ) as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, None), timeout=240)
        assert code == 3, err
        folder = run_dir(out)
        assert folder is not None
        verdict = check(folder / "report.csv", 400, sandbox.accepted())
    assert verdict.ok, verdict
    assert verdict.statuses.get("not_attempted", 0) == 0, verdict


def test_a_long_outage_gives_up_with_one_line_and_stays_resumable(tmp_path: Path) -> None:
    campaign = write_campaign(tmp_path / "c", 300)
    text = campaign.read_text()
    campaign.write_text(text.replace("timeout_s = 5\n", "timeout_s = 5\noutage_limit_s = 12\n"))
    out = tmp_path / "out"
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    code, _, err = run(*send_args(campaign, out, closed, None), timeout=240)
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert "connection refused; gave up after 12 s ([send] outage_limit_s)" in errors[0]
    assert "--resume" in errors[0]
    # Meanwhile the progress log said what was happening (instead of a silent "0 msg/s").
    assert "connection refused; retrying for " in err and " s so far" in err
    folder = run_dir(out)
    assert folder is not None
    statuses = {r["status"] for r in read_report(folder / "report.csv")}
    assert statuses <= {"not_attempted", "invalid", "duplicate"}, statuses
    with Sandbox(tmp_path / "accepted.jsonl", latency_ms=20) as sandbox:
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder), timeout=240)
        assert code == 3, err  # 3: the list has invalid and duplicate rows on purpose
        accepted = sandbox.accepted()
        verdict = check(folder / "report.csv", 300, accepted)
    assert verdict.ok, verdict
    assert verdict.statuses.get("not_attempted", 0) == 0, verdict
    assert verdict.statuses["sent"] == len(accepted) > 0
