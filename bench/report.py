"""Report writing speed: 1M x 17 CSV and 100k x 17 XLSX through ``ReportWriter``.

Prints the median of a few runs (the VM is noisy) in seconds and rows/s. Targets:
CSV 1,000,000 rows <= 1.5 s; XLSX 100,000 rows <= 1.0 s. ``--rustpy`` also times
rustpy-xlsxwriter writing the same 100k rows in one call, the alternative considered.

``--wide`` instead writes 3-row reports 1,000 to 16,384 columns wide (Excel's limit), each
in a child process, and prints its time and peak RSS (a child taking longer than
``--timeout`` seconds is killed and reported so). Time and memory should grow with the
number of cells, not faster.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
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


WIDE_COLUMNS = (1_000, 2_000, 4_000, 16_384)
WIDE_ROWS = 3


def make_wide(columns: int, rows: int) -> pl.DataFrame:
    """Text cells like an export with many attribute columns, some risky or multi-line."""
    return pl.DataFrame(
        {
            f"attr {j}": [
                ("=x" if (i + j) % 97 == 0 else "line\nbreak" if (i + j) % 89 == 0 else "")
                + f"value {i}-{j}"
                for i in range(rows)
            ]
            for j in range(columns)
        }
    )


def wide_child(columns: int, fmt: str) -> None:
    """Write one wide report; print seconds and this process's peak RSS in MiB."""
    frame = make_wide(columns, WIDE_ROWS)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        write_report(frame, Path(tmp), xlsx=fmt == "xlsx")
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"{seconds:.2f} {peak:.0f}")


def wide(timeout: float) -> None:
    for columns in WIDE_COLUMNS:
        for fmt in ("csv", "xlsx"):
            label = f"{columns:>6,} x {WIDE_ROWS} {fmt.upper():<4}"
            try:
                child = subprocess.run(
                    [sys.executable, __file__, "--wide-child", str(columns), fmt],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                    check=True,
                )
            except subprocess.TimeoutExpired:
                print(f"{label}: killed after {timeout:.0f} s")
                continue
            seconds, peak = child.stdout.split()
            print(f"{label}: {float(seconds):6.2f} s, peak RSS {peak:>5} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rustpy", action="store_true", help="also time rustpy-xlsxwriter")
    parser.add_argument("--wide", action="store_true", help="time wide 3-row reports instead")
    parser.add_argument("--timeout", type=float, default=120, help="per wide report, seconds")
    parser.add_argument(
        "--wide-child", nargs=2, metavar=("COLUMNS", "FORMAT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.wide_child:
        wide_child(int(args.wide_child[0]), args.wide_child[1])
        return
    if args.wide:
        wide(args.timeout)
        return
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
