"""The budget of the render running in this context: steps, memory and a deadline."""

from __future__ import annotations

import time
from contextvars import ContextVar, Token
from dataclasses import dataclass

from campaigner.templating.bounds import MAX_BUILT, MAX_STEPS, TIME_LIMIT_S, LimitExceeded

__all__ = ("begin", "charge", "end")


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int = MAX_STEPS
    built: int = MAX_BUILT


_BUDGET: ContextVar[_Budget | None] = ContextVar("campaigner_render_budget", default=None)


def charge(steps: int, built: int = 0) -> None:
    budget = _BUDGET.get()
    if budget is None:  # constant folding while compiling: sizes are still checked
        return
    budget.steps -= steps
    budget.built -= built
    if budget.steps < 0:
        raise LimitExceeded(f"the template takes too long to render (over {MAX_STEPS} steps)")
    if budget.built < 0:
        raise LimitExceeded(f"the template builds too much (over {MAX_BUILT} characters in all)")
    if time.monotonic() > budget.deadline:
        raise LimitExceeded(f"the template takes too long to render (over {TIME_LIMIT_S:g} s)")


def begin() -> Token[_Budget | None]:
    """Start a render's budget in this context; hand the token to ``end``."""
    return _BUDGET.set(_Budget(deadline=time.monotonic() + TIME_LIMIT_S))


def end(token: Token[_Budget | None]) -> None:
    """Drop the budget ``begin`` started."""
    _BUDGET.reset(token)
