"""Receipt ingestion speed: `campaigner receive` in its own process, an aiohttp pusher here.

    .venv/bin/python -u bench/receipts.py [--arrays 300] [--singles 20000] [--paced-s 20]

Prints three figures, each receipt durable (committed with synchronous=FULL) before its
200 answer:
1. receipts/s ingested in JSON arrays of 100 over 8 connections;
2. single-receipt POSTs/s over 64 connections;
3. answer times (p50, p99, max) of single-receipt POSTs paced at 750/s, the rate of three
   receipts per message at the full send rate of 250 messages/s.
Then checks the store holds every receipt once. First (unless --opt-out-replies 0), the
opt-out lookup a send makes: ``ReceiptStore.suppressed`` over a million short replies.

Goals (issue 9), on this 2-core machine with the pusher running alongside: >= 20,000
receipts/s in arrays; >= 2,000 single POSTs/s; p99 <= 100 ms at 750/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from campaigner.receipts.harness import ReceiverProcess
from campaigner.receipts.parse import Inbound
from campaigner.receipts.store import RECEIPTS_NAME, ReceiptStore


def receipt(n: int, status: str = "Delivered") -> dict[str, object]:
    return {
        "MessageId": f"bench-{n:09d}",
        "Status": status,
        "Timestamp": 1_700_000_000_000 + n,
        "From": "8613900000000",
        "To": f"86138{n % 100_000_000:08d}",
        "TaskId": f"bench-{n:09d}",
        "Type": "TEMPLATE",
    }


async def post_all(url: str, bodies: list[bytes], connections: int) -> tuple[float, list[float]]:
    """POST every body over ``connections`` keep-alive connections; (seconds, latencies)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=connections)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        raise RuntimeError(f"answer {answer.status}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return time.perf_counter() - started, latencies


async def paced(url: str, bodies: list[bytes], rate: float, warm: int) -> list[float]:
    """Open loop: request i starts at i/rate seconds, whatever the answers do. The first
    ``warm`` requests open the connections and are not counted (steady state)."""
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=256)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, counted: bool) -> None:
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"answer {answer.status}")
            if counted:
                latencies.append(time.perf_counter() - started)

        tasks = []
        origin = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = origin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(body, i >= warm)))
        await asyncio.gather(*tasks)
    return latencies


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def suppression_lookup(rows: int) -> None:
    """``ReceiptStore.suppressed`` over ``rows`` short replies, 30 % of them stop words."""
    rng = random.Random(9)
    said = ["ok", "thanks", "STOP", "yes", "no", "hello there", "what is this?", "baja", "退订",
            "please call me later"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-optouts-") as tmp:
        with ReceiptStore.open(Path(tmp)) as store:
            for start in range(0, rows, 100_000):
                store.add_inbound(
                    Inbound(f"i{n}", f"86138{rng.randrange(10**8):08d}", "8613900000000",
                            "TEXT", rng.choice(said), None, 1_700_000_000_000 + n, "{}")
                    for n in range(start, min(rows, start + 100_000))
                )  # fmt: skip
            wall, cpu = time.perf_counter(), time.process_time()
            found = store.suppressed("8613900000000")
            print(
                f"opt-outs from {rows:,} replies: {len(found):,} suppressed in "
                f"{time.perf_counter() - wall:.2f} s ({time.process_time() - cpu:.2f} s CPU)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arrays", type=int, default=300, help="arrays of 100 to push")
    parser.add_argument("--singles", type=int, default=20_000, help="single-receipt POSTs")
    parser.add_argument("--paced-s", type=float, default=20.0, help="seconds at 750/s")
    parser.add_argument("--opt-out-replies", type=int, default=1_000_000, help="0: skip")
    args = parser.parse_args()
    if args.opt_out_replies:
        suppression_lookup(args.opt_out_replies)
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="bench-receipts-") as tmp:
        workspace = Path(tmp)
        with ReceiverProcess(workspace, token) as receiver:
            url = receiver.url("status")
            assert receiver.proc is not None
            pid = receiver.proc.pid
            print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores, shared)")
            n = 0
            # Warm up: connections, the writer thread, SQLite's pages.
            warm = [json.dumps([receipt(n + i, "Sent")]).encode() for i in range(500)]
            asyncio.run(post_all(url, warm, 8))
            n += 500

            arrays = []
            for _ in range(args.arrays):
                arrays.append(json.dumps([receipt(n + i) for i in range(100)]).encode())
                n += 100
            cpu = cpu_s(pid)
            seconds, _ = asyncio.run(post_all(url, arrays, 8))
            cpu = cpu_s(pid) - cpu
            per_s = args.arrays * 100 / seconds
            print(
                f"arrays of 100, 8 connections: {args.arrays * 100:,} receipts in {seconds:.2f} s"
                f" = {per_s:,.0f} receipts/s (goal >= 20,000); receiver CPU "
                f"{cpu / args.arrays * 1000:.2f} ms per array "
                f"(= {args.arrays * 100 / max(cpu, 1e-9):,.0f} receipts per CPU second)"
            )

            singles = [json.dumps([receipt(n + i, "Read")]).encode() for i in range(args.singles)]
            n += args.singles
            cpu = cpu_s(pid)
            seconds, latencies = asyncio.run(post_all(url, singles, 64))
            cpu = cpu_s(pid) - cpu
            print(
                f"single-receipt POSTs, 64 connections: {args.singles:,} in {seconds:.2f} s = "
                f"{args.singles / seconds:,.0f} POSTs/s (goal >= 2,000); "
                f"p99 {quantile(latencies, 0.99) * 1000:.0f} ms; receiver CPU "
                f"{cpu / args.singles * 1000:.3f} ms per POST "
                f"(= {args.singles / max(cpu, 1e-9):,.0f} POSTs per CPU second)"
            )

            count = int(750 * (args.paced_s + 2))  # the first 2 s warm up, uncounted
            bodies = [json.dumps([receipt(n + i, "Failed")]).encode() for i in range(count)]
            n += count
            latencies = asyncio.run(paced(url, bodies, 750.0, warm=1500))
            print(
                f"750 single-receipt POSTs/s for {args.paced_s:.0f} s: p50 "
                f"{statistics.median(latencies) * 1000:.1f} ms, p99 "
                f"{quantile(latencies, 0.99) * 1000:.1f} ms (goal <= 100), max "
                f"{max(latencies) * 1000:.0f} ms"
            )
        db = sqlite3.connect(workspace / RECEIPTS_NAME)
        stored, distinct = db.execute(
            "SELECT count(*), count(DISTINCT message_id || status) FROM receipts"
        ).fetchone()
        db.close()
        print(f"stored {stored:,} receipts ({distinct:,} distinct) of {n:,} sent")
        if stored != n or distinct != n:
            raise SystemExit("the store does not hold every receipt exactly once")


if __name__ == "__main__":
    main()
