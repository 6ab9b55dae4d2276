"""Names of the internal columns a batch carries next to the input columns.

An input column may be called anything, including a result column's name (``status``)
or something that looks internal (``__status``). The readers strip every header name
(``str.strip``), so no input column starts with whitespace; every internal name starts
with a space, so it can never collide with one. Internal names never reach a report:
``ReportLayout`` maps results to their report names (``status``, or ``status (result)``
when the input has a ``status``).

Input column names are also never used as ``pl.col`` strings, which polars reads as a
regular expression when they look like ``^…$``: use ``by_name``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import polars as pl
import polars.selectors as cs

__all__ = (
    "ERROR",
    "ISSUE",
    "PREFIX",
    "RENDER_ERROR",
    "ROW",
    "STATUS",
    "TO",
    "by_name",
    "internal",
)

PREFIX: Final = " "


def internal(name: str) -> str:
    """The internal column ``name``, which no input column can be called."""
    return PREFIX + name


ROW: Final = internal("row")  # the row number as a spreadsheet shows it
ISSUE: Final = internal("issue")  # why the reader found the row damaged, or null
STATUS: Final = internal("status")  # would_send / invalid / duplicate after preparation
TO: Final = internal("to")  # the normalized recipient (or the raw one when invalid)
ERROR: Final = internal("error")  # why the row is not sent, or null
RENDER_ERROR: Final = internal("render_error")  # the first template error of the row


def by_name(names: Iterable[str]) -> pl.Expr:
    """Exactly these columns, in this order, whatever characters their names hold."""
    return cs.by_name(list(names)).as_expr()
