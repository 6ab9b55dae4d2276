"""The in-process budget: the grant rule over state in memory, shared by the callers of one
object (``--rate-budget local``; also the baseline the shared budgets are measured against)."""

from __future__ import annotations

import time
from collections.abc import Callable

from campaigner.budget.gcra import GrantRule, GrantState

__all__ = ("LocalBudget",)


class LocalBudget:
    def __init__(self, rule: GrantRule, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._state = GrantState()
        self._clock = clock

    @property
    def where(self) -> str:
        return "this process"

    async def take(self) -> float:
        return self._state.take(self.rule, self._clock())

    async def aclose(self) -> None:
        pass
