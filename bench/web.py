"""Web app speed: `campaigner serve` in a child process, driven over HTTP as a browser would
(sign in, upload, preview, confirm, watch the run pages' server-sent events).

    .venv/bin/python -u bench/web.py [--xlsx-rows 100000] [--campaigns 4] [--rows 5000]
                                     [--qps 60] [--window 10]
                                     [--simulator apart|in-process|both] [--no-receipts]

Prints three figures against the goals of the web app issue:
1. a 100,000-row XLSX from the end of its upload to the preview page showing its figures
   (goal ≤ 5 s): the request body is streamed and the clock starts when its last byte is
   handed to the socket;
2. updates per second on each run page with ``--campaigns`` campaigns sending at once
   (goal ≥ 2/s): one streaming client per run, left open until its run ends as a browser
   would be, counts the events of ``/runs/ID/events`` over the first ``--window`` seconds,
   and the longest gap between two events;
3. the server's CPU time per message sent (goal ≤ 1 ms, as the CLI): user + system time of
   the server process from the first confirm to the last run done, over the messages sent.
   ``--simulator apart`` (the default) runs `campaigner sandbox` in a process of its own and
   `serve --endpoint` sends to it, so the figure is the web app's own, as bench/send.py's
   is the CLI's; the simulator pushes its receipts to the server's callback routes, as CAMS
   would (``--no-receipts``: none, like the CLI, which has no receiver). ``in-process`` is
   `serve --sandbox`: the simulator and its receipt pusher run in the server's process and
   count in its CPU. ``both`` measures one after the other. The reference printed after
   each is `campaigner send` of one of the lists with the same simulator (apart:
   ``--endpoint``; in-process: ``--sandbox``), per message beyond a tenth of it (start-up
   and reading cancel out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import httpx
import openpyxl

from campaigner.sim.harness import CREDENTIALS, Sandbox, free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
CAMPAIGN = ROOT / "sample_data" / "whatsapp_template.toml"
TIMEOUT = httpx.Timeout(120.0)
_URL_LINE = re.compile(r"^campaigner web: (http://\S+?)/?$")
_STATE = re.compile(r'id="run"[^>]*data-state="([a-z_]+)"|data-state="([a-z_]+)"[^>]*id="run"')


@dataclass
class Form:
    """One ``<form>`` of a page: where it goes, its fields, and its buttons' texts."""

    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    buttons: list[str] = field(default_factory=list)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._button: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            if a.get("type") == "file":
                self.forms[-1].files.append(a["name"])
            elif a.get("type") == "submit":
                self.forms[-1].buttons.append(a.get("value", ""))
            else:
                self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "input" and a.get("type") == "submit":
            self.forms[-1].buttons.append(a.get("value", ""))
        elif tag == "button":
            self._button = []

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self.forms:
            self.forms[-1].buttons.append(" ".join("".join(self._button).split()))
            self._button = None


def form_with(html: str, *, file: str | None = None, button: str | None = None) -> Form:
    """The form holding file input ``file``, or a button whose text starts with ``button``."""
    parser = _Forms()
    parser.feed(html)
    for form in parser.forms:
        if file is not None and file in form.files:
            return form
        if button is not None and any(b.startswith(button) for b in form.buttons):
            return form
    sys.exit(f"no form with {file or button!r} on the page")


def count(html: str, name: str) -> int | None:
    match = re.search(rf'data-count="{name}"[^>]*>\s*(\d+)\s*<', html)
    return int(match.group(1)) if match else None


class Server:
    """`campaigner serve --port 0` as a child, with ``extra`` options and environment;
    ``url`` ends in /."""

    def __init__(
        self,
        out: Path,
        password: str,
        extra: list[str],
        env: dict[str, str] | None = None,
        port: int = 0,
    ) -> None:
        cmd = [sys.executable, "-m", "campaigner", "serve", "--port", str(port), *extra]
        env = {
            **os.environ,
            **(env or {}),
            "CAMPAIGNER_WEB_PASSWORD": password,
            "PYTHONUNBUFFERED": "1",
        }
        out.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [*cmd, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=(out.parent / "serve.stderr").open("wb"),
            env=env,
        )
        self.url = ""
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            match = _URL_LINE.match(raw.decode().strip())
            if match:
                self.url = match.group(1) + "/"
                break
        if not self.url:
            sys.exit("campaigner serve did not start (see bench/out/web/serve.stderr)")
        # Keep draining stdout so a full pipe never blocks the server.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def sign_in(server: Server, password: str) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=TIMEOUT, follow_redirects=True)
    page = client.get("signin")
    form = form_with(page.text, button="Sign in")
    answer = client.post(form.action or "signin", data={**form.fields, "password": password})
    if "/signin" in str(answer.url):
        sys.exit(f"sign-in failed: {answer.status_code}")
    return client


def upload(client: httpx.Client, listing: Path, campaign: Path) -> tuple[str, float, float]:
    """Upload a list and a campaign; the preview page, upload seconds, end of upload to figures."""
    form = form_with(client.get("campaigns/new").text, file="recipients")
    media = "application/octet-stream"
    files = {
        "recipients": (listing.name, listing.read_bytes(), media),
        "campaign": (campaign.name, campaign.read_bytes(), media),
    }
    built = client.build_request("POST", form.action, data=form.fields, files=files)
    body = built.read()
    marks: dict[str, float] = {}

    def stream() -> Iterator[bytes]:
        marks["start"] = time.perf_counter()
        for at in range(0, len(body), 1 << 16):
            yield body[at : at + (1 << 16)]
        marks["uploaded"] = time.perf_counter()

    headers = {"Content-Type": built.headers["Content-Type"], "Content-Length": str(len(body))}
    page = client.post(form.action, content=stream(), headers=headers)
    # A preview computed after the page loads (the page polls): wait for its figures.
    while count(page.text, "rows") is None:
        if page.status_code >= 400:
            sys.exit(f"upload failed: {page.status_code} {page.text[:300]}")
        time.sleep(0.05)  # a bench polling the page as its script would, not a test
        page = client.get(page.url)
    done = time.perf_counter()
    return page.text, marks["uploaded"] - marks["start"], done - marks["uploaded"]


def write_list(path: Path, rows: int, first: int, *, xlsx: bool) -> None:
    """Distinct valid recipients (numbers from ``first``); as XLSX some phones are numbers."""
    r = random.Random(first)
    names = ["ana", "bruno", "chen", "dewi", "elif", "farah", "hana", "jun", "omar", "wei"]
    lines = (
        (f"86139{first + i:08d}", r.choice(names), f"C{first + i:07d}", "Jakarta")
        for i in range(rows)
    )
    if xlsx:
        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("recipients")
        sheet.append(["phone", "first_name", "coupon", "city"])
        for i, line in enumerate(lines):
            sheet.append([int(line[0]) if i % 3 == 0 else line[0], *line[1:]])
        book.save(path)
    else:
        text = "".join(",".join(line) + "\n" for line in lines)
        path.write_text("phone,first_name,coupon,city\n" + text, encoding="utf-8")


def bench_preview(client: httpx.Client, folder: Path, rows: int) -> None:
    listing = OUT / f"web-recipients-{rows}.xlsx"
    if not listing.exists():
        print(f"writing {listing.name} …")
        write_list(listing, rows, 1, xlsx=True)
    page, uploading, to_preview = upload(client, listing, CAMPAIGN)
    mib = listing.stat().st_size / 2**20
    print(
        f"preview: {count(page, 'rows'):,}-row XLSX ({mib:.1f} MiB) uploaded in {uploading:.3f} s; "
        f"end of upload to the preview page {to_preview:.2f} s (goal ≤ 5 s)"
    )


_GOING = {"scheduled", "sending", "paused"}


def watch(
    client: httpx.Client,
    run: str,
    seconds: float,
    found: dict[str, list[float]],
    at: dict[str, str],
) -> None:
    """Watch one run page's stream as a browser left open would, until the run ends; count
    its events over the first ``seconds`` and note the run's state then (``at``)."""
    stamps: list[float] = []
    found[run] = stamps
    end = time.monotonic() + seconds
    with client.stream("GET", f"runs/{run}/events", timeout=httpx.Timeout(30.0)) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            state = json.loads(line[5:])["state"]
            if time.monotonic() < end:
                stamps.append(time.monotonic())
                at[run] = state
            if state not in _GOING:
                return


def state_of(client: httpx.Client, run: str) -> tuple[str, int]:
    page = client.get(f"runs/{run}").text
    match = _STATE.search(page)
    state = (match.group(1) or match.group(2)) if match else "?"
    return state, count(page, "sent") or 0


@dataclass(frozen=True)
class Mode:
    """Where the simulator runs: the serve options, and the CLI reference's send options and
    environment for the same simulator."""

    name: str
    serve: list[str]
    send: list[str]
    env: dict[str, str] = field(default_factory=dict)


def bench_runs(
    server: Server, client: httpx.Client, folder: Path, args: argparse.Namespace, mode: Mode
) -> None:
    text = CAMPAIGN.read_text(encoding="utf-8").replace("qps = 250 ", f"qps = {args.qps} ")
    # A campaign file of this bench alone: runs of earlier benches (this machine's record of
    # runs) never make the earlier-runs check refuse it.
    text = f"# bench/web.py, {time.time_ns()}\n{text}"
    previews = []
    for k in range(args.campaigns):
        campaign = folder / f"campaign-{k}.toml"
        campaign.write_text(text.replace('"spring-sale"', f'"bench-{k}"'), encoding="utf-8")
        listing = folder / f"list-{k}.csv"
        write_list(listing, args.rows, 1 + k * args.rows, xlsx=False)
        previews.append(upload(client, listing, campaign)[0])

    cpu_before = server.cpu_seconds()
    started = time.perf_counter()
    runs = []
    for page in previews:
        form = form_with(page, button="Send ")
        answer = client.post(form.action, data=form.fields)
        match = re.search(r"/runs/([^/?#]+)$", str(answer.url))
        if not match:
            why = re.search(r'class="error"[^>]*>([^<]*)<', answer.text)
            sys.exit(
                f"confirm did not land on a run page: {answer.url} {answer.status_code} "
                f"{why.group(1) if why else ''}"
            )
        runs.append(match.group(1))

    found: dict[str, list[float]] = {}
    at_window: dict[str, str] = {}
    watchers = [
        threading.Thread(target=watch, args=(client, run, args.window, found, at_window))
        for run in runs
    ]
    for t in watchers:
        t.start()
    for t in watchers:
        t.join()
    print(
        f"run pages: {args.campaigns} campaigns sending, states at the end of the window "
        f"{sorted(set(at_window.values()))}"
    )
    for run in runs:
        stamps = found.get(run, [])
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        print(
            f"  {run}: {len(stamps) / args.window:.1f} updates/s, longest gap "
            f"{max(gaps, default=float('inf')):.2f} s (goal ≥ 2/s)"
        )
    states = [state_of(client, run) for run in runs]
    seconds = time.perf_counter() - started
    cpu = server.cpu_seconds() - cpu_before
    sent = sum(n for _, n in states)
    print(
        f"send ({mode.name}): {sent:,} messages in {seconds:.1f} s ({sent / seconds:.0f} msg/s "
        f"all runs); server CPU {cpu:.1f} s = {1000 * cpu / max(sent, 1):.2f} ms per message "
        f"(goal ≤ 1 ms); final states {sorted({s for s, _ in states})}"
    )
    cli = folder / f"cli-{int(time.time())}"  # a fresh workspace: no opt-outs of earlier runs
    cli_baseline(folder / "list-0.csv", folder / "campaign-0.toml", cli, mode)


def cli_send_cpu(listing: Path, campaign: Path, out: Path, mode: Mode) -> tuple[int, float, float]:
    """`campaigner send` at 250/s in a child: messages sent, seconds, its CPU time."""
    cmd = [sys.executable, "-m", "campaigner", "send", str(campaign), "--input", str(listing)]
    cmd += ["--qps", "250", *mode.send, "--yes", "--again", "--out", str(out), "--json"]
    out.mkdir(parents=True, exist_ok=True)
    with (out / "stdout.json").open("wb") as stdout:
        started = time.perf_counter()
        env = {**os.environ, **mode.env}
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=subprocess.DEVNULL, env=env)
        _, _, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    summary = json.loads((out / "stdout.json").read_text())
    return summary["by_status"].get("sent", 0), seconds, usage.ru_utime + usage.ru_stime


def cli_baseline(listing: Path, campaign: Path, out: Path, mode: Mode) -> None:
    """The CLI's send of one campaign's list and of a tenth of it to the same simulator, so
    the CPU per message between the two (start-up and reading cancel out) is the
    like-for-like reference for the server's figure."""
    lines = listing.read_text(encoding="utf-8").splitlines(keepends=True)
    small = out / "small.csv"
    out.mkdir(parents=True, exist_ok=True)
    small.write_text("".join(lines[: 1 + (len(lines) - 1) // 10]), encoding="utf-8")
    n_small, _, cpu_small = cli_send_cpu(small, campaign, out / "small", mode)
    n_full, seconds, cpu_full = cli_send_cpu(listing, campaign, out / "full", mode)
    marginal = (cpu_full - cpu_small) / max(n_full - n_small, 1)
    print(
        f"cli send {' '.join(mode.send[:1])} of one list: {n_full:,} messages in "
        f"{seconds:.1f} s, CPU {cpu_full:.1f} s ({1000 * cpu_full / max(n_full, 1):.2f} ms per "
        f"message with start-up); {1000 * marginal:.2f} ms per further message"
    )


def bench_mode(name: str, args: argparse.Namespace, preview: bool) -> None:
    """Serve with the simulator ``name`` says, then the previews and runs."""
    folder = OUT / "web" / name
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(16)
    workspace = folder / f"workspace-{int(time.time())}"
    with contextlib.ExitStack() as stack:
        if name == "in-process":
            mode = Mode(name, ["--sandbox"], ["--sandbox"])
            server = Server(workspace, password, mode.serve)
        else:
            port, token = free_port(), secrets.token_urlsafe(24)
            push = [] if args.no_receipts else ["--callback-base", f"http://127.0.0.1:{port}"]
            sim = stack.enter_context(Sandbox(extra=push, env={"CAMPAIGNER_CALLBACK_TOKEN": token}))
            mode = Mode(name, ["--endpoint", sim.url], ["--endpoint", sim.url], CREDENTIALS)
            env = {**CREDENTIALS, "CAMPAIGNER_CALLBACK_TOKEN": token}
            server = Server(workspace, password, mode.serve, env, port=port)
        stack.callback(server.stop)
        receipts = "" if name == "in-process" or not args.no_receipts else ", no receipts"
        print(f"== simulator {name}{receipts}")
        client = sign_in(server, password)
        if preview:
            bench_preview(client, folder, args.xlsx_rows)
        bench_runs(server, client, folder, args, mode)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--campaigns", type=int, default=4)
    parser.add_argument("--rows", type=int, default=5_000, help="rows per campaign")
    parser.add_argument("--qps", type=int, default=60, help="each campaign's qps")
    parser.add_argument("--window", type=float, default=10.0, help="seconds to count events")
    parser.add_argument("--simulator", choices=("apart", "in-process", "both"), default="apart")
    parser.add_argument(
        "--no-receipts", action="store_true", help="apart: the simulator pushes no receipts"
    )
    parser.add_argument("--no-preview", action="store_true", help="skip the XLSX preview")
    args = parser.parse_args()
    names = ("apart", "in-process") if args.simulator == "both" else (args.simulator,)
    for k, name in enumerate(names):
        bench_mode(name, args, preview=k == 0 and not args.no_preview)


if __name__ == "__main__":
    main()
