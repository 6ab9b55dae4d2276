"""Which budget a command uses: ``--rate-budget`` (or ``CAMPAIGNER_RATE_BUDGET``) in words to
a budget object. ``host`` (the default) is shared by this host's processes, ``local`` by this
process only, ``redis://HOST:PORT/DB`` by every process that names the same Redis."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from campaigner.budget.base import RateBudget, budget_key
from campaigner.budget.gcra import GrantRule
from campaigner.budget.host import HostBudget, state_dir
from campaigner.budget.local import LocalBudget
from campaigner.errors import RateBudgetError

if TYPE_CHECKING:
    from campaigner.budget.lease import RunLease

__all__ = (
    "DEFAULT_BUDGET",
    "ENV_RATE_BUDGET",
    "check_budget",
    "chosen_budget",
    "open_budget",
    "open_lease",
)

ENV_RATE_BUDGET = "CAMPAIGNER_RATE_BUDGET"
HOST, LOCAL = "host", "local"
DEFAULT_BUDGET = HOST
_REDIS_SCHEMES = ("redis", "rediss")


def check_budget(spec: str, *, source: str = "--rate-budget") -> str:
    """``spec`` tidied, or ``RateBudgetError`` saying what ``source`` allows."""
    spec = spec.strip()
    if spec in (HOST, LOCAL):
        return spec
    parts = urlsplit(spec)
    try:
        port = parts.port
    except ValueError:
        port = -1
    db = parts.path.lstrip("/")
    if (
        parts.scheme in _REDIS_SCHEMES
        and parts.hostname
        and port != -1
        and (db == "" or db.isdigit())
        and not parts.query
        and not parts.fragment
    ):
        return spec
    shown = spec.split("@")[-1]  # never echo a password
    raise RateBudgetError(f"{source} must be host, local or redis://HOST:PORT/DB (got {shown!r})")


def chosen_budget(value: str | None, environ: Mapping[str, str]) -> str:
    """The budget a command uses: its option, else ``CAMPAIGNER_RATE_BUDGET``, else host-wide."""
    if value:
        return check_budget(value)
    return check_budget(
        environ.get(ENV_RATE_BUDGET, "").strip() or DEFAULT_BUDGET, source=ENV_RATE_BUDGET
    )


def is_redis(spec: str) -> bool:
    return urlsplit(spec).scheme in _REDIS_SCHEMES


def open_budget(
    spec: str,
    *,
    endpoint: str,
    access_key_id: str,
    action: str,
    limit: int,
    say: Callable[[str], None],
) -> RateBudget:
    """The budget for ``action`` calls of one account at one endpoint, ``limit`` per second."""
    spec = check_budget(spec)
    rule = GrantRule(limit=limit)
    key = budget_key(endpoint, access_key_id, action)
    if spec == LOCAL:
        return LocalBudget(rule)
    if is_redis(spec):
        from campaigner.budget.redis import RedisBudget

        return RedisBudget(spec, key, rule)
    folder = state_dir()
    if folder is not None:
        try:
            return HostBudget(folder / "budgets" / f"{key}.budget", rule)
        except RateBudgetError as exc:
            say(f"warning: {exc}; the rate budget is this process's alone")
    else:
        say("warning: no home folder for the host-wide rate budget; it is this process's alone")
    return LocalBudget(rule)


def open_lease(spec: str, run_name: str, created: str = "") -> RunLease | None:
    """The run lease when the budget is in Redis (None otherwise: the run folder's lock is
    enough on one host). ``created`` tells apart runs whose folders share a name."""
    spec = check_budget(spec)
    if not is_redis(spec):
        return None
    from campaigner.budget.lease import RunLease
    from campaigner.budget.redis import connect, redis_where

    return RunLease(connect(spec), redis_where(spec), run_name, created=created)
