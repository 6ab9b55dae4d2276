"""The CLI as a user runs it: real sample files, real processes, real reports.

End to end only (signals, pipes, secrets, usage errors with --json); everything else about
the CLI runs in-process in test_cli_fast.py."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from tests.samples import ROOT, SAMPLES, one_line_error, sample_campaign

CANARY_ID, CANARY_SECRET, CANARY_TOKEN = (
    "LTAI_CANARY_ID_7f3a",
    "CANARY_SECRET_9b1c",
    "CANARY_TOKEN_5d2e",
)


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
    return subprocess.run(
        [sys.executable, "-m", "campaigner", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=base | (env or {}),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def only_run(out: Path) -> Path:
    [run] = [p for p in out.iterdir() if p.is_dir()]
    return run


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def input_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_preview_of_the_sample_campaign(tmp_path: Path) -> None:
    result = cli("preview", str(SAMPLES / "whatsapp_template.toml"), "--out", str(tmp_path))
    assert result.returncode == 3, result.stderr  # the sample has invalid rows on purpose
    assert "rows read" in result.stdout and "would send" in result.stdout
    assert "estimated send time at 250/s" in result.stdout
    assert "scientific notation" in result.stdout
    run = only_run(tmp_path)
    report = read_csv(run / "report.csv")
    source = input_rows(SAMPLES / "recipients.csv")
    assert len(report) == len(source)
    # Every input column unchanged, in order, then the result columns.
    assert list(report[0])[: len(source[0])] == list(source[0])
    assert list(report[0])[len(source[0]) :] == [
        "row", "status", "To", "MessageId", "Code", "Message", "RequestId", "attempts", "error",
        # after what happened to the request, what happened to the message (empty here)
        "delivery", "delivery_error", "delivered_at", "read_at", "reply", "retried_in",
    ]  # fmt: skip
    assert {r["delivery"] + r["reply"] for r in report} == {""}
    for got, want in zip(report, source, strict=True):
        for key, value in want.items():
            assert got[key].removeprefix("'") == value
    assert [r["row"] for r in report] == [str(i) for i in range(2, len(source) + 2)]
    statuses = {r["status"] for r in report}
    assert statuses == {"would_send", "invalid", "duplicate"}
    dup = next(r for r in report if r["status"] == "duplicate")
    assert dup["error"].startswith("same recipient as row ")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["rows"] == len(source)


def test_xlsx_input_gets_an_xlsx_report(tmp_path: Path) -> None:
    result = cli("preview", str(SAMPLES / "whatsapp_text.toml"), "--out", str(tmp_path))
    assert result.returncode == 3, result.stderr
    run = only_run(tmp_path)
    book = openpyxl.load_workbook(run / "report.xlsx", read_only=True)
    sheet = book.worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert len(rows) == 1001
    header = rows[0]
    to = header.index("To")
    assert all(isinstance(r[to], str) for r in rows[1:] if r[to])  # phones stay text


def test_send_to_the_sandbox_sends_every_valid_row(tmp_path: Path) -> None:
    result = cli(
        "send", str(SAMPLES / "whatsapp_template.toml"), "--sandbox", "--yes", "--json",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    summary = json.loads(result.stdout)
    run = Path(summary["run_dir"])
    report = read_csv(run / "report.csv")
    sent = [r for r in report if r["status"] == "sent"]
    assert len(sent) == summary["by_status"]["sent"] > 900
    assert all(r["MessageId"] and r["Code"] == "OK" and r["attempts"] >= "1" for r in sent)
    assert len({r["MessageId"] for r in sent}) == len(sent)
    assert not [r for r in report if r["status"] in ("would_send", "unknown", "not_attempted")]


def test_usage_error_exits_2() -> None:
    assert cli("preview").returncode == 2
    assert cli("send", "x.toml", "--qps", "251").returncode == 2


def test_secrets_never_leave_the_process(tmp_path: Path) -> None:
    """Canary credentials: a wrong secret makes CAMS refuse the account; nothing leaks."""
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": CANARY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": CANARY_SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": CANARY_TOKEN,
    }
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "campaigner", "sandbox", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = sandbox.stderr.readline() if sandbox.stderr else ""
        url = line.split(" on ")[1].split(" ")[0]
        result = cli(
            "send", str(SAMPLES / "whatsapp_template.toml"), "--endpoint", url, "--yes", "-v",
            "--out", str(tmp_path), env=env,
        )  # fmt: skip
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert result.returncode == 1
    assert "refused the account" in result.stderr
    haystacks = [result.stdout, result.stderr]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            haystacks.append(path.read_bytes().decode("utf-8", "replace"))
    for canary in (CANARY_SECRET, CANARY_TOKEN, CANARY_ID):
        assert not any(canary in h for h in haystacks), canary
    # Logs show masked numbers only.
    assert "8615783086271" not in result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_readme_quick_start_commands_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert "demo:" in makefile and "test:" in makefile


def test_masking_keeps_the_country_code_and_last_four_digits() -> None:
    from campaigner.rows import mask_recipient

    assert mask_recipient("8613812345678") == "86*******5678"
    assert mask_recipient("14155550123") == "1******0123"
    assert mask_recipient("85291234567") == "852****4567"
    assert mask_recipient("psid-123456789") == "**********6789"


def test_a_closed_stdout_is_not_an_internal_error(tmp_path: Path) -> None:
    """`campaigner preview ... | head` must not end in an 'unexpected internal error'."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "campaigner", "preview", str(SAMPLES / "whatsapp_template.toml"),
         "--out", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before anything is printed
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert "internal error" not in err
    assert (only_run(tmp_path) / "report.csv").exists()


# -- hardening: bad campaign files, usage errors, JSON, the terminal -------------------------


def test_a_fifo_or_a_device_as_campaign_file_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "campaign.toml"
    os.mkfifo(fifo)  # nobody ever writes to it: opening it for reading would block forever
    result = cli("preview", str(fifo), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 1
    assert one_line_error(result) == (
        f"error: campaign file {fifo} is a named pipe (FIFO), not a regular file"
    )
    result = cli("send", "/dev/zero", "--sandbox", "--yes", "--out", str(tmp_path), timeout=60)
    assert result.returncode == 1
    assert "/dev/zero is a character device" in one_line_error(result)
    assert not (tmp_path / "out").exists()


def test_simulator_on_a_port_in_use_is_a_one_line_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("sandbox", "--port", str(port), timeout=60)
    assert result.returncode == 1
    assert one_line_error(result) == (
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use; "
        "choose another --port (0 picks a free one)"
    )


def test_with_json_every_error_is_one_json_object_on_stdout(tmp_path: Path) -> None:
    usage = cli("send", "x.toml", "--qps", "999", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stdout) == {
        "error": "Invalid value for '--qps': 999 is not in the range 1<=x<=250.",
        "exit_code": 2,
    }
    missing = cli("preview", str(tmp_path / "nope.toml"), "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {
        "error": f"campaign file not found: {tmp_path / 'nope.toml'}",
        "exit_code": 1,
    }


# -- hardening: the run folder, signals after the send, errors as JSON -----------------------


@pytest.mark.parametrize(
    ("signals", "code", "message"),
    [
        ("SIGTERM", 143, "stopped by SIGTERM; report written to {run}/report.csv; "),
        ("SIGINT", 130, "stopped by SIGINT; report written to {run}/report.csv; "),
        (
            "SIGINT,SIGINT",
            130,
            "aborted by SIGINT; the report was not written, but 924 of 924 rows were sent; "
            "the journal in {run} has them; to finish: campaigner report {run}",
        ),
    ],
)
def test_a_signal_during_the_final_report(
    tmp_path: Path, signals: str, code: int, message: str
) -> None:
    """After anyio's signal receiver is gone the report is rebuilt: a first signal lets it
    finish (then exit 130/143), a second one aborts it, and either says what happened."""
    result = cli(
        "send", str(sample_campaign(tmp_path)), "--sandbox", "--yes", "--json",
        "--out", str(tmp_path / "out"),
        env={"CAMPAIGNER_CRASH_AT": f"report_write:1:{signals}"},  # real signals, to itself
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    run = only_run(tmp_path / "out")
    assert one_line_error(result).startswith("error: " + message.format(run=run))
    assert (run / "report.csv").exists() == (signals.count(",") == 0)
    answer = json.loads(result.stdout)
    assert (answer["exit_code"], answer["run_dir"]) == (code, str(run))


def test_with_json_an_account_error_still_prints_the_summary(tmp_path: Path) -> None:
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "campaigner", "sandbox", "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = sandbox.stderr.readline() if sandbox.stderr else ""
        url = line.split(" on ")[1].split(" ")[0]
        result = cli(
            "send", str(SAMPLES / "whatsapp_template.toml"), "--endpoint", url, "--yes",
            "--json", "--out", str(tmp_path),
            env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "bad"},
        )  # fmt: skip
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    assert result.returncode == 1
    answer = json.loads(result.stdout)  # one object, nothing else on stdout
    assert answer["exit_code"] == 1 and "refused the account" in answer["error"]
    assert answer["run_dir"] == str(only_run(tmp_path))
    assert answer["by_status"]["not_attempted"] > 900 and "sent" not in answer["by_status"]
    assert "refused the account" in one_line_error(result)
