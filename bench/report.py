"""Report writing speed: 1M x 17 CSV and 100k x 17 XLSX through ``ReportWriter``.

Prints the median of a few runs (the VM is noisy) in seconds and rows/s. Targets:
CSV 1,000,000 rows <= 1.5 s; XLSX 100,000 rows <= 1.0 s. ``--rustpy`` also times
rustpy-xlsxwriter writing the same 100k rows in one call, the alternative considered.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from campaigner.report import ReportWriter

BATCH = 50_000


def make_report(rows: int) -> pl.DataFrame:
    """A report-shaped frame: 8 input columns + the 9 result columns, some risky cells."""
    i = pl.col("i")
    return (
        pl.DataFrame({"i": pl.int_range(0, rows, eager=True)})
        .with_columns(
            phone=pl.lit("86138") + (i * 7919 % 100_000_000).cast(pl.String).str.zfill(8),
            name=pl.lit("Name ") + (i % 997).cast(pl.String),
            city=pl.when(i % 3 == 0).then(pl.lit("Zürich, CH")).otherwise(pl.lit("北京")),
            code=pl.lit("0044") + (i % 9999).cast(pl.String),
            p1=pl.lit('hello "world"'),
            p2=pl.when(i % 50 == 0).then(pl.lit("=1+2")).otherwise(pl.lit("plain text value")),
            p3=pl.when(i % 70 == 0).then(pl.lit("line1\nline2")).otherwise(None),
            lang=pl.lit("en_US"),
            row=i + 2,
            status=pl.lit("sent"),
            To=pl.lit("86138") + (i % 100_000_000).cast(pl.String),
            MessageId=pl.lit("msg_") + (i * 31).cast(pl.String) + pl.lit("abcdef0123456789"),
            Code=pl.lit("OK"),
            Message=pl.lit("success"),
            RequestId=pl.lit("8C5A3E2F-") + i.cast(pl.String).str.zfill(12),
            attempts=(i % 3 + 1).cast(pl.Int64),
            error=pl.when(i % 40 == 0).then(pl.lit("-timeout <x> & y")).otherwise(None),
        )
        .drop("i")
    )


def median_seconds(run: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def write_report(frame: pl.DataFrame, run_dir: Path, *, xlsx: bool) -> None:
    with ReportWriter(run_dir, frame.columns, xlsx=xlsx) as writer:
        for start in range(0, frame.height, BATCH):
            writer.write(frame.slice(start, BATCH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rustpy", action="store_true", help="also time rustpy-xlsxwriter")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        big = make_report(1_000_000)
        csv_s = median_seconds(lambda: write_report(big, run_dir, xlsx=False), args.repeat)
        small = make_report(100_000)
        csv_small = median_seconds(lambda: write_report(small, run_dir, xlsx=False), args.repeat)
        both = median_seconds(lambda: write_report(small, run_dir, xlsx=True), args.repeat)
        xlsx_s = max(both - csv_small, 1e-9)
        print(f"CSV  1,000,000 x 17: {csv_s:6.3f} s  {1_000_000 / csv_s:>12,.0f} rows/s")
        print(f"XLSX   100,000 x 17: {xlsx_s:6.3f} s  {100_000 / xlsx_s:>12,.0f} rows/s")
        print(f"     (CSV+XLSX together {both:.3f} s, of which CSV {csv_small:.3f} s)")
        if args.rustpy:
            import rustpy_xlsxwriter

            target = run_dir / "rustpy.xlsx"
            rust_s = median_seconds(
                lambda: rustpy_xlsxwriter.write_worksheet(small, str(target), sheet_name="r"),
                args.repeat,
            )
            print(f"rustpy-xlsxwriter 100,000 x 17 (one call): {rust_s:6.3f} s")


if __name__ == "__main__":
    main()
