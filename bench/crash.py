"""The large crash campaign: many SIGKILLs, resume, reconcile; then count what went wrong.

    .venv/bin/python bench/crash.py [--rows 10000] [--kills 100] [--targeted 10]

Sends to `campaigner sandbox` (a separate process whose log of accepted sends is the truth
about what recipients received), kills `campaigner send` with SIGKILL at random moments
`--kills` times, resuming each time; then `--targeted` kills at each crash point on fresh
runs; then SIGTERMs. Every run is finished with reconcile + resume and checked like
Jepsen's total-queue checker. Prints one line per phase and a JSON summary: kills survived,
input vs report rows, server-side duplicates, lost acknowledgements, unexpected receipts,
the most `unknown` rows one kill left, and `unknown` after reconcile.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sqlite3
import time
from pathlib import Path

from campaigner.crashpoints import POINTS
from campaigner.sim.crashcheck import check, run_dir, write_campaign
from campaigner.sim.harness import Sandbox, campaigner, run, send_args

OUT = Path(__file__).resolve().parent / "out" / "crash"


def unknown_in_journal(folder: Path) -> int:
    db = sqlite3.connect(folder / "journal.sqlite")
    try:
        row = db.execute(
            "SELECT count(*) FROM rows WHERE state IN ('intent', 'unknown')"
        ).fetchone()
        return int(row[0])
    finally:
        db.close()


def settle(campaign: Path, out: Path, sandbox: Sandbox, folder: Path) -> None:
    for _ in range(5):
        code, _, err = run("reconcile", str(folder), "--endpoint", sandbox.url, "--grace-s", "0")
        if code not in (0, 3):
            raise SystemExit(f"reconcile failed: {err[-500:]}")
        code, _, err = run(*send_args(campaign, out, sandbox.url, folder))
        if code not in (0, 3):
            raise SystemExit(f"resume failed: {err[-500:]}")
        if unknown_in_journal(folder) == 0:
            return


def random_kills(rows: int, kills: int, seed: int) -> dict[str, object]:
    folder_root = OUT / "random"
    campaign = write_campaign(folder_root / "c", rows)
    out = folder_root / "out"
    rng = random.Random(seed)
    worst_unknown = 0
    survived = 0
    with Sandbox(folder_root / "accepted.jsonl", latency_ms=100) as sandbox:
        resume = None
        for _ in range(kills):
            proc = campaigner(*send_args(campaign, out, sandbox.url, resume, again=True))
            time.sleep(rng.uniform(0.4, 1.6))
            finished = proc.poll() is not None
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            resume = resume or run_dir(out)
            if resume is not None:
                # Rows in intent right after a kill: what this kill may have left unknown.
                db = sqlite3.connect(resume / "journal.sqlite")
                in_flight = db.execute("SELECT count(*) FROM rows WHERE state='intent'").fetchone()
                db.close()
                worst_unknown = max(worst_unknown, int(in_flight[0]))
            survived += 1
            if finished:
                break
        assert resume is not None
        settle(campaign, out, sandbox, resume)
        verdict = check(resume / "report.csv", rows, sandbox.accepted())
    return {"kills": survived, "max_unknown_per_kill": worst_unknown, **verdict.__dict__}


def targeted_kills(rows: int, per_point: int) -> dict[str, object]:
    results: dict[str, object] = {}
    for point in POINTS:
        bad = 0
        for n in range(per_point):
            folder_root = OUT / f"{point}-{n}"
            campaign = write_campaign(folder_root / "c", rows)
            out = folder_root / "out"
            with Sandbox(folder_root / "accepted.jsonl", latency_ms=30) as sandbox:
                spec = f"{point}:{1 + n * 7}" if point != "report_write" else point
                run(
                    *send_args(campaign, out, sandbox.url, None, again=True),
                    env={"CAMPAIGNER_CRASH_AT": spec},
                )
                folder = run_dir(out)
                if folder is None:
                    bad += 1
                    continue
                settle(campaign, out, sandbox, folder)
                verdict = check(folder / "report.csv", rows, sandbox.accepted())
                bad += 0 if verdict.ok and not verdict.statuses.get("unknown") else 1
        results[point] = {"kills": per_point, "failed_checks": bad}
    return results


def sigterms(rows: int, count: int) -> dict[str, object]:
    unknown_after_term = 0
    bad = 0
    for n in range(count):
        folder_root = OUT / f"sigterm-{n}"
        campaign = write_campaign(folder_root / "c", rows)
        out = folder_root / "out"
        with Sandbox(folder_root / "accepted.jsonl", latency_ms=100) as sandbox:
            proc = campaigner(*send_args(campaign, out, sandbox.url, None, again=True))
            time.sleep(1.0 + n * 0.1)
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=60)
            folder = run_dir(out)
            assert folder is not None
            unknown_after_term += unknown_in_journal(folder)
            settle(campaign, out, sandbox, folder)
            verdict = check(folder / "report.csv", rows, sandbox.accepted())
            bad += 0 if verdict.ok else 1
    return {"sigterms": count, "unknown_after_sigterm": unknown_after_term, "failed_checks": bad}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--targeted", type=int, default=10, help="kills per crash point")
    parser.add_argument("--sigterms", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    summary: dict[str, object] = {}
    summary["random"] = r = random_kills(args.rows, args.kills, args.seed)
    print(
        f"random kills: {r['kills']} kills, report {r['report_rows']}/{r['input_rows']} rows "
        f"(missing {r['missing_rows']}, repeated {r['repeated_rows']}), duplicates "
        f"{r['duplicates']}, lost {r['lost']}, unexpected {r['unexpected']}, max unknown per "
        f"kill {r['max_unknown_per_kill']}, unknown after reconcile "
        f"{r['statuses'].get('unknown', 0)}"  # type: ignore[union-attr]
    )
    summary["targeted"] = t = targeted_kills(600, args.targeted)
    for point, result in t.items():
        print(f"targeted kill at {point}: {result}")
    summary["sigterm"] = s = sigterms(600, args.sigterms)
    print(f"SIGTERM: {s}")
    summary["seconds"] = round(time.monotonic() - started)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
