"""What a rate budget is: grants for one API of one account, shared with whoever else uses
the same budget (this process only, the processes of this host, or several hosts)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Protocol

import anyio

from campaigner.errors import BudgetUnavailable

__all__ = ("RateBudget", "budget_key", "take_grant")


class RateBudget(Protocol):
    """Grants for one API of one account. ``take`` is called right before a request starts."""

    @property
    def where(self) -> str:
        """The budget in words, for messages ("host-wide", "redis://host:6379/0")."""
        ...

    async def take(self) -> float:
        """A grant now (0.0: start the request at once, without yielding first) or the
        seconds to wait before asking again. ``BudgetUnavailable`` when the budget cannot
        answer (Redis went away): no grant."""
        ...

    async def aclose(self) -> None: ...


def budget_key(endpoint: str, access_key_id: str, action: str) -> str:
    """The name two processes share a budget under: a hash, so no key ID is ever written
    anywhere. The endpoint is part of it: two servers are two quotas (a simulator on
    another port is not CAMS)."""
    text = "\0".join((endpoint.rstrip("/"), access_key_id, action))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


async def take_grant(
    budget: RateBudget,
    *,
    unavailable: Callable[[str | None], None] = lambda _: None,
    retry_s: float = 0.5,
) -> None:
    """Wait for one grant. While the budget cannot answer, ``unavailable`` hears why (and
    None once it answers again) and the wait goes on: no request without a grant."""
    failing = False
    while True:
        try:
            wait = await budget.take()
        except BudgetUnavailable as exc:
            failing = True
            unavailable(str(exc))
            await anyio.sleep(retry_s)
            continue
        if failing:
            failing = False
            unavailable(None)
        if wait <= 0:
            return
        await anyio.sleep(wait)
