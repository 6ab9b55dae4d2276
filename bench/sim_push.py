"""The simulator's receipt pusher alongside a full-rate send: does the send path keep 250/s?

    .venv/bin/python -u bench/sim_push.py [--rows 15000] [--latency-ms 200]

Starts `campaigner receive` and `campaigner sandbox --callback-base` (each in its own
process), runs `campaigner send` of generated rows at 250/s to the simulator, then waits for
the pusher to drain. Prints, for a run with the pusher and one without: the send's sustained
rate, the fewest sends the simulator accepted in any whole second (after the first two), the
most it saw in any sliding second, throttled answers and the simulator process's CPU per
message (the pusher's cost, robust to a busy machine); then the pusher's receipts, posts,
largest batch, failed posts and given-up receipts, the receipts acknowledged per second while
sending, how long the drain took after the send, and whether the store holds every receipt.

Goals (issue 9): with the pusher on, the same ≥ 247.5 msg/s sustained and no whole second
under 240 accepted as without it; 0 throttles; 0 given up; every receipt stored.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from campaigner.receipts.harness import ReceiverProcess
from campaigner.sim.harness import KEY_ID, SECRET, Sandbox

ROOT = Path(__file__).resolve().parents[1]
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
    counts = [0] * int(times[-1] - times[0])
    for t in times:
        k = int(t - times[0])
        if k < len(counts):
            counts[k] += 1
    return counts


def send(sandbox: Sandbox, data: Path, out: Path) -> dict[str, object]:
    env = os.environ | {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
    }
    cmd = [sys.executable, "-m", "campaigner", "send", str(CAMPAIGN), "--input", str(data)]
    cmd += ["--endpoint", sandbox.url, "--out", str(out), "--yes", "--again", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"send failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    summary: dict[str, object] = json.loads(proc.stdout)
    return summary


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def figures(sandbox: Sandbox, summary: dict[str, object]) -> dict[str, object]:
    server = sandbox.stats()
    assert sandbox.proc is not None
    sent = int(server["accepted"])  # type: ignore[call-overload]
    accepted = sorted(float(str(a["received_monotonic"])) for a in sandbox.accepted())
    seconds = per_second(accepted)[2:]  # the first two seconds ramp up
    return {
        "sustained_msg_s": summary["achieved_rate"],
        "min_accepted_in_a_second": min(seconds) if seconds else None,
        "seconds_under_240": sum(1 for n in seconds if n < 240),
        "max_in_any_second": server["max_in_window"],
        "throttled": server["throttled"],
        "simulator_cpu_ms_per_msg": round(cpu_s(sandbox.proc.pid) * 1000 / max(sent, 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=15000)
    parser.add_argument("--latency-ms", type=float, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = folder / "rows.csv"
        write_rows(data, args.rows)

        with Sandbox(latency_ms=args.latency_ms) as plain:
            base = figures(plain, send(plain, data, folder / "plain"))
        print(f"without the pusher: {json.dumps(base)}", flush=True)

        workspace = folder / "reports"
        token = secrets.token_urlsafe(24)
        with ReceiverProcess(workspace, token) as receiver:
            extra = ["--callback-base", receiver.base_url, "--push-retry-s", "1,5,10"]
            env = {"CAMPAIGNER_CALLBACK_TOKEN": token}
            with Sandbox(latency_ms=args.latency_ms, extra=extra, env=env) as sandbox:
                started = time.monotonic()
                summary = send(sandbox, data, workspace)
                sent_at = time.monotonic()
                during = sandbox.stats()["push"]
                assert isinstance(during, dict)
                deadline = time.monotonic() + 600
                push = during
                while time.monotonic() < deadline:
                    found = sandbox.stats()["push"]
                    assert isinstance(found, dict)
                    push = found
                    if push["outstanding"] == 0:
                        break
                    time.sleep(0.2)
                drain_s = time.monotonic() - sent_at
                with_push = figures(sandbox, summary)  # CPU: the drain's posts included
        print(f"with the pusher:    {json.dumps(with_push)}", flush=True)
        with sqlite3.connect(workspace / "receipts.sqlite") as db:
            stored = db.execute("SELECT COUNT(*) FROM receipts").fetchone()[0]
            stored += db.execute("SELECT COUNT(*) FROM inbound").fetchone()[0]
        unique = int(push["scheduled"]) - int(push.get("duplicates", 0))
        print(
            "pusher: "
            + json.dumps(
                {
                    "receipts_scheduled": push["scheduled"],
                    "acknowledged": push.get("acknowledged", 0),
                    "posts": push.get("posts", 0),
                    "max_batch": push.get("max_batch", 0),
                    "posts_failed": push.get("posts_failed", 0),
                    "given_up": push.get("given_up", 0),
                    "acknowledged_per_s_while_sending": round(
                        int(during.get("acknowledged", 0)) / (sent_at - started), 1
                    ),
                    "drain_after_send_s": round(drain_s, 1),
                    "stored_rows": stored,
                    "distinct_receipts_pushed": unique,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
