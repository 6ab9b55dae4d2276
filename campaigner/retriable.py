"""Which failed rows ``campaigner retry`` sends again: the retriable codes (defined once,
here), how ``--codes`` names codes, and the plan of one retry.

A row ends ``failed`` when CAMS refused it for good or when the send gave up on it after
``[send] max_attempts`` answers that provably were not accepted (throttling, 503). Only the
second kind is worth sending again as it is; a refusal of the row itself (a bad number,
a wrong template parameter, a recipient who blocked the account) fails again.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from campaigner.errors import ConfigError
from campaigner.journal import Journal
from campaigner.statuses import JournalState

__all__ = (
    "DEFAULT_RETRIABLE",
    "RetryPlan",
    "code_matches",
    "codes_expr",
    "failed_codes",
    "matching_rows",
    "parse_codes",
)

# Retried by default: flow control and the service's own trouble, never the row's fault.
# ``Prefix.*`` names ``Prefix`` and every ``Prefix.<anything>``.
DEFAULT_RETRIABLE: tuple[str, ...] = (
    "Throttling.*",  # Throttling, Throttling.User, Throttling.Api
    "System.*",  # System.LimitControl, System.Busy, ...
    "ServiceUnavailable.*",
    "InternalError.*",
    "HTTP429",  # answers without a readable body, by HTTP status
    "HTTP503",
)
# Never retried unless named with --codes (documentation; they simply are not above):
# InvalidParameter.*, Forbidden.*, and business refusals such as a blocked recipient.

_CODE = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*(?:\.\*)?")


def parse_codes(text: str | Sequence[str]) -> tuple[str, ...]:
    """``--codes`` (``CODE,Prefix.*,...`` or a list of them) checked: exact codes and
    ``Prefix.*``; anything else is a ``ConfigError`` naming the bad item."""
    items = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    codes = tuple(item.strip() for item in items if item.strip())
    if not codes:
        raise ConfigError("--codes needs at least one code, e.g. --codes Throttling.User,System.*")
    for code in codes:
        if not _CODE.fullmatch(code):
            raise ConfigError(
                f"--codes: {code!r} is not an error code or a Prefix.* pattern "
                "(letters, digits, '.', '_', '-')"
            )
    return codes


def _split(patterns: Iterable[str]) -> tuple[set[str], tuple[str, ...]]:
    exact, prefixes = set(), []
    for pattern in patterns:
        if pattern.endswith(".*"):
            exact.add(pattern[:-2])
            prefixes.append(pattern[:-1])  # "Throttling." matches Throttling.User
        else:
            exact.add(pattern)
    return exact, tuple(prefixes)


def code_matches(code: str | None, patterns: Iterable[str]) -> bool:
    """Whether a row's error code is one ``patterns`` name."""
    if not code:
        return False
    exact, prefixes = _split(patterns)
    return code in exact or code.startswith(prefixes)


def codes_expr(code: pl.Expr, patterns: Iterable[str]) -> pl.Expr:
    """``code_matches`` for a column (null codes match nothing)."""
    exact, prefixes = _split(patterns)
    matched = code.is_in(sorted(exact))
    for prefix in prefixes:
        matched = matched | code.str.starts_with(prefix)
    return matched.fill_null(False)


def _failed(state: object, code: object) -> bool:
    """A failed row, or one the send gave up on after answers that provably were not
    accepted (left pending with the last answer's code: Throttling.User, ...)."""
    return state == JournalState.FAILED or (state == JournalState.PENDING and bool(code))


def failed_codes(journal: Journal) -> Counter[str]:
    """A run's failed rows (``_failed``) by code (an empty code: ``?``)."""
    found: Counter[str] = Counter()
    for chunk in journal.iter_rows():
        for row in chunk:
            if _failed(row[1], row[5]):
                found[str(row[5] or "?")] += 1
    return found


def matching_rows(journal: Journal, codes: Sequence[str]) -> frozenset[int]:
    """The run's failed rows (``_failed``) whose code ``codes`` names."""
    return frozenset(
        int(str(row[0]))
        for chunk in journal.iter_rows()
        for row in chunk
        if _failed(row[1], row[5]) and code_matches(str(row[5] or ""), codes)
    )


@dataclass(frozen=True)
class RetryPlan:
    """One ``campaigner retry``: the rows of run ``of`` (original row numbers) to send again,
    because they failed with a code ``codes`` names."""

    of: Path
    rows: frozenset[int]
    codes: tuple[str, ...]
