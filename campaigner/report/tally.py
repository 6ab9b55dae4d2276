"""A report's running tally: rows by status, failure reasons with their first rows, and
CAMS answer codes, counted batch by batch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from campaigner.report.funnel import Funnel
from campaigner.statuses import Status

__all__ = ("Tally",)

_MAX_EXAMPLE_ROWS = 5


@dataclass
class Tally:
    """Counts by status and invalid reasons with their first rows, batch by batch."""

    rows: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    # (status, reason) -> [count, first rows]
    reasons: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    by_code: dict[str, int] = field(default_factory=dict)
    delivery: Funnel | None = None  # a run's delivery funnel (no preview has one)

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
            **({} if self.delivery is None else {"delivery": self.delivery.as_dict()}),
        }
