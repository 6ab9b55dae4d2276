"""Shared harness for the crash tests and bench/crash.py: real processes, real kills.

A `campaigner sandbox` child process plays CAMS and logs every accepted send; `campaigner
send` child processes are killed and resumed; the checker compares the report with the
server's log, Jepsen-style (lost, duplicated, unexpected).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KEY_ID, SECRET = "testAccessKeyId", "testAccessKeySecret"
CREDENTIALS = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET}

CAMPAIGN = """
name = "crash"
input = "recipients.csv"
[send]
qps = 250
timeout_s = 5
[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "tpl-crash"
Language = "en"
[message.TemplateParams]
name = "{{ name }}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_campaign(folder: Path, rows: int, *, bad_every: int = 50, dup_every: int = 100) -> Path:
    """A campaign and a list with a few invalid rows and a few repeated recipients."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(CAMPAIGN)
    with (folder / "recipients.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name"])
        for i in range(rows):
            if bad_every and i % bad_every == 7:
                phone = "not a number"
            elif dup_every and i % dup_every == 9 and i > 10:
                phone = f"86139{i - 5:08d}"
            else:
                phone = f"86139{i:08d}"
            writer.writerow([phone, f"user{i}"])
    return folder / "campaign.toml"


@dataclass
class Sandbox:
    """`campaigner sandbox` in a child process (also used by bench/send.py)."""

    log: Path | None = None
    latency_ms: float = 20
    extra: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def start(self) -> Sandbox:
        self.port = free_port()
        cmd = [
            sys.executable,
            "-m",
            "campaigner",
            "sandbox",
            "--port",
            str(self.port),
            "--latency-ms",
            str(self.latency_ms),
            *(["--log", str(self.log)] if self.log is not None else []),
            *self.extra,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_sim/stats", timeout=2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("simulator did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/_sim/stats", timeout=10) as r:
            return dict(json.load(r))

    def accepted(self) -> list[dict[str, object]]:
        with urllib.request.urlopen(self.url + "/_sim/accepted", timeout=10) as r:
            return [json.loads(line) for line in r.read().decode().splitlines() if line]

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)


def campaigner(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "campaigner", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | CREDENTIALS | (env or {}),
    )


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 900
) -> tuple[int, str, str]:
    proc = campaigner(*args, env=env)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def run_dir(out: Path) -> Path | None:
    runs = sorted(p for p in out.glob("crash-*") if (p / "journal.sqlite").exists())
    return runs[-1] if runs else None


def wait_for_run(out: Path, timeout: float = 20) -> Path | None:
    """The run folder of a send that is starting (None if none appeared in time)."""
    deadline = time.monotonic() + timeout
    while (found := run_dir(out)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def wait_for_sent(folder: Path, at_least: int = 1, timeout: float = 60) -> None:
    """Until the run has journaled ``at_least`` sent rows: it is past its start, sending."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            db = sqlite3.connect(folder / "journal.sqlite", timeout=5)
            try:
                (sent,) = db.execute("SELECT count(*) FROM rows WHERE state='sent'").fetchone()
            finally:
                db.close()
            if sent >= at_least:
                return
        except sqlite3.Error:
            pass  # the table is not there yet
        time.sleep(0.05)
    raise AssertionError(f"no {at_least} sent rows in {folder} after {timeout} s")


def send_args(
    campaign: Path, out: Path, url: str, resume: Path | None, *, again: bool = False
) -> list[str]:
    """``again``: a new run of a campaign and list that an earlier run already sent."""
    args = ["send", str(campaign), "--endpoint", url, "--out", str(out), "--yes", "--json"]
    if resume:
        return [*args, "--resume", str(resume)]
    return [*args, "--again"] if again else args


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@dataclass
class Verdict:
    input_rows: int
    report_rows: int
    missing_rows: int
    repeated_rows: int
    duplicates: int  # recipients the server accepted more than once
    lost: int  # reported sent, but the server has no such MessageId
    unexpected: int  # accepted by the server, reported neither sent nor unknown
    statuses: dict[str, int]

    @property
    def ok(self) -> bool:
        return (
            self.report_rows == self.input_rows
            and not self.missing_rows
            and not self.repeated_rows
            and not self.duplicates
            and not self.lost
            and not self.unexpected
        )


def check(report: Path, input_rows: int, accepted: list[dict[str, object]]) -> Verdict:
    rows = read_report(report)
    numbers = Counter(int(r["row"]) for r in rows)
    expected = set(range(2, input_rows + 2))
    per_recipient = Counter(str(a["to"]) for a in accepted)
    accepted_ids = {str(a["message_id"]) for a in accepted}
    by_to = {r["To"]: r for r in rows if r["status"] in ("sent", "unknown")}
    lost = sum(1 for r in rows if r["status"] == "sent" and r["MessageId"] not in accepted_ids)
    unexpected = sum(1 for to in per_recipient if to not in by_to)
    return Verdict(
        input_rows=input_rows,
        report_rows=len(rows),
        missing_rows=len(expected - set(numbers)),
        repeated_rows=sum(1 for n in numbers.values() if n > 1),
        duplicates=sum(1 for n in per_recipient.values() if n > 1),
        lost=lost,
        unexpected=unexpected,
        statuses=dict(Counter(r["status"] for r in rows)),
    )
