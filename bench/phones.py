"""Phone normalization speed: numbers/second of ``normalize_phones`` on generated lists.

    .venv/bin/python bench/phones.py [--rows 1000000] [--region CN] [--batch 50000] [--check 20000]

The list is mostly unique numbers from 30 countries (a few large, a long tail) in the formats
spreadsheets hold: +CC with spaces, CAMS-style digits, 00 prefixes, (+CC) with dashes,
national numbers with a trunk 0, a little full-width text, and about 5 % damage (letters,
scientific notation, two numbers in a cell, too short, empty). It times one call on the whole
column (cold: first call in the process, then warm) and the same column in batches, as the
preview reads it. ``--check`` compares a sample with the scalar ``normalize_phone``.
Goal: 1,000,000 numbers in at most about 1.5 s.
"""

from __future__ import annotations

import argparse
import random
import time

import polars as pl
import rphonenumbers

from campaigner import phones
from campaigner.phones import scalar

# (region, weight): a few big markets and a long tail
COUNTRIES = (
    ("IN", 12),
    ("ID", 10),
    ("BR", 9),
    ("MX", 7),
    ("US", 7),
    ("CN", 6),
    ("NG", 4),
    ("PH", 4),
    ("GB", 4),
    ("DE", 4),
    ("TR", 3),
    ("EG", 3),
    ("SA", 3),
    ("AE", 3),
    ("VN", 3),
    ("TH", 2),
    ("FR", 2),
    ("IT", 2),
    ("ES", 2),
    ("AR", 2),
    ("CO", 2),
    ("PK", 2),
    ("ZA", 1),
    ("KE", 1),
    ("MY", 1),
    ("SG", 1),
    ("HK", 1),
    ("PL", 1),
    ("NL", 1),
    ("RU", 1),
)
FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")


def make_numbers(n: int, seed: int = 11) -> list[str]:
    """n realistic cells, mostly unique, about 5 % of them damaged."""
    rng = random.Random(seed)
    bases = []
    for region, weight in COUNTRIES:
        mobile = rphonenumbers.PhoneNumberType.MOBILE
        example = rphonenumbers.example_number_for_type(region, mobile)
        nsn = rphonenumbers.national_significant_number(example)
        bases.append((example.country_code, nsn, weight))
    weights = [w for _, _, w in bases]
    cells = []
    for _ in range(n):
        code, nsn, _ = rng.choices(bases, weights)[0]
        keep = max(2, len(nsn) - 7)  # keep the operator prefix, randomize the subscriber part
        nsn = nsn[:keep] + "".join(rng.choice("0123456789") for _ in range(len(nsn) - keep))
        roll = rng.random()
        if roll < 0.30:
            cell = f"{code}{nsn}"
        elif roll < 0.55:
            cell = f"+{code} {nsn[:3]} {nsn[3:6]} {nsn[6:]}"
        elif roll < 0.70:
            cell = f"+{code}{nsn}"
        elif roll < 0.80:
            cell = f"00{code} {nsn}"
        elif roll < 0.88:
            cell = f"(+{code}) {nsn[:4]}-{nsn[4:]}"
        elif roll < 0.93:
            cell = f"0{nsn}"  # national: valid only for the default region's country
        elif roll < 0.95:
            cell = f"+{code} {nsn}".translate(FULL_WIDTH)
        else:
            cell = rng.choice(
                (
                    f"+{code} {nsn} ext 12",
                    f"{float(f'{code}{nsn}'):.5E}",
                    f"+{code}{nsn}; +{code}{nsn[::-1]}",
                    f"+{code} {nsn[:3]}",
                    "",
                    "n/a",
                )
            )
        cells.append(cell)
    return cells


def timed(values: pl.Series, region: str | None, batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(values), batch):
        phones.normalize_phones(values.slice(start, batch), region)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--region", default=None, help="default_region, e.g. GB")
    parser.add_argument("--batch", type=int, default=50_000, help="batch size as in preview")
    parser.add_argument("--check", type=int, default=20_000, help="rows compared with scalar")
    args = parser.parse_args()

    values = pl.Series("phone", make_numbers(args.rows), dtype=pl.String)
    print(f"{len(values):,} cells, {values.n_unique():,} distinct, region {args.region}")

    runs = []
    runs.append(("one call, cold", timed(values, args.region, len(values))))
    scalar.clear_caches()
    runs.append(("one call, warm", timed(values, args.region, len(values))))
    scalar.clear_caches()
    runs.append((f"batches of {args.batch:,}", timed(values, args.region, args.batch)))
    for label, seconds in runs:
        print(f"{label:22} {seconds:6.2f} s  {len(values) / seconds:>12,.0f} numbers/s")

    frame = phones.normalize_phones(values, args.region)
    errors = frame.get_column("phone_error").drop_nulls()
    print(f"rejected {len(errors):,} ({len(errors) / len(values):.1%}); most common reasons:")
    for reason, count in errors.value_counts(sort=True).head(6).iter_rows():
        print(f"  {count:>8,}  {reason}")

    if args.check:
        sample = random.Random(1).sample(range(len(values)), min(args.check, len(values)))
        mismatches = 0
        for index in sample:
            expected = phones.normalize_phone(values[index], args.region)
            got = frame.row(index)[:2]  # e164, phone_error
            if isinstance(expected, str):
                mismatches += got != (expected, None)
            else:
                mismatches += got != (None, expected.reason)
        print(f"scalar check: {mismatches} mismatches in {len(sample):,} rows")


if __name__ == "__main__":
    main()
