"""Send speed against the simulator over loopback, and the one-call-at-a-time baseline.

    .venv/bin/python bench/send.py [--rows 20000] [--latencies 200,1000]

For each latency: starts `campaigner sandbox` in its own process (so the server's CPU is
not the client's), runs `campaigner send` on generated rows, and prints the achieved
messages/s (sustained start rate and end to end), the largest number of requests the
server saw in any sliding second, throttled answers, and the client's CPU milliseconds
per message (send phase). Then the journal's cost (the same pool with the journal on disk
vs in memory) and the baseline: the same calls made the way a script around the official
SDK would make them, one blocking call after another.

Goals (issue 3): ≥ 247.5 msg/s sustained at both latencies; server max ≤ 250 in any
second; 0 throttles; ≤ 1 ms client CPU per message.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

from campaigner.client import check_endpoint
from campaigner.signing import Credentials, format_date, sign_request

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
KEY_ID, SECRET = "testAccessKeyId", "testAccessKeySecret"
CAMPAIGN = """
name = "bench-send"
[send]
qps = 250
[message]
ChannelType = "whatsapp"
Type = "template"
From = "8613800000000"
To = "{{ phone }}"
TemplateCode = "744c4b5c79c9432497a075bdfca3****"
Language = "en"
[message.TemplateParams]
name = "{{ first_name | title }}"
code = "{{ coupon }}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_rows(path: Path, n: int) -> None:
    with path.open("w") as f:
        f.write("phone,first_name,coupon\n")
        for i in range(n):
            f.write(f"86139{i:08d},ana{i % 50},C{i:06d}\n")


class Sandbox:
    """`campaigner sandbox` in a child process."""

    def __init__(self, latency_ms: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "campaigner",
            "sandbox",
            "--port",
            str(self.port),
            "--latency-ms",
            str(latency_ms),
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("the simulator did not start")

    def stats(self) -> dict[str, object]:
        with urllib.request.urlopen(self.url + "/_sim/stats", timeout=5) as r:
            return dict(json.load(r))

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def send_run(campaign: Path, data: Path, latency_ms: float) -> dict[str, object]:
    sandbox = Sandbox(latency_ms)
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
            "--json",
        ]
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        wall = time.perf_counter() - started
        if proc.returncode not in (0, 3):
            raise SystemExit(f"send failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        summary = json.loads(proc.stdout)
        server = sandbox.stats()
    finally:
        sandbox.close()
    return {
        "latency_ms": latency_ms,
        "rows": summary["rows"],
        "sent": summary["by_status"].get("sent", 0),
        "sustained_msg_s": summary["achieved_rate"],
        "end_to_end_msg_s": round(summary["by_status"].get("sent", 0) / summary["send_seconds"], 1),
        "server_max_in_any_second": server["max_in_window"],
        "throttled": server["throttled"],
        "client_cpu_ms_per_msg": summary["cpu_ms_per_message"],
        "command_wall_s": round(wall, 1),
    }


def baseline(latency_ms: float, calls: int) -> float:
    """One blocking signed call after another, as a script around the SDK would do."""
    sandbox = Sandbox(latency_ms)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--latencies", default="200,1000")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    campaign = OUT / "bench-send.toml"
    campaign.write_text(CAMPAIGN)
    data = OUT / f"send-{args.rows}.csv"
    write_rows(data, args.rows)

    results = [send_run(campaign, data, float(ms)) for ms in args.latencies.split(",")]
    for r in results:
        print(
            f"latency {r['latency_ms']:>6.0f} ms: {r['sent']:,}/{r['rows']:,} sent, "
            f"sustained {r['sustained_msg_s']} msg/s, end to end {r['end_to_end_msg_s']} msg/s, "
            f"server max {r['server_max_in_any_second']} in any 1 s, "
            f"throttled {r['throttled']}, client CPU {r['client_cpu_ms_per_msg']} ms/msg"
        )
    rates = {
        ms: baseline(float(ms), 25 if float(ms) >= 1000 else 100)
        for ms in args.latencies.split(",")
    }
    for ms, rate in rates.items():
        print(f"baseline (one blocking call after another) at {ms} ms: {rate:.1f} msg/s")
    print(json.dumps({"runs": results, "baseline_msg_s": rates}))


if __name__ == "__main__":
    main()
