"""The CLI as a user runs it: real sample files, real processes, real reports."""

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

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"
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


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line a failed command prints, with no traceback."""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    return line


def sample_campaign(folder: Path, **replace: str) -> Path:
    """The sample template campaign with its list by absolute path, and edits."""
    text = (SAMPLES / "whatsapp_template.toml").read_text()
    text = text.replace('input = "recipients.csv"', f'input = "{SAMPLES}/recipients.csv"')
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = folder / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


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
    ]  # fmt: skip
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


def test_missing_campaign_file_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("preview", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: campaign file not found")
    assert "Traceback" not in result.stderr


def test_unknown_key_names_the_closest_one(tmp_path: Path) -> None:
    campaign = tmp_path / "c.toml"
    text = (SAMPLES / "whatsapp_template.toml").read_text().replace("TemplateCode", "TemplatCode")
    campaign.write_text(
        text.replace('input = "recipients.csv"', f'input = "{SAMPLES}/recipients.csv"')
    )
    result = cli("preview", str(campaign), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "unknown key 'TemplatCode' in [message]; did you mean 'TemplateCode'?" in result.stderr
    assert not (tmp_path / "out").exists()


def test_misspelt_column_is_a_file_level_error(tmp_path: Path) -> None:
    campaign = tmp_path / "c.toml"
    text = (SAMPLES / "whatsapp_template.toml").read_text().replace("{{ coupon }}", "{{ cupon }}")
    campaign.write_text(
        text.replace('input = "recipients.csv"', f'input = "{SAMPLES}/recipients.csv"')
    )
    result = cli("preview", str(campaign), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "'cupon' (did you mean 'coupon'?)" in result.stderr


def test_send_without_credentials_stops_before_reading(tmp_path: Path) -> None:
    campaign = tmp_path / "c.toml"
    text = (SAMPLES / "whatsapp_template.toml").read_text()
    campaign.write_text(text.replace('input = "recipients.csv"', 'input = "missing.csv"'))
    result = cli("send", str(campaign), "--yes", "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in result.stderr  # not "missing.csv not found"


def test_plain_http_is_refused_except_on_loopback(tmp_path: Path) -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}
    result = cli(
        "send", str(SAMPLES / "whatsapp_template.toml"), "--endpoint", "http://example.com",
        "--yes", "--out", str(tmp_path), env=env,
    )  # fmt: skip
    assert result.returncode == 2  # a bad --endpoint is a usage error
    assert "refusing plain http" in result.stderr


def test_without_a_terminal_invalid_rows_stop_the_send_unless_yes(tmp_path: Path) -> None:
    result = cli(
        "send", str(SAMPLES / "whatsapp_template.toml"), "--sandbox", "--out", str(tmp_path)
    )
    assert result.returncode == 1
    assert "pass --yes" in result.stderr


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


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for command in ("preview", "send", "report", "reconcile", "sandbox"):
        assert f"campaigner {command}" in readme
        assert cli(command, "--help").returncode == 0


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


def test_a_campaign_file_over_1_mib_is_refused(tmp_path: Path) -> None:
    big = sample_campaign(tmp_path)
    with big.open("a") as f:
        f.write("#" * (1 << 20) + "\n")  # a valid TOML comment, just too big
    result = cli("preview", str(big), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "the limit is 1,048,576 (1 MiB)" in one_line_error(result)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "unavailable_503=abc"], "'unavailable_503=abc': RATE must be a number"),
        (["--fault", "unavailable_503"], "'unavailable_503' is not NAME=RATE"),
        (["--fault", "bogus=0.1"], "unknown fault names: ['bogus']"),
        (["--window", "10"], "'10' is not START:SECONDS:FAULT[:RATE]"),
        (["--window", "a:10:refuse"], "START and SECONDS must be a number"),
        (["--qps-limit", "0"], "0 is not in the range x>=1"),
        (["--log", "/no/such/folder/accepted.jsonl"], "cannot write /no/such/folder/accepted"),
    ],
)
def test_simulator_argument_errors_are_usage_errors(args: list[str], message: str) -> None:
    result = cli("sandbox", "--port", "0", *args, timeout=60)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


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
    no_key = cli("send", str(SAMPLES / "whatsapp_template.toml"), "--json", "--yes")
    assert no_key.returncode == 1
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in json.loads(no_key.stdout)["error"]


def test_control_sequences_in_column_names_do_not_reach_the_terminal(tmp_path: Path) -> None:
    hostile = tmp_path / "list.csv"
    # A header cell that clears the screen, and a cell with a bidi override.
    hostile.write_text("ph\x1b[2Jone,first_name,coupon\n8613800138000,ann\u202e,X1\n")
    result = cli("preview", str(sample_campaign(tmp_path)), "--input", str(hostile))
    assert result.returncode == 1
    assert "(did you mean 'ph\\x1b[2Jone'?)" in one_line_error(result)
    # Cells reach the terminal in the rendered examples of a preview.
    hostile.write_text("phone,first_name,coupon\n8613800138000,ann\u202egpj.exe,X1\x9b2J\n")
    result = cli(
        "preview", str(sample_campaign(tmp_path)), "--input", str(hostile),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\x9b" not in output and "\u202e" not in output
    assert r"\"name\":\"Ann\u202egpj.exe\",\"code\":\"X1\x9b2J\"" in result.stdout


# -- hardening: the run folder, signals after the send, errors as JSON -----------------------


def test_a_campaign_name_too_long_for_a_file_name_still_runs(tmp_path: Path) -> None:
    """300 characters (600 bytes in UTF-8) cannot be a file name: the folder gets a
    readable prefix and a hash of the whole name, so similar long names stay apart."""
    long_a = "é" * 150 + "日本" * 75
    long_b = long_a[:-1] + "x"  # differs in the last character only
    out = tmp_path / "out"
    for name in (long_a, long_b):
        campaign = sample_campaign(tmp_path, **{'name = "spring-sale"': f'name = "{name}"'})
        result = cli("send", str(campaign), "--sandbox", "--yes", "--json", "--out", str(out))
        assert result.returncode == 3, result.stderr  # sent; the sample has invalid rows
        summary = json.loads(result.stdout)
        assert summary["name"] == name and summary["by_status"]["sent"] > 900
    folders = sorted(p.name for p in out.iterdir())
    assert len(folders) == 2
    for folder in folders:
        assert len(folder.encode()) <= 200 and folder.startswith("é" * 60)


def test_earlier_runs_of_a_long_named_campaign_are_found(tmp_path: Path) -> None:
    from campaigner.journal import Journal
    from campaigner.runs import new_run_dir
    from campaigner.sending import find_earlier_runs

    name = "é" * 150 + "日本" * 75
    meta = {"name": name, "campaign_sha256": "c", "input_sha256": "i", "created_at": "1"}
    run = new_run_dir(tmp_path, name)
    journal = Journal.in_run(run)
    journal.set_meta(meta)
    journal.close()
    assert [r.run_dir for r in find_earlier_runs(tmp_path, meta)] == [run]


def test_out_under_a_file_is_one_line_and_nothing_is_sent(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    campaign = str(SAMPLES / "whatsapp_template.toml")
    for command in (["preview"], ["send", "--sandbox", "--yes"]):
        result = cli(*command, campaign, "--out", str(blocker / "reports"))
        assert result.returncode == 1, result.stderr
        assert one_line_error(result) == (
            f"error: a part of the path is a file, not a folder: {blocker / 'reports'}; "
            "nothing was sent; use a folder for --out, then try again"
        )
        assert "Sent campaign" not in result.stdout


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


def test_the_live_bar_prints_error_text_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage's OS error text may hold "[...]" (rich markup) and control characters."""
    import time

    monkeypatch.setenv("COLUMNS", "300")  # the whole line, not cut to 80 columns

    from campaigner.cli import _Progress
    from campaigner.pool import PoolStats

    stats = PoolStats(
        unreachable_since=time.monotonic(),
        unreachable_error="cannot connect to host: [/x] \x1b[2J refused",
        outage_limit_s=300,
    )
    progress = _Progress(live=True)
    try:
        progress(stats, 10)
    finally:
        progress.close()
    err = capsys.readouterr().err
    assert "cannot connect to host: [/x] \\x1b[2J refused" in err
