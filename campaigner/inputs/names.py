"""Header names and cell edges: what each input column is called, and what counts as an
invisible character at the edge of a cell (trimmed before rendering, stripped from names).
"""

from __future__ import annotations

import polars as pl

from campaigner import columns
from campaigner.limits import column_letter

__all__ = ("CELL_EDGE_CHARS", "header_name", "trim_cell", "unique_names", "unnamed_column")

# Characters that can sit at the edge of a cell without anyone seeing them: whitespace and
# invisible format characters (BOM, zero-width, direction marks, soft hyphen). Cells are
# trimmed of them before rendering, so none reaches a message; header names likewise.
CELL_EDGE_CHARS = "".join(chr(c) for c in range(0x3001) if chr(c).isspace()) + (
    "\u00ad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2060\u2061\u2062\u2063\u2064\u2066\u2067\u2068\u2069\u206a\u206b\u206c\u206d\u206e\u206f"
    "\ufeff"
)

_RESERVED = frozenset({columns.ROW, columns.ISSUE})


def trim_cell(cell: pl.Expr) -> pl.Expr:
    """A cell without whitespace or invisible characters at either end."""
    return cell.str.strip_chars(CELL_EDGE_CHARS)


def header_name(cell: str) -> str:
    """A header cell as a column name: without whitespace or invisible edges."""
    return cell.strip(CELL_EDGE_CHARS)


def unnamed_column(index: int) -> str:
    """The name of a column whose header cell is empty: ``column_<letter>`` (0-based)."""
    return f"column_{column_letter(index)}"


def unique_names(names: list[str]) -> list[str]:
    """Keep the first of each name; later duplicates become name_2, name_3, ..."""
    taken = set(_RESERVED)
    taken.update(names)
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        if name in seen or name in _RESERVED:
            n = 2
            while f"{name}_{n}" in taken:
                n += 1
            new = f"{name}_{n}"
            taken.add(new)
            out.append(new)
        else:
            seen.add(name)
            out.append(name)
    return out
