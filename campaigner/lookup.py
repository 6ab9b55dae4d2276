"""``campaigner status``: how far a run's sent messages got, asked of ListChatappMessage.

For someone whose machine CAMS cannot push receipts to. Only the rows sent without a final
receipt are asked about (Read and Failed are final; Delivered can still become Read).
ListChatappMessage lists the messages of one sender number in a time window, newest first,
a page at a time with no total count: the run's send times are cut into windows, each
window is paged until a short page (or until every message wanted from it was seen), and
what it says is stored in the workspace's receipts.sqlite as receipts of source ``lookup``,
where the report joins them like pushed ones. Messenger and Instagram messages cannot be
listed: those rows are counted apart, never guessed.

``MessageStatus`` is read case-insensitively: success|sent -> Sent, delivered -> Delivered,
read -> Read, failed|fail -> Failed. The public docs give no values: this mapping is our
reading of them (docs/delivery.md); any other value is counted, not stored.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio
import polars as pl

from campaigner.cams import ACCOUNT_ERROR_CODES, LIST_ACTION
from campaigner.columns import ROW
from campaigner.errors import AccountError, StorageError
from campaigner.inputs import InputTable
from campaigner.journal import JOURNAL_NAME
from campaigner.receipts.parse import Receipt, phone_key
from campaigner.receipts.store import RECEIPTS_NAME, ReceiptStore
from campaigner.report.delivery_source import LOOKUP_CHANNELS
from campaigner.rows import Deduper, Plan
from campaigner.send.client import CamsClient
from campaigner.statuses import Delivery

__all__ = (
    "LookupCounts",
    "Unsettled",
    "Window",
    "listed_receipt",
    "look_up",
    "unsettled_rows",
    "windows",
    "with_business",
)

PAGE_SIZE: Final = 100  # the API's largest page
WINDOW_S: Final = 600.0  # one window covers at most this much send time
SKEW_S: Final = 120.0  # clock difference allowed between our send time and CAMS's
_ATTEMPTS: Final = 4  # tries of one page before its window is given up
_BACKOFF_S: Final = 1.0
_PROGRESS_EVERY_S: Final = 30.0

_STATES: Final = {
    "success": Delivery.SENT,
    "sent": Delivery.SENT,
    "delivered": Delivery.DELIVERED,
    "read": Delivery.READ,
    "failed": Delivery.FAILED,
    "fail": Delivery.FAILED,
}

# Sent rows whose receipts are not final yet (no Read, no Failed), with their send time.
_UNSETTLED_SQL: Final = """
SELECT j.row, j.message_id, coalesce(j.intent_at, j.updated_at) FROM rows AS j
WHERE j.state = 'sent' AND j.message_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM rc.receipts AS r
    WHERE r.message_id = j.message_id AND r.status IN ('Read', 'Failed'))
ORDER BY j.row
"""


@dataclass(frozen=True, slots=True)
class Unsettled:
    """A sent row without a final receipt: its MessageId, send time and sender number."""

    row: int
    message_id: str
    sent_s: float
    business: str = ""


@dataclass(frozen=True, slots=True)
class Window:
    """One ListChatappMessage query: a sender number and a span of send times (ms)."""

    business: str
    start_ms: int
    end_ms: int
    message_ids: frozenset[str]


@dataclass
class LookupCounts:
    """What a lookup asked and learned."""

    unsettled: int = 0  # sent rows without a final receipt
    cannot_look_up: int = 0  # ... on a channel ListChatappMessage does not list
    requests: int = 0
    found: dict[str, int] = field(default_factory=dict)  # by state
    not_listed: int = 0  # asked about, absent from every page
    failed_windows: int = 0  # windows given up after repeated failures
    unreadable: int = 0  # listed with a MessageStatus we cannot read
    stored: int = 0  # receipts new to the store


def unsettled_rows(run_dir: Path) -> list[Unsettled]:
    """The run's sent rows with no Read or Failed receipt in its workspace's store."""
    db = sqlite3.connect(_read_only(run_dir / JOURNAL_NAME), uri=True)
    store = run_dir.parent / RECEIPTS_NAME
    try:
        if store.exists():
            db.execute("ATTACH DATABASE ? AS rc", (_read_only(store),))
        else:
            db.execute("ATTACH DATABASE ':memory:' AS rc")
            db.execute("CREATE TABLE rc.receipts(message_id TEXT, status TEXT)")
        return [Unsettled(r, m, float(t)) for r, m, t in db.execute(_UNSETTLED_SQL)]
    except sqlite3.DatabaseError as exc:  # the journal was checked when the run was opened
        raise StorageError(
            f"{store} cannot be read ({exc}): nothing was looked up; move it aside (a new one "
            "starts empty) or restore it from a backup, then run `campaigner status` again"
        ) from None
    finally:
        db.close()


def with_business(rows: list[Unsettled], plan: Plan, table: InputTable) -> list[Unsettled]:
    """``rows`` with the sender number each was sent from: the campaign's fixed ``From``,
    or a per-row ``From`` rendered again from the input (rendering is deterministic)."""
    slot = plan.template.slot("From")
    if slot is None or not rows:
        return rows
    if slot.kind == "static":
        return [replace(r, business=slot.parts[0][1].strip()) for r in rows]
    wanted = pl.Series([r.row for r in rows], dtype=pl.Int64).implode()
    business: dict[int, str] = {}
    deduper = Deduper()
    for batch in table.batches():
        prepared = plan.prepare(batch, deduper).filter(pl.col(ROW).is_in(wanted))
        for row, value in prepared.select(ROW, pl.col(slot.column)).iter_rows():
            business[row] = (value or "").strip()
    return [replace(r, business=business.get(r.row, "")) for r in rows]


def _read_only(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


def windows(
    rows: Iterable[Unsettled], now_s: float, *, window_s: float = WINDOW_S, skew_s: float = SKEW_S
) -> list[Window]:
    """The queries that cover ``rows``: per sender number, send times cut into spans of at
    most ``window_s`` from their first send, widened by ``skew_s`` (never past now)."""
    by_business: dict[str, list[Unsettled]] = {}
    for row in rows:
        by_business.setdefault(row.business, []).append(row)
    out: list[Window] = []
    end_cap = int(now_s * 1000)
    for business, group in by_business.items():
        group.sort(key=lambda r: r.sent_s)
        spans: list[list[Unsettled]] = []
        for row in group:
            if spans and row.sent_s - spans[-1][0].sent_s <= window_s:
                spans[-1].append(row)
            else:
                spans.append([row])
        for span in spans:
            start = int((span[0].sent_s - skew_s) * 1000)
            end = max(min(int((span[-1].sent_s + skew_s) * 1000), end_cap), start)
            out.append(Window(business, start, end, frozenset(r.message_id for r in span)))
    return out


def listed_receipt(item: Mapping[str, Any]) -> Receipt | None:
    """A receipt (no Timestamp: the listing says what state, not when) for one listed
    message; None when its MessageStatus is not one we can read."""
    state = _STATES.get(str(item.get("MessageStatus") or "").strip().casefold())
    if state is None:
        return None
    code = description = None
    if state is Delivery.FAILED:
        reason = str(item.get("FailReason") or "").strip()
        head, colon, tail = reason.partition(":")
        if colon and head.strip().isdigit():  # "131026:Receiver is incapable of ..."
            code, description = head.strip(), tail.strip() or None
        else:
            description = reason or None
    return Receipt(
        message_id=str(item["MessageId"]),
        status=state.value,
        ts_ms=None,
        error_code=code,
        error_description=description,
        recipient=phone_key(item.get("UserNumber") or "") or None,
        sender=phone_key(item.get("BusinessNumber") or "") or None,
        raw=json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=str),
    )


def _query(channel: str, window: Window, index: int, extra: Mapping[str, str]) -> dict[str, str]:
    return {
        **extra,
        "ChannelType": channel,
        "BusinessNumber": window.business,
        "EventAction": "DOWN",
        "StartTime": str(window.start_ms),
        "EndTime": str(window.end_ms),
        "Page": json.dumps({"Index": index, "Size": PAGE_SIZE}, separators=(",", ":")),
    }


async def look_up(
    rows: Sequence[Unsettled],
    channel: str,
    client: CamsClient,
    store: ReceiptStore,
    *,
    grant: Callable[[], Awaitable[None]],
    extra: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    say: Callable[[str], None] = lambda _: None,
) -> LookupCounts:
    """Ask ListChatappMessage about ``rows`` and store what it says; ``grant`` waits for
    the lookup's own rate budget before each request. ``extra``: query parameters every
    request carries (the campaign's CustSpaceId)."""
    counts = LookupCounts(unsettled=len(rows))
    if channel.lower() not in LOOKUP_CHANNELS:
        counts.cannot_look_up = len(rows)
        return counts
    spans = windows(rows, clock())
    told = clock()
    for done, window in enumerate(spans, 1):
        seen = await _page_window(channel, window, client, store, grant, extra or {}, counts, say)
        if seen is not None:
            counts.not_listed += len(window.message_ids - seen)
        if clock() - told >= _PROGRESS_EVERY_S and done < len(spans):  # a long lookup says so
            told = clock()
            say(f"looked up {done:,} of {len(spans):,} time windows ({counts.requests:,} requests)")
    return counts


async def _page_window(
    channel: str,
    window: Window,
    client: CamsClient,
    store: ReceiptStore,
    grant: Callable[[], Awaitable[None]],
    extra: Mapping[str, str],
    counts: LookupCounts,
    say: Callable[[str], None],
) -> set[str] | None:
    """Page one window until a short page or until every wanted message was seen; the
    MessageIds seen, or None when the window was given up."""
    seen: set[str] = set()
    index = 1
    while True:
        items = await _page(client, _query(channel, window, index, extra), grant, counts, say)
        if items is None:
            counts.failed_windows += 1
            return None
        receipts = []
        for item in items:
            message_id = str(item.get("MessageId") or "")
            if message_id not in window.message_ids or message_id in seen:
                continue
            seen.add(message_id)
            receipt = listed_receipt(item)
            if receipt is None:
                counts.unreadable += 1
                continue
            counts.found[receipt.status] = counts.found.get(receipt.status, 0) + 1
            receipts.append(receipt)
        if receipts:  # stored page by page: an interrupted lookup keeps what it learned
            counts.stored += await anyio.to_thread.run_sync(
                partial(store.add_receipts, receipts, source="lookup")
            )
        if len(items) < PAGE_SIZE or seen >= window.message_ids:
            return seen
        index += 1


async def _page(
    client: CamsClient,
    query: dict[str, str],
    grant: Callable[[], Awaitable[None]],
    counts: LookupCounts,
    say: Callable[[str], None],
) -> list[dict[str, Any]] | None:
    """One page's items; None after ``_ATTEMPTS`` failures. An account refusal raises."""
    for attempt in range(1, _ATTEMPTS + 1):
        await grant()
        counts.requests += 1
        try:
            status, body = await client.call(LIST_ACTION, query)
        except Exception as exc:  # the network: tried again, never guessed
            problem = type(exc).__name__
        else:
            code = str(body.get("Code") or "")
            if status == 200 and code == "OK":
                data = body.get("Data") or []
                return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
            if code in ACCOUNT_ERROR_CODES or status in (401, 403):
                raise AccountError(
                    f"CAMS refused the lookup ({code or status}: {body.get('Message') or ''}); "
                    "fix the credentials or permissions, then run `campaigner status` again"
                )
            problem = f"{status} {code}".strip()
        if attempt < _ATTEMPTS:
            await anyio.sleep(_BACKOFF_S * attempt)
        else:
            say(f"a lookup page failed {_ATTEMPTS} times ({problem}): its window is skipped")
    return None
