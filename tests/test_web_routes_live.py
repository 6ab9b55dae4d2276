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
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from campaigner.cli import cli
from campaigner.limits import WEB_HEADERS_TIMEOUT_S
from campaigner.sim.harness import CREDENTIALS, Sandbox
from tests.samples import campaign_toml

PASSWORD = "live test password"
ROWS = 400
CAMPAIGN = campaign_toml("live", send="qps = 20", params=False)
TIMEOUT_S = 180.0  # generous: the machine is shared


class Server:
    """`campaigner serve --sandbox --port 0` as a child process (``send_to``: options
    instead of ``--sandbox``, ``env``: more environment variables)."""

    def __init__(
        self,
        out: Path,
        *,
        password: str | None = PASSWORD,
        host: str = "",
        send_to: tuple[str, ...] = ("--sandbox",),
        env: dict[str, str] | None = None,
    ) -> None:
        self.out = out
        self.password = password
        self.host = host
        self.send_to = send_to
        self.env = env or {}
        self.process: subprocess.Popen[str] | None = None
        self.url = ""
        self.stderr = out.parent / "serve.stderr"

    def start(self) -> Server:
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env.pop("CAMPAIGNER_WEB_PASSWORD", None)
        if self.password is not None:
            env["CAMPAIGNER_WEB_PASSWORD"] = self.password
        cmd = [sys.executable, "-m", "campaigner", "serve", *self.send_to, "--port", "0"]
        if self.host:
            cmd += ["--host", self.host]
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr.open("a") as stderr:
            self.process = subprocess.Popen(
                [*cmd, "--out", str(self.out)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=env,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until it listens (or dies)
        match = re.fullmatch(r"campaigner web: (http://\S+/)\n", line)
        assert match, line
        self.url = match.group(1)
        return self

    def next_line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        return self.process.stdout.readline()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM; the exit code, or None when it had to be killed after ``timeout_s``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode if self.process is not None else None


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


def signed_in(url: str, password: str = PASSWORD) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=url, timeout=60)
    token = csrf(client.get("/signin").text)
    answer = client.post("/signin", data={"csrf_token": token, "password": password})
    assert answer.status_code == 303
    return client, csrf(client.get("/").text)


def start_run(client: httpx.Client, token: str, at: str = "") -> str:
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
    answer = client.post(draft + "/send", data={"csrf_token": token, "at": at})
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
    assert count(paused, "remaining") == ROWS - count(paused, "sent")  # what a resume sends
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


@pytest.mark.slow
def test_serve_endpoint_sends_to_a_simulator_in_its_own_process(out: Path) -> None:
    with Sandbox() as sim:
        server = Server(out, send_to=("--endpoint", sim.url), env=CREDENTIALS).start()
        try:
            client, token = signed_in(server.url)
            run_url = start_run(client, token)
            done = wait_until(client, run_url, lambda e: e["state"] == "done")
        finally:
            server.stop()
        assert count(done, "sent") == ROWS
        assert done["destination"] == "simulator"  # a loopback endpoint, not the sandbox
        assert len(sim.accepted()) == ROWS


def test_serve_refuses_an_endpoint_with_sandbox(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--sandbox", "--endpoint", "http://127.0.0.1:9", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no --endpoint with it" in result.stderr


def test_a_generated_password_is_printed_once_and_only_its_hash_kept(out: Path) -> None:
    first = Server(out, password=None).start()
    try:
        line = first.next_line()
        match = re.fullmatch(r"password: (\S+)\n", line)
        assert match, line
        password = match.group(1)
        client, _ = signed_in(first.url, password)
        assert client.get("/").status_code == 200
    finally:
        first.stop()
    assert password not in "".join(
        p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()
    )
    second = Server(out, password=None).start()
    try:
        signed_in(second.url, password)  # the same password, not printed again
    finally:
        second.stop()
    assert "password:" not in first.stderr.read_text()


def test_listening_beyond_loopback_warns_to_put_tls_in_front(tmp_path: Path) -> None:
    wide = Server(tmp_path / "wide" / "out", host="0.0.0.0").start()
    # Stopped as soon as it printed its address: a SIGTERM before uvicorn took the signals
    # over used to be ignored, and the server ran on.
    assert wide.stop(timeout_s=30) == 0
    assert "TLS" in wide.stderr.read_text()
    local = Server(tmp_path / "local" / "out").start()
    assert local.stop(timeout_s=30) == 0
    assert "TLS" not in local.stderr.read_text()


@pytest.mark.slow
@pytest.mark.stress
def test_a_scheduled_run_keeps_its_time_across_a_kill_and_cancel_sends_nothing(
    server: Server, out: Path
) -> None:
    at = datetime.now().replace(microsecond=0) + timedelta(hours=1)
    client, token = signed_in(server.url)
    run_url = start_run(client, token, at=at.isoformat(timespec="minutes"))
    wait_until(client, run_url, lambda e: e["state"] == "scheduled")
    client.close()
    server.kill()

    again = Server(out).start()
    try:
        client, token = signed_in(again.url)
        wait_until(client, run_url, lambda e: e["state"] == "scheduled")
        listing = client.get("/").text
        assert re.search(rf'data-run="{re.escape(run_url[6:])}" data-state="scheduled"', listing)
        assert client.post(run_url + "/cancel", data={"csrf_token": token}).status_code == 303
        cancelled = wait_until(client, run_url, lambda e: e["state"] == "cancelled")
        assert count(cancelled, "sent") == 0
        rows = report_rows(client, run_url)
        assert len(rows) == ROWS and {r["status"] for r in rows} == {"not_attempted"}
    finally:
        again.stop()


@pytest.mark.slow
def test_send_clicked_twice_at_once_starts_one_run(server: Server, out: Path) -> None:
    client, token = signed_in(server.url)
    recipients = "phone\n" + "".join(f"86139{n:08d}\n" for n in range(ROWS))
    answer = client.post(
        "/campaigns/new",
        data={"csrf_token": token},
        files={
            "recipients": ("list.csv", recipients.encode(), "text/csv"),
            "campaign": ("c.toml", CAMPAIGN.encode(), "application/toml"),
        },
    )
    draft = answer.headers["location"]
    clients = [signed_in(server.url) for _ in range(2)]
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda c=c, t=t: answers.append(c.post(draft + "/send", data={"csrf_token": t}))
        )
        for c, t in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_S)
    assert [a.status_code for a in answers] == [303, 303]
    assert answers[0].headers["location"] == answers[1].headers["location"]
    runs = [p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) == 1
    # A later click (a reload of the confirm form) lands on the same run too.
    again = client.post(draft + "/send", data={"csrf_token": token})
    assert again.headers["location"] == answers[0].headers["location"]
    run_url = answers[0].headers["location"]
    client.post(run_url + "/pause", data={"csrf_token": token})
    wait_until(client, run_url, lambda e: e["state"] in ("paused", "done"))


def read_answer(conn: socket.socket) -> bytes:
    """One whole HTTP answer (headers and a Content-Length body) from a raw connection."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(4096)
        assert chunk, answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    assert length, head
    while len(body) < int(length.group(1)):
        chunk = conn.recv(4096)
        assert chunk, answer
        body += chunk
    return head


@pytest.mark.slow
def test_slow_headers_are_cut_off_while_event_streams_and_requests_go_on(server: Server) -> None:
    client, token = signed_in(server.url)
    run_url = start_run(client, token)
    address = httpx.URL(server.url)
    assert address.host and address.port
    # One connection that never finishes its headers, one that does so on its second request.
    first = socket.create_connection((address.host, address.port), timeout=120)
    first.sendall(b"GET /signin HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    second = socket.create_connection((address.host, address.port), timeout=120)
    second.sendall(b"GET /signin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_answer(second).startswith(b"HTTP/1.1 200")
    second.sendall(b"GET /signin HTTP/1.1\r\n")  # the next request, slowly
    # Meanwhile the run page's event stream (one response that never completes) goes on past
    # the deadline: the deadline is on headers only.
    streamed = 0
    started = time.monotonic()
    with client.stream("GET", run_url + "/events") as stream:
        for line in stream.iter_lines():
            streamed += line.startswith("data: ")
            if time.monotonic() - started > WEB_HEADERS_TIMEOUT_S + 5:
                break
    assert streamed >= 2
    for conn in (first, second):
        assert conn.recv(4096) == b""  # closed by the server, not by our timeout
        conn.close()
    assert time.monotonic() - started < 90
    # And the others are served.
    assert client.get(run_url).status_code == 200
