"""Report rebuild with receipts: `campaigner report RUN_DIR` on a 1,000,000-row run whose
workspace holds 3,000,000 status receipts for it (and 100,000 replies).

    .venv/bin/python -u bench/report_rebuild.py [--rows 1000000] [--foreign 0] [--repeat 2]

Builds once (reused while bench/out/report_rebuild/ matches the arguments): a CSV list, a run
folder whose journal has every row sent (send times spread at 250/s), and receipts.sqlite
written through ReceiptStore: per row Sent + Delivered + Read (3 % Sent + Delivered +
Failed), replies from 10 % of the recipients, and ``--foreign`` receipts of MessageIds of
no run. Then times the rebuild (report.csv + the funnel in summary.json) with the receipts
and without them (receipts.sqlite moved aside), median of ``--repeat``, wall and CPU seconds
(on a shared machine the CPU figure is the steadier one). Goal (issue 9): ≤ 10 s with the
receipts, cheap enough for cron every minute.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

from kit import campaign_toml

from campaigner.api import ReportOptions, report
from campaigner.config import load_campaign
from campaigner.journal import Journal, Outcome
from campaigner.receipts.parse import Inbound, Receipt
from campaigner.receipts.store import RECEIPTS_NAME, ReceiptStore
from campaigner.runs import campaign_meta, create_run
from campaigner.statuses import JournalState

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "report_rebuild"
BUSINESS = "8613800000000"
CAMPAIGN = campaign_toml("rebuild-bench")
CHUNK = 100_000
# A pushed receipt as the docs show one (about 330 bytes).
RAW = (
    '{{"Status":"{status}","MsgFrameType":"template","TaskId":"{mid}","From":"8613800000000",'
    '"Timestamp":{ts},"OriginPhoneNumber":"{to}","TemplateCode":"820561547132813184",'
    '"Type":"TEMPLATE","Language":"id","TemplateName":"wa_spring_sale_v_0_0_3","To":"{to}",'
    '"MessageId":"{mid}","ConversationId":"c0b5d1c7e4f24a6b9a3e","PricingCategory":"marketing"}}'
)
T = TypeVar("T")


def phone(i: int) -> str:
    return f"86139{i:08d}"


def build(rows: int, foreign: int) -> Path:
    """The workspace with its run folder; the run folder is returned."""
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    with (OUT / "list.csv").open("w", encoding="utf-8") as f:
        f.write("phone,name\n")
        f.writelines(f"{phone(i)},Name {i % 997}\n" for i in range(rows))
    (OUT / "c.toml").write_text(CAMPAIGN, encoding="utf-8")
    campaign = load_campaign(OUT / "c.toml")
    workspace = OUT / "workspace"
    run_dir, lock = create_run(workspace, campaign.name, campaign_meta(campaign, OUT / "list.csv"))
    journal = Journal.in_run(run_dir)
    try:
        journal.set_meta({"report_xlsx": "no", "finished": "yes"})
        numbers = range(2, rows + 2)
        journal.add_rows((r, JournalState.PENDING, phone(r - 2), None) for r in numbers)
        journal.apply(list(numbers), [])
        journal.apply(
            [], [Outcome(r, JournalState.SENT, 1, f"mid{r:012d}", "OK", "OK", "q") for r in numbers]
        )
    finally:
        journal.close()
        lock.release()
    start = time.time() - rows / 250 - 3600
    with sqlite3.connect(run_dir / "journal.sqlite") as db:  # send times as a 250/s run has them
        db.execute("UPDATE rows SET intent_at = ? + row / 250.0", (start,))
    sent_ms = {r: int((start + r / 250) * 1000) for r in range(2, rows + 2)}

    def receipt(mid: str, status: str, ts: int, to: str, code: str | None = None) -> Receipt:
        # The raw JSON is stored with every receipt: as long as a real one, so the store's
        # pages hold as few receipts as they would.
        description = "131026:Receiver is incapable of receiving this message" if code else None
        raw = RAW.format(status=status, ts=ts, to=to, mid=mid)
        return Receipt(mid, status, ts, code, description, to, BUSINESS, raw)

    def receipts() -> Iterator[Receipt]:
        for r in range(2, rows + 2):
            mid, t, to = f"mid{r:012d}", sent_ms[r], phone(r - 2)
            yield receipt(mid, "Sent", t + 500, to)
            yield receipt(mid, "Delivered", t + 1500, to)
            if r % 33:
                yield receipt(mid, "Read", t + 9000, to)
            else:
                yield receipt(mid, "Failed", t + 2000, to, "131026")
        for i in range(foreign):
            yield receipt(f"other{i:012d}", "Read", 0, phone(i))

    def replies() -> Iterator[Inbound]:
        for r in range(2, rows + 2, 10):
            yield Inbound(f"in{r}", phone(r - 2), BUSINESS, "TEXT", f"reply {r}", None,
                          sent_ms[r] + 60_000, "{}")  # fmt: skip

    with ReceiptStore.open(workspace) as store:
        for batch in _chunks(receipts()):
            store.add_receipts(batch)
        for inbound_batch in _chunks(replies()):
            store.add_inbound(inbound_batch)
    return run_dir


def _chunks(items: Iterator[T]) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def rebuild_seconds(run_dir: Path, repeat: int) -> tuple[float, float, dict[str, object]]:
    """Median wall and CPU seconds of ``campaigner report RUN_DIR``, and its funnel."""
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), _cpu_seconds()
        result = report(ReportOptions(run_dir))
        walls.append(time.perf_counter() - started)
        cpus.append(_cpu_seconds() - cpu)
    assert result is not None
    funnel = result.tally.delivery.as_dict() if result.tally.delivery else {}
    return statistics.median(walls), statistics.median(cpus), funnel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--foreign", type=int, default=0, help="receipts of no run, besides")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    marker = OUT / "built.json"
    wanted = {"rows": args.rows, "foreign": args.foreign, "raw": len(RAW)}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        [run_dir] = [p for p in (OUT / "workspace").iterdir() if p.is_dir()]
        print(f"reusing {run_dir}")
    else:
        started = time.perf_counter()
        run_dir = build(args.rows, args.foreign)
        marker.write_text(json.dumps(wanted))
        print(f"built in {time.perf_counter() - started:.1f} s: {run_dir}")
    store = run_dir.parent / RECEIPTS_NAME
    with sqlite3.connect(store) as db:
        count = db.execute("SELECT count(*) FROM receipts").fetchone()[0]
    with_receipts, cpu, funnel = rebuild_seconds(run_dir, args.repeat)
    print(
        f"rebuild, {args.rows:,} rows, {count:,} receipts in the store: {with_receipts:.2f} s "
        f"(CPU {cpu:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    print(f"  funnel: {json.dumps(funnel)}")
    aside = OUT / "aside"
    aside.mkdir(exist_ok=True)
    moved = [p for p in run_dir.parent.iterdir() if p.name.startswith(RECEIPTS_NAME)]
    for p in moved:
        p.rename(aside / p.name)
    try:
        without, cpu_without, _ = rebuild_seconds(run_dir, args.repeat)
    finally:
        for p in moved:
            (aside / p.name).rename(p)
    print(
        f"rebuild without receipts.sqlite: {without:.2f} s (CPU {cpu_without:.2f} s): the "
        f"receipts add {with_receipts - without:.2f} s ({cpu - cpu_without:.2f} s of CPU)"
    )
    print("goal: <= 10 s with the receipts")


if __name__ == "__main__":
    main()
