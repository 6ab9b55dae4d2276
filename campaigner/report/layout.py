"""The report's columns: every input column unchanged, then the result columns; and the
report rows of a prepared batch joined with send outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from campaigner.columns import ERROR, ROW, STATUS, TO, by_name, internal
from campaigner.statuses import RESULT_COLUMNS

__all__ = ("ReportLayout",)

# Result columns while a report batch is assembled, and send outcomes while joined to it:
# internal names, so that input columns of any name sit next to them untouched.
_RESULT = {c: ROW if c == "row" else internal("result:" + c) for c in RESULT_COLUMNS}
_OUTCOME = {c: internal("outcome:" + c) for c in RESULT_COLUMNS}
# The result columns a prepared batch itself fills (the rest come from outcomes).
_BASE = frozenset(
    ("row", "status", "To", "MessageId", "Code", "Message", "RequestId", "attempts", "error")
)


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
            # Result columns only outcomes fill (retried_in, ...): empty until they do.
            *(pl.lit(None, pl.String).alias(_RESULT[c]) for c in RESULT_COLUMNS if c not in _BASE),
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
