"""The one did-you-mean: which known name a user most likely meant by an unknown one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ("closest",)


def closest(name: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The candidate ``name`` most likely means, compared case-insensitively, or None.

    ``cutoff`` is difflib's similarity ratio a match needs (1.0: equal but for case).
    """
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None
