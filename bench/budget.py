"""The shared rate budget, measured: several `campaigner send` processes on one AccessKey
against one simulator, and what one grant costs.

    .venv/bin/python -u bench/budget.py [--rows 6000] [--skip-redis]

1. Three `send` processes on one host (the host-wide budget, the default), started
   together, each with its own list, to one `campaigner sandbox` (200 ms latency).
2. Two processes with their own workspaces and state folders (as on two hosts) sharing one
   `redis-server` (--rate-budget redis://…).
3. The same two with Redis stopped for 10 s mid-run, then started again (empty).
For each: messages/s at the simulator while all were sending, the most it saw in any sliding
second, the fewest it accepted in a whole second (the first two and the last left out),
throttled answers, and from the reports and the accepted log: rows lost, rows sent twice.
Then the cost of one grant (µs) in-process, host-wide and in Redis.

Goals (issue 11): together ≥ 245 msg/s, ≤ 250 in every sliding second at the simulator,
0 throttled; with the Redis outage: 0 over the cap, 0 lost, 0 sent twice.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio
import redis

from campaigner.budget import GrantRule, GrantState, HostBudget
from campaigner.budget.redis import RedisBudget
from campaigner.sim.harness import CREDENTIALS, Sandbox

CAMPAIGN = """
name = "budget"
input = "recipients.csv"
[send]
qps = 250
timeout_s = 15
[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "tpl-budget"
Language = "en"
[message.TemplateParams]
name = "{{ name }}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Redis:
    """A throwaway redis-server on loopback that persists nothing."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(self.folder)]
        # The Debian binary with arguments built here: nothing untrusted.
        self.proc = subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=2)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.proc = None


def write_list(folder: Path, first: int, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(CAMPAIGN)
    with (folder / "recipients.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name"])
        for i in range(first, first + rows):
            writer.writerow([f"86139{i:08d}", f"user{i}"])
    return folder / "campaign.toml"


def start_send(
    campaign: Path, out: Path, url: str, state: Path, extra: list[str]
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "campaigner", "send", str(campaign), "--endpoint", url]
    cmd += ["--out", str(out), "--yes", "--again", "--json", *extra]
    env = os.environ | CREDENTIALS | {"XDG_STATE_HOME": str(state)}
    # This interpreter running campaigner with arguments built here.
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def per_second(times: list[float]) -> list[int]:
    first = times[0]
    counts = [0] * int(times[-1] - first)
    for t in times:
        k = int(t - first)
        if k < len(counts):
            counts[k] += 1
    return counts


def max_in_window(times: list[float], window: float = 1.0) -> int:
    best = start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def scenario(
    name: str,
    work: Path,
    senders: int,
    rows: int,
    extra: list[str],
    shared_state: bool,
    outage: Redis | None = None,
) -> dict[str, object]:
    """Run ``senders`` sends together against one simulator; the figures."""
    sandbox = Sandbox(latency_ms=200).start()
    try:
        procs, folders = [], []
        for n in range(senders):
            campaign = write_list(work / name / f"list{n}", n * rows, rows)
            state = work / name / ("state" if shared_state else f"state{n}")
            out = work / name / f"out{n}"
            procs.append(start_send(campaign, out, sandbox.url, state, extra))
            folders.append(out)
        paused_at = resumed_at = None
        if outage is not None:
            time.sleep(10)  # the sends are well under way
            outage.stop()
            paused_at = time.monotonic()
            time.sleep(10)
            outage.start()
            resumed_at = time.monotonic()
        summaries = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=3600)
            if proc.returncode != 0:
                raise SystemExit(f"{name}: send failed ({proc.returncode}):\n{stderr[-3000:]!r}")
            summaries.append(json.loads(stdout))
        stats = sandbox.stats()
        accepted = sandbox.accepted()
    finally:
        sandbox.close()
    times = sorted(float(a["received_monotonic"]) for a in accepted)  # type: ignore[arg-type]
    reported: Counter[str] = Counter()
    for out in folders:
        [run] = [p for p in out.iterdir() if p.is_dir()]
        with (run / "report.csv").open(encoding="utf-8-sig", newline="") as f:
            reported.update(r["To"] for r in csv.DictReader(f) if r["status"] == "sent")
    received = Counter(str(a["to"]) for a in accepted)
    span = times[-1] - times[0]
    seconds = per_second(times)[2:]
    if outage is not None and paused_at is not None:
        span -= 10.0  # nothing is sent while Redis is away
        seconds = [n for n in seconds if n]  # the paused seconds are not slow seconds
    return {
        "scenario": name,
        "senders": senders,
        "rows": senders * rows,
        "accepted": len(accepted),
        "msg_s_together": round((len(times) - 1) / span, 1) if span > 0 else None,
        "server_max_in_any_second": max_in_window(times),
        "server_max_all_requests": stats["max_in_window"],
        "server_min_in_a_whole_second": min(seconds) if seconds else None,
        "throttled": stats["throttled"],
        "lost": sum((reported - received).values()) + (senders * rows - sum(reported.values())),
        "sent_twice": sum(n - 1 for n in received.values() if n > 1),
        "not_in_reports": sum((received - reported).values()),
        "redis_paused_s": round(resumed_at - paused_at, 1) if paused_at and resumed_at else None,
    }


def grant_cost(redis_url: str | None) -> dict[str, float]:
    """µs per grant decision, each budget deciding on its own clock and state."""
    rule = GrantRule(limit=250)
    clock = [0.0]

    def tick() -> float:
        clock[0] += 0.01  # every call is due: the cost of a grant, not of a refusal
        return clock[0]

    n = 20_000
    state = GrantState()
    t = time.perf_counter()
    for _ in range(n):
        state.take(rule, tick())
    costs = {"in_process_us": (time.perf_counter() - t) / n * 1e6}
    with tempfile.TemporaryDirectory() as d:
        host = HostBudget(Path(d) / "b.budget", rule, clock=tick)
        t = time.perf_counter()
        for _ in range(n):
            host.take_now()
        costs["host_wide_us"] = (time.perf_counter() - t) / n * 1e6
        anyio.run(host.aclose)
    if redis_url is not None:

        async def redis_cost() -> float:
            budget = RedisBudget(redis_url, "cost", GrantRule(limit=100_000))
            await budget.take()  # loads the script
            m = 5_000
            t = time.perf_counter()
            for _ in range(m):
                await budget.take()
            cost = (time.perf_counter() - t) / m * 1e6
            await budget.aclose()
            return cost

        costs["redis_us"] = anyio.run(redis_cost)
    return {k: round(v, 1) for k, v in costs.items()}


def show(r: dict[str, object]) -> None:
    print(
        f"{r['scenario']}: {r['senders']} sends, {r['accepted']:,}/{r['rows']:,} accepted, "
        f"{r['msg_s_together']} msg/s together, server max {r['server_max_in_any_second']} "
        f"accepted ({r['server_max_all_requests']} requests) in any 1 s, fewest "
        f"{r['server_min_in_a_whole_second']} in a whole second, throttled {r['throttled']}, "
        f"lost {r['lost']}, sent twice {r['sent_twice']}"
        + (f", Redis away {r['redis_paused_s']} s" if r["redis_paused_s"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=6000, help="rows per send process")
    parser.add_argument("--skip-redis", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        results.append(scenario("host-wide", work, 3, args.rows, [], shared_state=True))
        show(results[-1])
        redis_url = None
        if not args.skip_redis:
            server = Redis(work / "redis")
            server.start()
            redis_url = server.url
            try:
                budget = ["--rate-budget", server.url]
                results.append(scenario("redis", work, 2, args.rows, budget, shared_state=False))
                show(results[-1])
                results.append(
                    scenario("redis-outage", work, 2, args.rows, budget, False, outage=server)
                )
                show(results[-1])
                costs = grant_cost(redis_url)
            finally:
                server.stop()
        else:
            costs = grant_cost(None)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average at the end: {load} ({os.cpu_count()} CPUs; figures are noisy)")
    print(
        "cost per grant: "
        + ", ".join(f"{k.removesuffix('_us').replace('_', '-')} {v} µs" for k, v in costs.items())
    )
    print(json.dumps({"runs": results, "grant_cost_us": costs}))


if __name__ == "__main__":
    main()
