"""Rate budgets: how many requests of one API one account may start, shared by this process,
this host's processes (the default) or every process naming one Redis; and the run lease
that keeps two hosts off one run (``lease``). Each budget applies the same grant rule
(``gcra``). Redis is imported only when a Redis budget is used."""

from __future__ import annotations

from campaigner.budget.base import RateBudget, budget_key, take_grant
from campaigner.budget.gcra import GrantRule, GrantState
from campaigner.budget.host import HostBudget
from campaigner.budget.local import LocalBudget
from campaigner.budget.spec import (
    DEFAULT_BUDGET,
    ENV_RATE_BUDGET,
    check_budget,
    chosen_budget,
    open_budget,
    open_lease,
)

__all__ = (
    "DEFAULT_BUDGET",
    "ENV_RATE_BUDGET",
    "GrantRule",
    "GrantState",
    "HostBudget",
    "LocalBudget",
    "RateBudget",
    "budget_key",
    "check_budget",
    "chosen_budget",
    "open_budget",
    "open_lease",
    "take_grant",
)
