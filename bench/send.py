"""Send speed against the simulator over loopback, and the one-call-at-a-time baseline.

    .venv/bin/python bench/send.py [--rows 20000] [--latencies 200,1000]
        [--journal-rows 5000] [--engines] [--send-only]

For each latency: starts `campaigner sandbox` in its own process (so the server's CPU is
not the client's), runs `campaigner send` on generated rows, and prints the achieved
messages/s (sustained start rate and end to end), the largest number of requests the
server saw in any sliding second, the fewest it accepted in any whole second (counted
from its first arrival, leaving out the first two seconds and the last, partial one),
throttled answers, and the client's CPU milliseconds per message (send phase). Then,
unless --send-only, the journal's cost (the same pool with the journal on disk vs in
memory) and the baseline: the same calls made the way a script around the official SDK
would make them, one blocking call after another.

Goals (issues 3 and 7), on a long run (--rows 60000) at both latencies: ≥ 247.5 msg/s
sustained; no whole second after the first two under 240 accepted; ≤ 250 in any sliding
second at the server; 0 throttles; ≤ 1 ms client CPU per message.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import anyio
import httpx
from yarl import URL

from campaigner.journal import Journal
from campaigner.send.client import CamsClient, ReplyCallback, check_endpoint
from campaigner.send.journaling import JournalWriter
from campaigner.send.pacing import max_in_window
from campaigner.send.pool import Job, SendPool
from campaigner.send.transport import Http11Transport
from campaigner.signing import Credentials, SignedRequest, format_date, sign_request
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox
from campaigner.statuses import JournalState

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
# The sample campaign (WhatsApp template, two TemplateParams); every run passes --input.
CAMPAIGN = ROOT / "sample_data" / "whatsapp_template.toml"


def write_rows(path: Path, n: int) -> None:
    with path.open("w") as f:
        f.write("phone,first_name,coupon\n")
        for i in range(n):
            f.write(f"86139{i:08d},ana{i % 50},C{i:06d}\n")


def per_second(times: list[float]) -> list[int]:
    """Arrivals in each whole second from the first one (the last, partial second left out)."""
    if not times:
        return []
    first = times[0]
    counts = [0] * int(times[-1] - first)
    for t in times:
        k = int(t - first)
        if k < len(counts):
            counts[k] += 1
    return counts


def send_run(campaign: Path, data: Path, latency_ms: float) -> dict[str, object]:
    sandbox = Sandbox(latency_ms=latency_ms).start()
    try:
        env = os.environ | {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        }
        cmd = [
            sys.executable,
            "-m",
            "campaigner",
            "send",
            str(campaign),
            "--input",
            str(data),
            "--endpoint",
            sandbox.url,
            "--out",
            str(OUT / "reports"),
            "--yes",
            "--again",  # every bench run sends the same list again, on purpose
            "--json",
        ]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        if proc.returncode not in (0, 3):
            raise SystemExit(f"send failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        summary = json.loads(proc.stdout)
        server = sandbox.stats()
        accepted = sorted(float(a["received_monotonic"]) for a in sandbox.accepted())  # type: ignore[arg-type]
    finally:
        sandbox.close()
    seconds = per_second(accepted)[2:]  # the first two seconds ramp up
    slowest = min(range(len(seconds)), key=seconds.__getitem__) if seconds else None
    return {
        "latency_ms": latency_ms,
        "rows": summary["rows"],
        "sent": summary["by_status"].get("sent", 0),
        "sustained_msg_s": summary["achieved_rate"],
        "end_to_end_msg_s": round(summary["by_status"].get("sent", 0) / summary["send_seconds"], 1),
        "server_max_in_any_second": server["max_in_window"],
        "server_min_accepted_in_a_second": seconds[slowest] if slowest is not None else None,
        "server_slowest_second": slowest + 2 if slowest is not None else None,
        "server_seconds_under_240": sum(1 for n in seconds if n < 240),
        "server_sustained_msg_s": round((len(accepted) - 1) / (accepted[-1] - accepted[0]), 1)
        if len(accepted) > 1
        else None,
        "throttled": server["throttled"],
        "client_cpu_ms_per_msg": summary["cpu_ms_per_message"],
        "command_wall_s": round(wall, 1),
    }


def baseline(latency_ms: float, calls: int) -> float:
    """One blocking signed call after another, as a script around the SDK would do."""
    sandbox = Sandbox(latency_ms=latency_ms).start()
    try:
        base, host = check_endpoint(sandbox.url)
        creds = Credentials(KEY_ID, SECRET)
        started = time.perf_counter()
        with httpx.Client() as client:
            for i in range(calls):
                query = {
                    "ChannelType": "whatsapp",
                    "From": "8613800000000",
                    "Language": "en",
                    "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
                    "TemplateParams": '{"name":"Ana"}',
                    "To": f"86138{i:08d}",
                    "Type": "template",
                }
                signed = sign_request(
                    method="POST",
                    host=host,
                    query=query,
                    credentials=creds,
                    date=format_date(time.time()),
                    nonce=os.urandom(16).hex(),
                )
                client.post(f"{base}/?{signed.query}", headers=signed.headers)
        return calls / (time.perf_counter() - started)
    finally:
        sandbox.close()


def _query(i: int) -> dict[str, str]:
    return {
        "ChannelType": "whatsapp",
        "From": "8613800000000",
        "Language": "en",
        "TemplateCode": "744c4b5c79c9432497a075bdfca3****",
        "TemplateParams": f'{{"code":"C{i:06d}","name":"Ana{i % 50}"}}',
        "To": f"86139{i:08d}",
        "Type": "template",
    }


class AiohttpTransport(httpx.AsyncBaseTransport):
    """aiohttp's pool under the httpx API: the engine Http11Transport replaced (--engines)."""

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 15.0,
        keepalive_s: float = 15.0,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._limit = max_connections
        self._keepalive_s = keepalive_s
        self._verify = verify
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=read_timeout_s
        )
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit,
                keepalive_timeout=self._keepalive_s,
                ttl_dns_cache=300,
                ssl=self._verify,
            )
            # No cookies, no env proxies surprises beyond the standard variables.
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                trust_env=True,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._open()
        # encoded=True: the query is already canonical; re-encoding would change the bytes
        # the signature was computed over.
        url = URL(str(request.url), encoded=True)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length",)]
        body = request.content if request.content else None
        try:
            async with session.request(
                request.method, url, headers=headers, data=body, allow_redirects=False
            ) as resp:
                content = await resp.read()
                # aiohttp already decoded the body: drop headers that would make httpx decode again.
                raw_headers = [
                    (k, v)
                    for k, v in resp.raw_headers
                    if k.lower()
                    not in (b"content-encoding", b"content-length", b"transfer-encoding")
                ]
                status = resp.status
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc) or "cannot connect", request=request) from exc
        except (TimeoutError, aiohttp.SocketTimeoutError) as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise httpx.RemoteProtocolError(
                str(exc) or "server disconnected", request=request
            ) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc
        except OSError as exc:
            raise httpx.ReadError(str(exc), request=request) from exc
        return httpx.Response(status, headers=raw_headers, content=content, request=request)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _pool_run(url: str, rows: int, journal: Journal, engine: str) -> dict[str, object]:
    journal.add_rows((i, JournalState.PENDING, f"86139{i:08d}", None) for i in range(rows))
    transport: httpx.AsyncBaseTransport = (
        AiohttpTransport() if engine == "aiohttp" else Http11Transport()
    )
    client = CamsClient(Credentials(KEY_ID, SECRET), endpoint=url, transport=transport)
    pool = SendPool(client, JournalWriter(journal))
    starts: list[float] = []
    start = client.start

    def recording_start(request: SignedRequest, on_reply: ReplyCallback) -> None:
        starts.append(time.monotonic())
        start(request, on_reply)

    client.start = recording_start  # type: ignore[method-assign]

    async def feed() -> AsyncIterator[list[Job]]:
        for lo in range(0, rows, 5000):
            yield [Job(i, _query(i)) for i in range(lo, min(rows, lo + 5000))]

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, t0 = usage.ru_utime + usage.ru_stime, time.perf_counter()
    await pool.run(feed())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = usage.ru_utime + usage.ru_stime - cpu0, time.perf_counter() - t0
    await client.aclose()
    st = pool.statistics()
    span = (st.last_start or 0.0) - (st.first_start or 0.0)
    return {
        "sent": st.sent,
        "sustained_msg_s": round(st.started / span, 1) if span else None,
        "end_to_end_msg_s": round(st.sent / wall, 1),
        "client_max_in_any_second": max_in_window(sorted(starts)),
        "client_cpu_ms_per_msg": round(cpu * 1000 / max(st.started, 1), 3),
    }


def pool_run(latency_ms: float, rows: int, journal_kind: str, engine: str) -> dict[str, object]:
    """The send pool in this process (no CLI, no row preparation) against a sandbox."""
    sandbox = Sandbox(latency_ms=latency_ms).start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "journal.sqlite" if journal_kind == "disk" else Path(":memory:")
            journal = Journal(path)
            try:
                result = anyio.run(_pool_run, sandbox.url, rows, journal, engine)
            finally:
                journal.close()
        server = sandbox.stats()
    finally:
        sandbox.close()
    return result | {
        "journal": journal_kind,
        "engine": engine,
        "latency_ms": latency_ms,
        "server_max_in_any_second": server["max_in_window"],
        "throttled": server["throttled"],
    }


def _print_pool(r: dict[str, object]) -> None:
    print(
        f"  pool, {r['engine']} engine, journal {r['journal']:<6} @ {r['latency_ms']:.0f} ms: "
        f"sustained {r['sustained_msg_s']} msg/s, end to end {r['end_to_end_msg_s']} msg/s, "
        f"client max {r['client_max_in_any_second']}, server max "
        f"{r['server_max_in_any_second']} in any 1 s, throttled {r['throttled']}, "
        f"CPU {r['client_cpu_ms_per_msg']} ms/msg"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latencies", default="200,1000")
    parser.add_argument("--journal-rows", type=int, default=5_000)
    parser.add_argument("--engines", action="store_true")
    parser.add_argument(
        "--send-only", action="store_true", help="only the CLI send runs (no journal, baseline)"
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / f"send-{args.rows}.csv"
    write_rows(data, args.rows)
    latencies = [float(ms) for ms in args.latencies.split(",")]

    results = [send_run(CAMPAIGN, data, ms) for ms in latencies]
    for r in results:
        print(
            f"latency {r['latency_ms']:>6.0f} ms: {r['sent']:,}/{r['rows']:,} sent, "
            f"sustained {r['sustained_msg_s']} msg/s (at the server "
            f"{r['server_sustained_msg_s']}), end to end {r['end_to_end_msg_s']} msg/s, "
            f"server max {r['server_max_in_any_second']} in any 1 s, "
            f"server min {r['server_min_accepted_in_a_second']} accepted in a whole second "
            f"(second {r['server_slowest_second']}; {r['server_seconds_under_240']} under 240), "
            f"throttled {r['throttled']}, client CPU {r['client_cpu_ms_per_msg']} ms/msg"
        )
    if args.send_only:
        print(json.dumps({"runs": results}))
        return
    print(f"journal cost ({args.journal_rows:,} rows, same pool, journal on disk vs in memory):")
    pools = []
    slow = max(latencies)
    for kind in ("disk", "memory"):
        pools.append(pool_run(slow, args.journal_rows, kind, "http11"))
        _print_pool(pools[-1])
    if args.engines:
        print("HTTP engines (same pool, journal on disk):")
        for ms in latencies:
            for engine in ("http11", "aiohttp"):
                pools.append(pool_run(ms, args.journal_rows, "disk", engine))
                _print_pool(pools[-1])
    rates = {ms: baseline(ms, 25 if ms >= 1000 else 100) for ms in latencies}
    for ms, rate in rates.items():
        print(f"baseline (one blocking call after another) at {ms:.0f} ms: {rate:.1f} msg/s")
    print(
        json.dumps(
            {
                "runs": results,
                "pool_runs": pools,
                "baseline_msg_s": rates,
            }
        )
    )


if __name__ == "__main__":
    main()
