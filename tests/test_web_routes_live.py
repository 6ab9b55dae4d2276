"""`campaigner serve --sandbox` as a real server on a free loopback port, over HTTP: the run
page's server-sent events, Pause and Resume, and kill -9 of the server mid-send (the run
continues at the next start, nothing is sent twice)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PASSWORD = "live test password"
ROWS = 400
CAMPAIGN = """\
name = "live"

[send]
qps = 20

[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "tpl"
Language = "en"
"""
TIMEOUT_S = 180.0  # generous: the machine is shared


class Server:
    """`campaigner serve --sandbox --port 0` as a child process."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> Server:
        env = {**os.environ, "CAMPAIGNER_WEB_PASSWORD": PASSWORD, "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "campaigner", "serve", "--sandbox", "--port", "0"]
        self.process = subprocess.Popen(
            [*cmd, "--out", str(self.out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until it listens (or dies)
        match = re.fullmatch(r"campaigner web: (http://\S+/)\n", line)
        assert match, line
        self.url = match.group(1)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture
def server(out: Path) -> Iterator[Server]:
    server = Server(out).start()
    try:
        yield server
    finally:
        server.stop()


def csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def signed_in(url: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=60)
    token = csrf(client.get("/signin").text)
    answer = client.post("/signin", data={"csrf_token": token, "password": PASSWORD})
    assert answer.status_code == 303
    return client, csrf(client.get("/").text)


def start_run(client: httpx.Client, token: str) -> str:
    recipients = "phone\n" + "".join(f"86139{n:08d}\n" for n in range(ROWS))
    answer = client.post(
        "/campaigns/new",
        data={"csrf_token": token},
        files={
            "recipients": ("list.csv", recipients.encode(), "text/csv"),
            "campaign": ("c.toml", CAMPAIGN.encode(), "application/toml"),
        },
    )
    assert answer.status_code == 303, answer.text
    draft = answer.headers["location"]
    assert f"Send {ROWS} messages" in client.get(draft).text
    answer = client.post(draft + "/send", data={"csrf_token": token})
    assert answer.status_code == 303, answer.text
    run_url = answer.headers["location"]
    assert run_url.startswith("/runs/live-")
    return run_url


def events(client: httpx.Client, run_url: str, count: int) -> list[dict[str, object]]:
    """The first ``count`` events of the run page's stream."""
    seen: list[dict[str, object]] = []
    with client.stream("GET", run_url + "/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if len(seen) == count:
                    break
    return seen


def wait_until(client: httpx.Client, run_url: str, check: object) -> dict[str, object]:
    """Events until ``check(event)`` holds (one event every half second)."""
    deadline = time.monotonic() + TIMEOUT_S
    with client.stream("GET", run_url + "/events") as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                event: dict[str, object] = json.loads(line[6:])
                if check(event):  # type: ignore[operator]
                    return event
            if time.monotonic() > deadline:
                break
    raise AssertionError(f"{run_url} never got there")


def count(event: dict[str, object], name: str) -> int:
    counts = event["counts"]
    assert isinstance(counts, dict)
    return int(counts[name])


def report_rows(client: httpx.Client, run_url: str) -> list[dict[str, str]]:
    answer = client.get(run_url + "/report.csv")
    assert answer.status_code == 200
    assert "attachment" in answer.headers["content-disposition"]
    return list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))


@pytest.mark.slow
def test_the_run_page_streams_pause_and_resume(server: Server) -> None:
    client, token = signed_in(server.url)
    run_url = start_run(client, token)
    first = events(client, run_url, 3)
    assert {"state", "counts", "rate", "eta", "funnel", "history"} <= set(first[0])
    assert first[0]["state"] in ("sending", "done")
    wait_until(client, run_url, lambda e: count(e, "sent") >= 20)

    assert client.post(run_url + "/pause", data={"csrf_token": token}).status_code == 303
    paused = wait_until(client, run_url, lambda e: e["state"] == "paused")
    assert 20 <= count(paused, "sent") < ROWS
    assert 'data-state="paused"' in client.get(run_url).text
    listing = client.get("/").text
    assert re.search(rf'data-run="{re.escape(run_url[6:])}" data-state="paused"', listing)
    # A report while paused has every row, the sent ones with their MessageIds.
    rows = report_rows(client, run_url)
    assert len(rows) == ROWS
    assert sum(r["status"] == "sent" for r in rows) == count(paused, "sent")

    assert client.post(run_url + "/resume", data={"csrf_token": token}).status_code == 303
    done = wait_until(client, run_url, lambda e: e["state"] == "done")
    assert count(done, "sent") == ROWS and count(done, "remaining") == 0
    rows = report_rows(client, run_url)
    ids = [r["MessageId"] for r in rows]
    assert all(r["status"] == "sent" for r in rows) and len(set(ids)) == ROWS


@pytest.mark.slow
@pytest.mark.stress
def test_kill_9_mid_send_then_the_run_continues_at_the_next_start(
    server: Server, out: Path
) -> None:
    client, token = signed_in(server.url)
    run_url = start_run(client, token)
    wait_until(client, run_url, lambda e: count(e, "sent") >= 20)
    client.close()
    server.kill()

    again = Server(out).start()
    try:
        client, token = signed_in(again.url)
        done = wait_until(client, run_url, lambda e: e["state"] == "done")
        rows = report_rows(client, run_url)
        assert len(rows) == ROWS
        sent = [r for r in rows if r["status"] == "sent"]
        unknown = [r for r in rows if r["status"] == "unknown"]
        assert len(sent) + len(unknown) == ROWS  # every row sent once, or listed for reconcile
        assert len({r["MessageId"] for r in sent}) == len(sent)
        assert count(done, "unknown") == len(unknown)
    finally:
        again.stop()
