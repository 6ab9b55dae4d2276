"""Preview speed: a 1,000,000-row CSV and a 100,000-row XLSX, end to end, report included.

    .venv/bin/python bench/preview.py [--rows 1000000] [--xlsx-rows 100000]

Prints rows/second and peak RSS of the child process for each run (the preview runs as
`campaigner preview` in a subprocess so its memory is measured alone), and peak RSS at a
quarter of the size to show that memory stays flat as rows grow. Goals (issue 2): CSV
≥ 100,000 rows/s, XLSX 100k rows ≤ 3 s, peak RSS ≤ 1 GiB and flat.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import openpyxl
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
# The sample campaign (WhatsApp template, two TemplateParams); every run passes --input.
CAMPAIGN = ROOT / "sample_data" / "whatsapp_template.toml"


def make_rows(n: int, seed: int = 7) -> pl.DataFrame:
    """Realistic, mostly unique recipients with a few percent of damage."""
    r = random.Random(seed)
    first = [
        "ana",
        "bruno",
        "chen",
        "dewi",
        "elif",
        "farah",
        "george",
        "hana",
        "ivan",
        "jun",
        "kofi",
        "lena",
        "mateo",
        "nadia",
        "omar",
        "priya",
        "quang",
        "rosa",
        "sami",
        "wei",
    ]
    phones = []
    for i in range(n):
        national = f"13{r.randrange(0, 10)}{i % 100_000_000:08d}"
        roll = r.random()
        if roll < 0.02:
            phones.append(f"{float('86' + national):.5E}")  # digits lost in Excel
        elif roll < 0.3:
            phones.append(f"+86 {national[:3]} {national[3:7]} {national[7:]}")
        elif roll < 0.4:
            phones.append(national)  # needs default_region
        else:
            phones.append("86" + national)
    return pl.DataFrame(
        {
            "phone": phones,
            "first_name": [first[i % len(first)] for i in range(n)],
            "last_name": [f"name{i % 997}" for i in range(n)],
            "coupon": [("" if i % 97 == 0 else f"C{i:07d}") for i in range(n)],
            "city": [("Singapore", "Shanghai", "Jakarta")[i % 3] for i in range(n)],
            "email": [f"user{i}@example.com" for i in range(n)],
            "segment": [("a", "b", "c", "d")[i % 4] for i in range(n)],
            "signup": ["2025-03-01"] * n,
        }
    )


def write_xlsx(frame: pl.DataFrame, path: Path) -> None:
    """As Excel users make them: shared strings, and some phones typed as numbers."""
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("recipients")
    sheet.append(frame.columns)
    for i, row in enumerate(frame.iter_rows()):
        cells = list(row)
        if i % 3 == 0 and cells[0].isdigit():
            cells[0] = int(cells[0])
        sheet.append(cells)
    book.save(path)


def run_child(cmd: list[str]) -> tuple[int, float, float, str, str]:
    """Run a command; exit code, wall seconds, its own peak RSS (MiB), stdout, stderr."""
    out, err = OUT / "stdout.txt", OUT / "stderr.txt"
    with out.open("w") as fo, err.open("w") as fe:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    return code, seconds, usage.ru_maxrss / 1024, out.read_text(), err.read_text()


def run_preview(campaign: Path, data: Path) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "campaigner",
        "preview",
        str(campaign),
        "--input",
        str(data),
        "--out",
        str(OUT / "reports"),
        "--json",
    ]
    code, seconds, peak_mib, stdout, stderr = run_child(cmd)
    if code not in (0, 3):
        sys.exit(f"preview failed ({code}):\n{stderr}")
    summary = json.loads(stdout)
    return {
        "rows": summary["rows"],
        "seconds": seconds,
        "rows_per_s": summary["rows"] / seconds,
        "peak_rss_mib": peak_mib,
        "would_send": summary["would_send"],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)

    results = {}
    for label, n in (("csv-quarter", args.rows // 4), ("csv", args.rows)):
        path = OUT / f"recipients-{n}.csv"
        if not path.exists():
            make_rows(n).write_csv(path)
        results[label] = run_preview(CAMPAIGN, path)
    xlsx = OUT / f"recipients-{args.xlsx_rows}.xlsx"
    if not xlsx.exists():
        write_xlsx(make_rows(args.xlsx_rows), xlsx)
    results["xlsx"] = run_preview(CAMPAIGN, xlsx)

    for label, r in results.items():
        print(
            f"{label:12} {r['rows']:>9,} rows  {r['seconds']:6.2f} s  "
            f"{r['rows_per_s']:>9,.0f} rows/s  peak RSS {r['peak_rss_mib']:,.0f} MiB"
        )
    growth = results["csv"]["peak_rss_mib"] / max(results["csv-quarter"]["peak_rss_mib"], 1)
    print(f"peak RSS at 4x the rows: x{growth:.2f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
