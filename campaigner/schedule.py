"""``send --at``: the time a scheduled run sends, and the wait until then, which
``campaigner cancel`` (from another process) or Ctrl-C/SIGTERM ends within a second."""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import anyio

from campaigner.errors import ConfigError, RunCancelled
from campaigner.journal import Journal
from campaigner.runstate import (
    META_NOT_ATTEMPTED_REASON,
    META_STATE,
    RunState,
)

__all__ = (
    "CANCELLED_BY_COMMAND",
    "cancel_before_time",
    "cancel_values",
    "cancelled_error",
    "check_at",
    "parse_at",
    "wait_for_start",
)

_POLL_S = 0.5  # how often the waiting run looks for a cancel; well within a second
CANCELLED_BY_COMMAND = "campaigner cancel"


def parse_at(text: str) -> datetime:
    """ISO 8601 (``2026-12-01T09:00+08:00``, ``2026-12-01 09:00``) to an aware time; a time
    without an offset is local time. Not a time, or in the past: ``ConfigError``."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--at {text!r} is not an ISO 8601 time, e.g. 2026-12-01T09:00+08:00 "
            "(without an offset it is local time)"
        ) from None
    return check_at(at)


def check_at(at: datetime) -> datetime:
    """``at`` as an aware time (naive: local), refused when it has passed."""
    if at.tzinfo is None:
        at = at.astimezone()  # the local zone, with its offset on that date
    if at <= datetime.now(at.tzinfo):
        raise ConfigError(f"--at {at.isoformat()} is in the past")
    return at


def cancel_values(reason: str) -> dict[str, str]:
    """The journal meta a cancelled run gets (the report gives every row the reason)."""
    return {
        META_STATE: RunState.CANCELLED.value,
        "finished": "yes",  # nothing left to resume: a new send starts it again
        META_NOT_ATTEMPTED_REASON: reason,
    }


@asynccontextmanager
async def _signals(wanted: bool) -> AsyncIterator[AsyncIterator[int] | None]:
    """SIGINT/SIGTERM as they arrive, in the main thread; elsewhere (a web app's worker)
    signals are the main thread's business and only ``campaigner cancel`` ends the wait."""
    if not wanted or threading.current_thread() is not threading.main_thread():
        yield None
        return
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
        yield received


async def wait_for_start(
    journal: Journal,
    at: datetime,
    *,
    signals: bool = True,
    asked: Callable[[], str | None] = lambda: None,
) -> str | None:
    """Wait until ``at``, then switch the run from scheduled to sending. Returns None when
    it is time to send, or who cancelled it: ``CANCELLED_BY_COMMAND``, a signal's name
    (with ``signals``), or the reason ``asked`` gives (a web app's Cancel, polled). The
    run is then recorded cancelled, and nothing was sent.

    The switch is one transaction against ``campaigner cancel``'s: exactly one of them
    wins, so a run is never both cancelled and sending."""
    by_signal: list[str] = []
    async with _signals(signals) as received, anyio.create_task_group() as tg:

        async def watch() -> None:
            assert received is not None
            async for signum in received:
                by_signal.append(signal.Signals(signum).name)
                tg.cancel_scope.cancel()
                return

        if received is not None:
            tg.start_soon(watch)
        outcome: str | None = None
        while True:
            if journal.meta().get(META_STATE) == RunState.CANCELLED:
                outcome = CANCELLED_BY_COMMAND
                break
            reason = asked()
            if reason is not None:
                by_signal.append(reason)
                break
            left = (at - datetime.now(at.tzinfo)).total_seconds()
            if left <= 0:
                held = journal.switch_meta(
                    META_STATE, {RunState.SCHEDULED.value}, {META_STATE: RunState.SENDING.value}
                )
                outcome = None if held == RunState.SCHEDULED else CANCELLED_BY_COMMAND
                break
            await anyio.sleep(min(_POLL_S, left))
        tg.cancel_scope.cancel()
    if not by_signal:
        return outcome
    return cancel_before_time(journal, by_signal[0])


def cancel_before_time(journal: Journal, by: str) -> str:
    """Record a scheduled run cancelled by ``by`` (a signal's name) before it sent anything;
    returns who cancelled it (``campaigner cancel`` may have been first)."""
    held = journal.switch_meta(  # nothing is sent before this returns: sending may go too
        META_STATE,
        {RunState.SCHEDULED.value, RunState.SENDING.value},
        cancel_values(f"not sent: the scheduled run was cancelled by {by} before its time"),
    )
    return CANCELLED_BY_COMMAND if held == RunState.CANCELLED else by


def cancelled_error(by: str, report: Path) -> RunCancelled:
    """What a scheduled run cancelled before its time says (its report written)."""
    if by == CANCELLED_BY_COMMAND:
        return RunCancelled(
            f"cancelled (campaigner cancel): nothing was sent; report: {report}", exit_code=1
        )
    return RunCancelled(
        f"cancelled by {by}: nothing was sent; report: {report}",
        exit_code=143 if by == "SIGTERM" else 130,
    )
