"""The CLI in this process with click's CliRunner: messages, exit codes, usage errors.

The end-to-end runs in real processes (signals, pipes, secrets) stay in test_cli.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from campaigner.cli import cli
from campaigner.display import ProgressDisplay
from campaigner.options import SendProgress
from tests.samples import ROOT, SAMPLES, one_line_error, sample_campaign

TEMPLATE = str(SAMPLES / "whatsapp_template.toml")

Invoke = Callable[..., Result]


@pytest.fixture
def invoke(monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run one command; the process-wide things the CLI sets (umask, signal handlers, log
    handlers) are put back afterwards. No ALIBABA_CLOUD_* credentials unless given."""
    for name in list(os.environ):
        if name.startswith("ALIBABA_CLOUD_"):
            monkeypatch.delenv(name)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    umask = os.umask(0o022)
    os.umask(umask)
    root = logging.getLogger()
    log_handlers, log_level = list(root.handlers), root.level

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)

    try:
        yield run
    finally:
        os.umask(umask)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        root.handlers[:] = log_handlers
        root.setLevel(log_level)


def test_usage_errors_exit_2(invoke: Invoke) -> None:
    assert invoke("preview").exit_code == 2
    result = invoke("send", "x.toml", "--qps", "251")
    assert result.exit_code == 2 and "251 is not in the range 1<=x<=250" in result.stderr
    result = invoke("send", TEMPLATE, "--resend-unknown")
    assert result.exit_code == 2 and "--resend-unknown works only with --resume" in result.stderr


def test_missing_campaign_file_is_a_clear_error(invoke: Invoke, tmp_path: Path) -> None:
    result = invoke("preview", str(tmp_path / "nope.toml"))
    assert result.exit_code == 1
    assert one_line_error(result).startswith("error: campaign file not found")


def test_unknown_key_names_the_closest_one(invoke: Invoke, tmp_path: Path) -> None:
    campaign = sample_campaign(tmp_path, TemplateCode="TemplatCode")
    result = invoke("preview", str(campaign), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "unknown key 'TemplatCode' in [message]; did you mean 'TemplateCode'?" in result.stderr
    assert not (tmp_path / "out").exists()


def test_misspelt_column_is_a_file_level_error(invoke: Invoke, tmp_path: Path) -> None:
    campaign = sample_campaign(tmp_path, **{"{{ coupon }}": "{{ cupon }}"})
    result = invoke("preview", str(campaign), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "'cupon' (did you mean 'coupon'?)" in result.stderr


def test_send_without_credentials_stops_before_reading(invoke: Invoke, tmp_path: Path) -> None:
    campaign = sample_campaign(tmp_path)
    campaign.write_text(campaign.read_text().replace(f"{SAMPLES}/recipients.csv", "missing.csv"))
    result = invoke("send", str(campaign), "--yes", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in result.stderr  # not "missing.csv not found"


def test_plain_http_is_refused_except_on_loopback(invoke: Invoke, tmp_path: Path) -> None:
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}
    result = invoke(
        "send", TEMPLATE, "--endpoint", "http://example.com", "--yes", "--out", str(tmp_path),
        env=env,
    )  # fmt: skip
    assert result.exit_code == 2  # a bad --endpoint is a usage error
    assert "refusing plain http" in result.stderr


def test_without_a_terminal_invalid_rows_stop_the_send_unless_yes(
    invoke: Invoke, tmp_path: Path
) -> None:
    result = invoke("send", TEMPLATE, "--sandbox", "--out", str(tmp_path))
    assert result.exit_code == 1
    assert "pass --yes" in one_line_error(result)


def test_every_command_is_documented_in_the_readme(invoke: Invoke) -> None:
    readme = (ROOT / "README.md").read_text()
    for command in ("preview", "send", "report", "reconcile", "sandbox"):
        assert f"campaigner {command}" in readme
        assert invoke(command, "--help").exit_code == 0


def test_a_campaign_file_over_1_mib_is_refused(invoke: Invoke, tmp_path: Path) -> None:
    big = sample_campaign(tmp_path)
    with big.open("a") as f:
        f.write("#" * (1 << 20) + "\n")  # a valid TOML comment, just too big
    result = invoke("preview", str(big), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
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
def test_simulator_argument_errors_are_usage_errors(
    invoke: Invoke, args: list[str], message: str
) -> None:
    result = invoke("sandbox", "--port", "0", *args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_with_json_every_error_is_one_json_object_on_stdout(invoke: Invoke, tmp_path: Path) -> None:
    missing = invoke("preview", str(tmp_path / "nope.toml"), "--json")
    assert missing.exit_code == 1
    assert json.loads(missing.stdout) == {
        "error": f"campaign file not found: {tmp_path / 'nope.toml'}",
        "exit_code": 1,
    }
    no_key = invoke("send", TEMPLATE, "--json", "--yes")
    assert no_key.exit_code == 1
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in json.loads(no_key.stdout)["error"]


def test_control_sequences_in_column_names_do_not_reach_the_terminal(
    invoke: Invoke, tmp_path: Path
) -> None:
    hostile = tmp_path / "list.csv"
    # A header cell that clears the screen, and a cell with a bidi override.
    hostile.write_text("ph\x1b[2Jone,first_name,coupon\n8613800138000,ann\u202e,X1\n")
    result = invoke("preview", str(sample_campaign(tmp_path)), "--input", str(hostile))
    assert result.exit_code == 1
    assert "(did you mean 'ph\\x1b[2Jone'?)" in one_line_error(result)
    # Cells reach the terminal in the rendered examples of a preview.
    hostile.write_text("phone,first_name,coupon\n8613800138000,ann\u202egpj.exe,X1\x9b2J\n")
    result = invoke(
        "preview", str(sample_campaign(tmp_path)), "--input", str(hostile),
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    output = result.stdout + result.stderr
    assert "\x9b" not in output and "\u202e" not in output
    assert r"\"name\":\"Ann\u202egpj.exe\",\"code\":\"X1\x9b2J\"" in result.stdout


def test_a_campaign_name_too_long_for_a_file_name_still_runs(
    invoke: Invoke, tmp_path: Path
) -> None:
    """300 characters (600 bytes in UTF-8) cannot be a file name: the folder gets a
    readable prefix and a hash of the whole name, so similar long names stay apart."""
    long_a = "é" * 150 + "日本" * 75
    long_b = long_a[:-1] + "x"  # differs in the last character only
    out = tmp_path / "out"
    for name in (long_a, long_b):
        campaign = sample_campaign(tmp_path, **{'name = "spring-sale"': f'name = "{name}"'})
        result = invoke("send", str(campaign), "--sandbox", "--yes", "--json", "--out", str(out))
        assert result.exit_code == 3, result.stderr  # sent; the sample has invalid rows
        summary = json.loads(result.stdout)
        assert summary["name"] == name and summary["by_status"]["sent"] > 900
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2
    for folder in folders:
        assert len(folder.encode()) <= 200 and folder.startswith("é" * 60)


def test_out_under_a_file_is_one_line_and_nothing_is_sent(invoke: Invoke, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for command in (["preview"], ["send", "--sandbox", "--yes"]):
        result = invoke(*command, TEMPLATE, "--out", str(blocker / "reports"))
        assert result.exit_code == 1, result.stderr
        assert one_line_error(result) == (
            f"error: a part of the path is a file, not a folder: {blocker / 'reports'}; "
            "nothing was sent; use a folder for --out, then try again"
        )
        assert "Sent campaign" not in result.stdout


def test_report_and_reconcile_of_a_sandbox_run(invoke: Invoke, tmp_path: Path) -> None:
    sent = invoke("send", TEMPLATE, "--sandbox", "--yes", "--json", "--out", str(tmp_path))
    assert sent.exit_code == 3, sent.stderr
    run_dir = json.loads(sent.stdout)["run_dir"]
    (Path(run_dir) / "report.csv").unlink()
    report = invoke("report", run_dir)
    assert report.exit_code == 3, report.stderr
    assert report.stdout.startswith(f"Report of {run_dir}\n")
    assert f"Report: {run_dir}/report.csv" in report.stdout
    assert (Path(run_dir) / "report.csv").exists()
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "id", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "s"}
    settled = invoke("reconcile", run_dir, env=env)  # no unknown rows: nothing to look up
    assert settled.exit_code == 0, settled.stderr
    assert (
        f"Reconciled {run_dir}: 0 found sent, 0 confirmed not sent (a --resume sends them), "
        "0 still unknown, 0 lookups failed"
    ) in settled.stdout


def test_the_live_bar_prints_error_text_as_text(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage's OS error text may hold "[...]" (rich markup) and control characters."""
    monkeypatch.setenv("COLUMNS", "300")  # the whole line, not cut to 80 columns
    outage = "cannot connect to host: [/x] \x1b[2J refused; retrying for 0 s so far"
    progress = ProgressDisplay(live=True)
    try:
        progress(SendProgress(10, 0, 0, 0, 0, outage))
        time.sleep(0.01)
    finally:
        progress.close()
    err = capsys.readouterr().err
    assert "cannot connect to host: [/x] \\x1b[2J refused" in err
