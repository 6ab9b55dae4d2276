"""A run's folder, its report columns and its running tally. Shared by preview and send."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, TO, by_name, internal
from campaigner.outcomes import RESULT_COLUMNS, Status

__all__ = ("ReportLayout", "Tally", "new_run_dir")

_MAX_EXAMPLE_ROWS = 5
# Result columns while a report batch is assembled, and send outcomes while joined to it:
# internal names, so that input columns of any name sit next to them untouched.
_RESULT = {c: ROW if c == "row" else internal("result:" + c) for c in RESULT_COLUMNS}
_OUTCOME = {c: internal("outcome:" + c) for c in RESULT_COLUMNS}


def new_run_dir(out: Path, name: str, now: datetime | None = None) -> Path:
    """``<out>/<name>-<UTC timestamp>/``, created with private permissions."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{name}-{stamp}"
    candidate, n = base, 1
    while True:
        try:
            candidate.mkdir(mode=0o700)
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


@dataclass(frozen=True)
class ReportLayout:
    """Report columns: every input column unchanged, then the result columns.

    A result column whose name the input already uses gets a ``(result)`` suffix so that
    no input column is ever renamed.
    """

    input_columns: tuple[str, ...]
    result_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_input(cls, columns: Sequence[str]) -> ReportLayout:
        taken = set(columns)
        names = {}
        for col in RESULT_COLUMNS:
            name = col
            while name in taken:
                name = f"{name} (result)"
            names[col] = name
            taken.add(name)
        return cls(tuple(columns), names)

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.input_columns, *(self.result_names[c] for c in RESULT_COLUMNS))

    def frame(self, prepared: pl.DataFrame, outcomes: pl.DataFrame | None = None) -> pl.DataFrame:
        """Report rows for a prepared batch, joined with send outcomes when given.

        ``outcomes`` has the internal ROW column plus any of status, MessageId, Code,
        Message, RequestId, attempts, error; its non-null values win over the preparation's.
        """
        base = prepared.select(
            by_name(self.input_columns),
            ROW,
            pl.col(STATUS).alias(_RESULT["status"]),
            pl.col(TO).alias(_RESULT["To"]),
            pl.lit(None, pl.String).alias(_RESULT["MessageId"]),
            pl.lit(None, pl.String).alias(_RESULT["Code"]),
            pl.lit(None, pl.String).alias(_RESULT["Message"]),
            pl.lit(None, pl.String).alias(_RESULT["RequestId"]),
            pl.lit(0, pl.Int64).alias(_RESULT["attempts"]),
            pl.col(ERROR).alias(_RESULT["error"]),
        )
        if outcomes is not None and not outcomes.is_empty():
            updates = [c for c in outcomes.columns if c != ROW]
            theirs = outcomes.rename({c: _OUTCOME[c] for c in updates})
            joined = base.join(theirs, on=ROW, how="left", maintain_order="left")
            base = joined.with_columns(
                pl.coalesce(_OUTCOME[c], _RESULT[c]).alias(_RESULT[c]) for c in updates
            ).drop(_OUTCOME[c] for c in updates)
        return base.select(
            by_name(self.input_columns),
            *(pl.col(_RESULT[c]).alias(self.result_names[c]) for c in RESULT_COLUMNS),
        )


@dataclass
class Tally:
    """Counts by status and invalid reasons with their first rows, batch by batch."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    # (status, reason) -> [count, first rows]
    reasons: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)

    def add(self, report: pl.DataFrame, names: Mapping[str, str]) -> None:
        """Count a report batch; ``names`` maps result columns to their report names."""
        status_col, error_col, row_col, code_col = (
            names["status"],
            names["error"],
            names["row"],
            names["Code"],
        )
        self.rows += report.height
        for status, count in report[status_col].value_counts().iter_rows():
            self.by_status[status] = self.by_status.get(status, 0) + count
        unsent = report.filter(
            pl.col(status_col).is_in([Status.INVALID.value, Status.FAILED.value])
        ).select(
            pl.col(status_col).alias("status"),
            # A failed row's reason is CAMS's answer; an invalid row's is our check.
            pl.coalesce(
                error_col, pl.concat_str(code_col, pl.lit(": "), pl.col(names["Message"]))
            ).alias("reason"),
            pl.col(row_col).alias("row"),
        )
        if not unsent.is_empty():
            groups = unsent.group_by("status", "reason", maintain_order=True).agg(
                pl.len().alias("n"), pl.col("row").head(_MAX_EXAMPLE_ROWS).alias("rows")
            )
            for status, reason, n, rows in groups.iter_rows():
                entry = self.reasons.setdefault((status, str(reason)), [0, []])
                entry[0] += n
                entry[1] = (entry[1] + list(rows))[:_MAX_EXAMPLE_ROWS]
        codes = report.filter(pl.col(code_col).is_not_null())
        if not codes.is_empty():
            for code, count in codes[code_col].value_counts().iter_rows():
                self.by_code[code] = self.by_code.get(code, 0) + count

    def count(self, status: Status) -> int:
        return self.by_status.get(status.value, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "by_status": dict(sorted(self.by_status.items())),
            "by_code": dict(sorted(self.by_code.items())),
            "invalid_reasons": [
                {"status": status, "reason": r, "count": c, "first_rows": rows}
                for (status, r), (c, rows) in sorted(self.reasons.items(), key=lambda kv: -kv[1][0])
            ],
        }


def private_umask() -> None:
    """Reports and journals hold phone numbers: files default to owner-only."""
    os.umask(0o077)
