"""What holding rows back costs: the suppression screen, call fingerprints and --only-new.

    .venv/bin/python -u bench/screening.py [--rows 200000] [--suppressed 20000]

Prepares a list (``Plan.prepare``, the baseline) and screens it: against a suppression list
of ``--suppressed`` recipients read from receipts.sqlite, with every row's call fingerprint
(what each send journals), and with --only-new against a ledger holding half the rows.
Prints µs per row for each. Goals: the suppression screen well under the preparation's own
cost (it is vectorized); fingerprints and --only-new well under the 4 ms a row takes at 250/s.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import polars as pl
from kit import campaign_toml

from campaigner.config import load_campaign
from campaigner.inputs import open_input
from campaigner.journal import Journal
from campaigner.ledger import Ledger
from campaigner.receipts.store import ReceiptStore
from campaigner.rows import Deduper, Plan
from campaigner.screening import OnlyNew, Screen, Suppressions

CAMPAIGN = campaign_toml("bench")
BATCH = 5_000  # the send feed's batch size


def phone(i: int) -> str:
    return f"86139{i:08d}"


def timed(label: str, rows: int, work: list[pl.DataFrame], screen: Screen | None) -> None:
    started = time.perf_counter()
    held = 0
    for batch in work:
        out = batch if screen is None else screen.apply(batch)
        held += out.height - out.filter(out[" status"] == "would_send").height
    seconds = time.perf_counter() - started
    print(f"  {label:<34}{seconds * 1e6 / rows:>8.1f} µs/row   ({held:,} rows not sendable)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--suppressed", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "c.toml").write_text(CAMPAIGN)
        pl.DataFrame(
            {"phone": [phone(i) for i in range(args.rows)], "name": ["Ana"] * args.rows}
        ).write_csv(folder / "list.csv")
        plan = Plan(load_campaign(folder / "c.toml"))
        workspace = folder / "out"
        with ReceiptStore.open(workspace) as store:
            store.add_suppressions(
                (("8613800000000", phone(i * 7), "asked", None) for i in range(args.suppressed)),
                source="import",
            )

        started = time.perf_counter()
        deduper = Deduper()
        prepared = [
            plan.prepare(b, deduper) for b in open_input(folder / "list.csv").batches(BATCH)
        ]
        prep_s = time.perf_counter() - started
        print(f"{args.rows:,} rows in batches of {BATCH:,}")
        print(f"  {'prepare (baseline)':<34}{prep_s * 1e6 / args.rows:>8.1f} µs/row")

        timed(
            "suppression screen",
            args.rows,
            prepared,
            Screen(plan, suppressed=Suppressions(workspace)),
        )
        fingerprints = Screen(plan, fingerprints=True)
        timed("call fingerprints", args.rows, prepared, fingerprints)

        # A ledger holding every other row's call, as an earlier run would have left it.
        run = workspace / "bench-1"
        run.mkdir()
        journal = Journal.in_run(run)
        journal.set_meta({"name": "bench", "destination": "cams", "finished": "yes"})
        for batch in prepared[::2]:
            printed = fingerprints.apply(batch)
            rows = printed.select(" row", " to", " call_fingerprint").rows()
            journal.add_rows(
                [(r, "sent", to, None) for r, to, _ in rows], [(r, fp) for r, _, fp in rows]
            )
        journal.close()
        with Ledger(workspace) as ledger:
            started = time.perf_counter()
            ledger.sync("bench")
            per_row = (time.perf_counter() - started) * 1e6 / args.rows
            print(f"  {'ledger sync (once per run)':<34}{per_row:>8.1f} µs/row")
        only_new = Screen(plan, only_new=OnlyNew(workspace, "bench", "cams"))
        timed("--only-new (fingerprint + ledger)", args.rows, prepared, only_new)


if __name__ == "__main__":
    main()
