"""A full disk during a send and while the report is written: one line that says what
happened, what was already sent and what to do, and that advice works once space is free."""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import SAMPLES, one_line_error, read_csv

_RUN_DONE_ERROR = re.compile(
    r"^error: (?P<what>.+?): (?P<where>\S+); "
    r"(?P<report>the report was not written, but )?"
    r"(?P<sent>[\d,]+) of (?P<sendable>[\d,]+) rows were sent"
    r"(?: and (?P<flight>[\d,]+) more may have been \(a resume marks them unknown\))?"
    r"; the journal in (?P<run>\S+) has them; (?P<remedy>.+?), then: (?P<command>.+)$"
)
# A real tmpfs says "the disk is full"; a file size limit says so in its own words.
_FULL = ("the disk is full", "the file size limit was reached", "a disk write failed")


def _number(text: str | None) -> int:
    return int((text or "0").replace(",", ""))


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        check=False,
    )
    return probe.returncode == 0


class SmallDisk:
    """A folder whose file system fills up after ``size`` bytes, for campaigner children.

    With the right to mount (root): a real tmpfs of that size in a private mount namespace
    (a sleeping ``unshare -m`` that commands enter with nsenter), gone with the test.
    Otherwise (CI without root): each child's RLIMIT_FSIZE, so any one file stops growing
    at ``size`` bytes (EFBIG instead of ENOSPC: the same failure path in campaigner).
    """

    def __init__(self, folder: Path, size: int, *, read_only: bool = False) -> None:
        folder.mkdir()
        self.folder, self.size = folder, size
        self._ns: subprocess.Popen[bytes] | None = None
        self._limited = not read_only
        if not _can_mount():
            if read_only:
                if os.geteuid() == 0:
                    pytest.skip("root ignores permissions and may not mount here")
                folder.chmod(0o555)  # not a read-only file system, but as unwritable
            return
        self._ns = subprocess.Popen(["unshare", "-m", "sleep", "3600"])
        ours = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + 30
        while os.readlink(f"/proc/{self._ns.pid}/ns/mnt") == ours:  # until unshare is done
            assert time.monotonic() < deadline, "unshare did not start"
            time.sleep(0.01)
        options = f"size={size},mode=0700" + (",ro" if read_only else "")
        self._enter("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder))

    @property
    def mode(self) -> str:
        return "rlimit" if self._ns is None else "tmpfs"

    def _enter(self, *command: str) -> None:
        assert self._ns is not None
        subprocess.run(["nsenter", "-t", str(self._ns.pid), "-m", *command], check=True)

    def _limit(self) -> None:  # in the child, before exec
        if self._limited:
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.size, self.size))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death

    def campaigner(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "campaigner", *args]
        if self._ns is not None:
            command = ["nsenter", "-t", str(self._ns.pid), "-m", *command]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALIBABA_CLOUD_")}
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            preexec_fn=self._limit if self._ns is None else None,
            timeout=300,
            check=False,
        )

    def free_space(self) -> None:
        if self._ns is not None:
            self._enter("mount", "-o", "remount,size=1g", str(self.folder))
        self._limited = False

    def seen(self, path: str | Path) -> Path:
        """``path`` as this process can read it (inside the namespace's mount)."""
        if self._ns is None:
            return Path(path)
        return Path(f"/proc/{self._ns.pid}/root") / Path(path).relative_to("/")

    def close(self) -> None:
        if self._ns is not None:
            self._ns.kill()
            self._ns.wait(timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[type[SmallDisk]]:
    disks: list[SmallDisk] = []

    class _Disk(SmallDisk):
        def __init__(self, folder: Path, size: int, *, read_only: bool = False) -> None:
            disks.append(self)
            super().__init__(folder, size, read_only=read_only)

    yield _Disk
    for disk in disks:
        disk.close()


def _journal_counts(run_dir: Path, scratch: Path) -> dict[str, int]:
    """Row counts by state, read from a copy (the run folder may sit on a full disk)."""
    shutil.copytree(run_dir, scratch)
    db = sqlite3.connect(scratch / "journal.sqlite")
    try:
        return dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
    finally:
        db.close()


def test_disk_full_during_the_send(tmp_path: Path, small_disk: type[SmallDisk]) -> None:
    disk = small_disk(tmp_path / "disk", 400_000)  # the journal outgrows it mid-send
    campaign = tmp_path / "c.toml"
    text = (SAMPLES / "whatsapp_template.toml").read_text()
    campaign.write_text(text.replace('"recipients.csv"', f'"{SAMPLES}/recipients.csv"'))
    out = disk.folder / "reports"

    result = disk.campaigner("send", str(campaign), "--sandbox", "--yes", "--out", str(out))

    assert result.returncode == 1, result.stderr
    line = one_line_error(result)
    found = _RUN_DONE_ERROR.match(line)
    assert found, line
    run = found["run"]
    assert found["what"].startswith(_FULL), (disk.mode, line)
    assert found["where"] == f"{run}/journal.sqlite"
    assert not found["report"]
    sent, sendable, in_flight = map(_number, (found["sent"], found["sendable"], found["flight"]))
    assert sent < sendable == 924
    # What the message claims is what the journal holds.
    counts = _journal_counts(disk.seen(run), tmp_path / "copy")
    assert (counts.get("sent", 0), counts.get("intent", 0)) == (sent, in_flight)
    assert found["command"] == f"campaigner send {campaign} --sandbox --resume {run}"

    # The advice works: free space, then the command from the message finishes the run.
    disk.free_space()
    resumed = disk.campaigner(*shlex.split(found["command"])[1:], "--yes")
    assert resumed.returncode == 3, resumed.stderr  # the sample has invalid rows on purpose
    report = read_csv(disk.seen(run) / "report.csv")
    statuses = [r["status"] for r in report]
    assert "not_attempted" not in statuses and "would_send" not in statuses
    assert statuses.count("unknown") <= in_flight  # only rows in flight at the failure
    assert statuses.count("sent") + statuses.count("unknown") == sendable


def _wide_campaign(folder: Path, rows: int) -> Path:
    """A list whose report (40 KB a row) is far bigger than its journal."""
    folder.mkdir()
    with (folder / "recipients.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "notes"])
        for i in range(rows):
            writer.writerow([f"86138{i:08d}", f"n{i}", "x" * 40_000])
    (folder / "c.toml").write_text(
        'name = "wide"\ninput = "recipients.csv"\n[message]\nChannelType = "whatsapp"\n'
        'Type = "template"\nFrom = "8613800000000"\nTo = "{{ phone }}"\n'
        'TemplateCode = "tpl"\nLanguage = "en"\n[message.TemplateParams]\nname = "{{ name }}"\n'
    )
    return folder / "c.toml"


def test_disk_full_while_writing_the_report_after_every_row_was_sent(
    tmp_path: Path, small_disk: type[SmallDisk]
) -> None:
    campaign = _wide_campaign(tmp_path / "campaign", rows=200)  # an 8 MB report
    disk = small_disk(tmp_path / "disk", 3_000_000)
    out = disk.folder / "reports"

    result = disk.campaigner(
        "send", str(campaign), "--sandbox", "--yes", "--json", "--out", str(out)
    )

    assert result.returncode == 1, result.stderr
    line = one_line_error(result)
    found = _RUN_DONE_ERROR.match(line)
    assert found, line
    run = found["run"]
    assert found["what"].startswith(_FULL), (disk.mode, line)
    assert found["where"] == run
    assert found["report"] and found["sent"] == found["sendable"] == "200"
    assert found["command"] == f"campaigner report {run}"
    assert not (disk.seen(run) / "report.csv").exists()
    # With --json, stdout is the same error as one object, with what is known of the run.
    summary = json.loads(result.stdout)
    assert summary["error"] == line.removeprefix("error: ")
    assert (summary["exit_code"], summary["run_dir"], summary["sent"]) == (1, run, 200)

    disk.free_space()
    rebuilt = disk.campaigner(*shlex.split(found["command"])[1:])
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = read_csv(disk.seen(run) / "report.csv")
    assert [r["status"] for r in report] == ["sent"] * 200


def test_out_on_a_read_only_file_system(tmp_path: Path, small_disk: type[SmallDisk]) -> None:
    disk = small_disk(tmp_path / "read-only", 1_000_000, read_only=True)
    out = disk.folder / "reports"
    problem = (
        "the file system is read-only: {out}; nothing was sent; use a writable folder (--out)"
        if disk.mode == "tmpfs"
        else "permission denied: {out}; nothing was sent; fix the folder's permissions or use --out"
    ).format(out=out)
    campaign = str(SAMPLES / "whatsapp_template.toml")
    for command in (["preview"], ["send", "--sandbox", "--yes"]):
        result = disk.campaigner(*command, campaign, "--out", str(out))
        assert result.returncode == 1, result.stderr
        assert one_line_error(result) == f"error: {problem}, then try again"
        assert not result.stdout


def test_disk_full_during_a_preview(tmp_path: Path, small_disk: type[SmallDisk]) -> None:
    campaign = _wide_campaign(tmp_path / "campaign", rows=200)  # an 8 MB report
    disk = small_disk(tmp_path / "disk", 1_000_000)
    out = disk.folder / "reports"
    result = disk.campaigner("preview", str(campaign), "--out", str(out))
    assert result.returncode == 1, result.stderr
    line = one_line_error(result)
    found = re.match(rf"^error: (.+): {re.escape(str(out))}; nothing was sent; (.+)$", line)
    assert found and found[1].startswith(_FULL), (disk.mode, line)
    assert found[2].endswith(", then try again")
    assert not list(disk.seen(out).iterdir())  # no half-made run folder
