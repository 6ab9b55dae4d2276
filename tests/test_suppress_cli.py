"""`campaigner suppress ...` and `campaigner receive`'s refusals, as real processes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from campaigner.receipts.harness import ReceiverProcess
from campaigner.receipts.store import ReceiptStore
from tests.samples import one_line_error

BUSINESS = "8613900000000"


def campaigner(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaigner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.slow
def test_add_list_remove_export_import(tmp_path: Path) -> None:
    ran = campaigner("suppress", "add", "+86 138-0000-0001", "8613800000002", "--sender",
                     f"+{BUSINESS}", "--reason", "asked by phone", cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "Suppressed 2 number(s) for +8613900000000" in ran.stdout
    assert campaigner("suppress", "add", "8613800000003", cwd=tmp_path).returncode == 0
    listed = campaigner("suppress", "list", cwd=tmp_path)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["8613800000003", "*"],
        ["8613800000001", BUSINESS],
        ["8613800000002", BUSINESS],
    ]
    assert "asked by phone" in lines[1]
    assert "3 suppressed" in listed.stderr
    # In the default workspace, as `send` uses it.
    with ReceiptStore.open(tmp_path / "reports") as store:
        assert set(store.suppressed(BUSINESS)) == {
            "8613800000001", "8613800000002", "8613800000003",
        }  # fmt: skip
        assert set(store.suppressed("8613900000099")) == {"8613800000003"}

    assert campaigner("suppress", "remove", "8613800000001", cwd=tmp_path).returncode == 0
    exported = campaigner("suppress", "export", cwd=tmp_path)
    assert exported.returncode == 0
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["recipient"], r["business"], r["source"]) for r in rows] == [
        ("8613800000003", "*", "manual"),
        ("8613800000002", BUSINESS, "manual"),
    ]
    assert rows[1]["since"].endswith("Z")

    # What export writes, import reads back into another workspace.
    (tmp_path / "list.csv").write_text(exported.stdout)
    ran = campaigner("suppress", "import", "list.csv", "--out", "other", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Suppressed 2 number(s) from list.csv; 0 line(s) skipped" in ran.stdout
    again = campaigner("suppress", "export", "--out", "other", cwd=tmp_path)
    assert again.stdout == exported.stdout.replace(",manual", ",import")


def test_import_a_plain_list_with_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "numbers.csv").write_text(
        "Name;Phone\nAna;+62 812 3456 7890\nBob;not a number\n;\nCi;=HYPERLINK(1)\n"
        "Du;0062811111111\n"
    )
    ran = campaigner("suppress", "import", "numbers.csv", "--sender", BUSINESS, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert "Suppressed 2 number(s)" in ran.stdout and "2 line(s) skipped" in ran.stdout
    assert "line 3 skipped: not a phone number" in ran.stderr
    with ReceiptStore.open(tmp_path / "reports") as store:
        assert set(store.suppressed(BUSINESS)) == {"6281234567890", "0062811111111"}


def test_reasons_are_formula_defused_on_export(tmp_path: Path) -> None:
    ran = campaigner("suppress", "add", "8613800000001", "--reason", "=cmd|' /C calc'!A0",
                     cwd=tmp_path)  # fmt: skip
    assert ran.returncode == 0
    exported = campaigner("suppress", "export", cwd=tmp_path).stdout
    assert "'=cmd" in exported


@pytest.mark.slow
def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    for args, words in (
        (("suppress", "add", "12"), "not a phone number"),
        (("suppress", "add", "8613800000001", "--sender", "x"), "--sender"),
    ):
        ran = campaigner(*args, cwd=tmp_path)
        assert ran.returncode == 1
        assert words in one_line_error(ran)
    (tmp_path / "latin.csv").write_bytes("Número\n8613800000001\nJosé\n".encode("latin-1"))
    ran = campaigner("suppress", "import", "latin.csv", cwd=tmp_path)
    assert ran.returncode == 1
    assert "not UTF-8" in one_line_error(ran)
    (tmp_path / "binary.csv").write_bytes(b"PK\x03\x04\x00\x00garbage")
    ran = campaigner("suppress", "import", "binary.csv", cwd=tmp_path)
    assert ran.returncode == 1
    assert "not" in one_line_error(ran)


@pytest.mark.slow
def test_receive_needs_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CAMPAIGNER_CALLBACK_TOKEN"}
    for token in (None, "short"):
        run_env = dict(env) if token is None else {**env, "CAMPAIGNER_CALLBACK_TOKEN": token}
        ran = subprocess.run(
            [sys.executable, "-m", "campaigner", "receive", "--port", "0"],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=run_env,
        )  # fmt: skip
        assert ran.returncode == 1
        assert "CAMPAIGNER_CALLBACK_TOKEN" in one_line_error(ran)
        assert not (tmp_path / "reports").exists() or token is not None


@pytest.mark.slow
def test_receive_announces_itself_and_stops_on_sigterm(tmp_path: Path) -> None:
    token = "cli-test-token-0123456789"
    receiver = ReceiverProcess(tmp_path / "ws", token).start()
    try:
        answer = httpx.post(receiver.url("inbound"), json=[{"MessageId": "i"}], timeout=30)
        assert answer.status_code == 200
    finally:
        code = receiver.stop()
    assert code == 0
    assert (tmp_path / "ws" / "receipts.sqlite").exists()
    # A second one on a port in use: a clear error, not a traceback.
    with ReceiverProcess(tmp_path / "ws", token) as first:
        ran = subprocess.run(
            [sys.executable, "-m", "campaigner", "receive", "--port", str(first.port),
             "--out", str(tmp_path / "ws")],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "CAMPAIGNER_CALLBACK_TOKEN": token},
        )  # fmt: skip
        assert ran.returncode == 1
        assert "cannot listen on 127.0.0.1" in one_line_error(ran)


@pytest.mark.slow
def test_receive_warns_off_loopback(tmp_path: Path) -> None:
    token = "cli-test-token-0123456789"
    with ReceiverProcess(tmp_path, token, extra_args=["--host", "0.0.0.0"]) as receiver:
        assert httpx.post(receiver.url(), json=[], timeout=30).status_code == 200
    assert "warning: plain HTTP on 0.0.0.0: put TLS in front" in receiver.errors()
