"""Settling ``unknown`` rows with the API's own record of what was sent.

A row is ``unknown`` when its request may have reached CAMS but no answer says so (a
crash in flight, a timeout, a reset, a 5xx). ``ListChatappMessage`` lists the messages
sent to a recipient from a sender in a time window: a match means the message went out
(``sent``, with its MessageId); no match once the grace period has passed means it did
not (``not_attempted``, so a resume sends it). Within the grace period the row stays
``unknown``, because the message list can lag behind the send (docs/row-states.md#reconciliation).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import polars as pl

from campaigner.budget import GrantRule, LocalBudget, RateBudget, take_grant
from campaigner.cams import LIST_ACTION
from campaigner.columns import ROW, STATUS
from campaigner.inputs import InputTable
from campaigner.journal import Journal, Outcome
from campaigner.limits import LIST_QPS, RECONCILE_GRACE_S
from campaigner.rows import Deduper, Plan
from campaigner.send.client import CamsClient
from campaigner.statuses import JournalState, Status

__all__ = ("ReconcileCounts", "reconcile_rows")

_LIST_CONCURRENCY = 16
_PAGE = json.dumps({"Index": 1, "Size": 100}, separators=(",", ":"))


@dataclass
class ReconcileCounts:
    """What a reconcile found, counted as it goes."""

    interrupted: int = 0  # rows found in flight (a killed run), looked up like unknown ones
    found_sent: int = 0
    not_sent: int = 0
    still_unknown: int = 0
    lookup_errors: int = 0


def _unknown_calls(
    plan: Plan, table: InputTable, unknown: dict[int, float | None]
) -> dict[int, dict[str, Any]]:
    """The API parameters of each unknown row, recomputed from the input (deterministic)."""
    calls: dict[int, dict[str, Any]] = {}
    wanted = pl.Series(list(unknown), dtype=pl.Int64)
    deduper = Deduper()
    for batch in table.batches():
        prepared = plan.prepare(batch, deduper)
        hits = prepared.filter(
            pl.col(ROW).is_in(wanted.implode()) & (pl.col(STATUS) != Status.INVALID.value)
        )
        for row in hits.iter_rows(named=True):
            calls[row[ROW]] = plan.message(row)
    return calls


def _lookup_query(
    call: dict[str, Any], intent_at: float | None, now: float, skew_s: float
) -> dict[str, str]:
    start = (intent_at if intent_at is not None else now - 86_400) - skew_s
    query = {
        "ChannelType": str(call["ChannelType"]),
        "BusinessNumber": str(call["From"]),
        "UserNumber": str(call["To"]),
        "EventAction": "DOWN",
        "StartTime": str(int(start * 1000)),
        "EndTime": str(int(now * 1000)),
        "Page": _PAGE,
    }
    if call.get("TemplateCode"):
        query["TemplateCode"] = str(call["TemplateCode"])
    return query


async def reconcile_rows(
    plan: Plan,
    table: InputTable,
    journal: Journal,
    client: CamsClient,
    *,
    grace_s: float = RECONCILE_GRACE_S,
    skew_s: float = 120.0,
    clock: Callable[[], float] = time.time,
    say: Callable[[str], None] = lambda _: None,
    budget: RateBudget | None = None,
) -> ReconcileCounts:
    """Look up every unknown row and settle it in the journal; each lookup waits for a
    grant of ``budget`` (ListChatappMessage's own; default: this process, LIST_QPS/s).

    The caller holds the run's lock, so no process is sending: rows still in ``intent``
    were in flight when a run was killed, and are unknown like the others.
    """
    result = ReconcileCounts()
    result.interrupted = await anyio.to_thread.run_sync(journal.settle_interrupted)
    unknown = {row: intent_at for row, _, intent_at in journal.unknown_rows()}
    if not unknown:
        return result
    calls = await anyio.to_thread.run_sync(_unknown_calls, plan, table, unknown)
    outcomes: list[Outcome] = []
    in_flight = anyio.CapacityLimiter(_LIST_CONCURRENCY)
    budget = budget or LocalBudget(GrantRule(limit=LIST_QPS))
    waiting: list[str] = []  # the budget's last complaint, said once until it answers

    def budget_trouble(why: str | None) -> None:
        if why is not None and not waiting:
            say(f"{why}: lookups paused until it answers")
        waiting[:] = [why] if why else []

    async def settle(row: int, intent_at: float | None, call: dict[str, Any]) -> None:
        async with in_flight:
            now = clock()
            try:
                status, body = await client.call(
                    LIST_ACTION, _lookup_query(call, intent_at, now, skew_s)
                )
            except Exception as exc:  # a lookup failure leaves the row unknown, never guesses
                result.lookup_errors += 1
                say(f"row {row}: lookup failed ({type(exc).__name__})")
                return
        if status != 200 or body.get("Code") != "OK":
            result.lookup_errors += 1
            say(f"row {row}: lookup answered {status} {body.get('Code')}")
            return
        found = [d for d in body.get("Data") or [] if d.get("MessageId")]
        if found:
            message_id = str(found[-1]["MessageId"])  # oldest in the window: the first send
            outcomes.append(
                Outcome(
                    row,
                    JournalState.SENT,
                    1,
                    message_id=message_id,
                    code="OK",
                    message="confirmed by ListChatappMessage",
                )
            )
            result.found_sent += 1
        elif intent_at is not None and now - intent_at >= grace_s:
            outcomes.append(
                Outcome(
                    row,
                    JournalState.PENDING,
                    1,
                    code="NotDelivered",
                    message="not found by ListChatappMessage: it was not sent",
                )
            )
            result.not_sent += 1
        else:
            result.still_unknown += 1

    async with anyio.create_task_group() as tg:
        for row, intent_at in unknown.items():
            call = calls.get(row)
            if call is None:
                result.still_unknown += 1
                continue
            await take_grant(budget, unavailable=budget_trouble)  # paced starts, a few in flight
            tg.start_soon(settle, row, intent_at, call)
    await anyio.to_thread.run_sync(journal.apply, [], outcomes)
    return result
