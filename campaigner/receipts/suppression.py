"""Opt-outs: who asked a business number to send them nothing more, and since when.

A recipient is suppressed for one business (sender) number by a stop word in an inbound
TEXT or REPLY, a Viber ``unsubscribe`` receipt, or a manual entry (``campaigner suppress
add``/``import``); a Viber ``subscribe`` or ``campaigner suppress remove`` lifts it. Each of
these is an event with a time (the message's own Timestamp, or when a manual entry was made);
for every (business, recipient) the latest event decides. Manual entries made without a
business number use ``ANY_BUSINESS`` and count for every business.

Pure: events in, suppressions out. ``store.ReceiptStore`` gathers the events from SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

__all__ = ("ANY_BUSINESS", "Action", "Event", "Suppression", "resolve")

ANY_BUSINESS = "*"


class Action(StrEnum):
    ADD = "add"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Suppression:
    """``recipient`` must not be sent to from ``business`` (``*``: from any) since ``since_ms``.

    ``source`` says where it came from: ``inbound`` (a stop word), ``receipt`` (Viber
    unsubscribe), ``manual`` or ``import``; ``reason`` says it in words.
    """

    recipient: str
    business: str
    since_ms: int
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class Event:
    """One opt-out or opt-in: ``order`` breaks ties between events of the same millisecond."""

    business: str
    recipient: str
    at_ms: int
    action: Action
    reason: str
    source: str
    order: int = 0


def resolve(events: Iterable[Event]) -> dict[str, Suppression]:
    """The suppressions in force after ``events``, keyed by recipient.

    The latest event per recipient decides, whatever business it names: call with the events
    of one business and of ``ANY_BUSINESS``.
    """
    latest: dict[str, Event] = {}
    for event in events:
        known = latest.get(event.recipient)
        if known is None or (event.at_ms, event.order) >= (known.at_ms, known.order):
            latest[event.recipient] = event
    return {
        recipient: Suppression(
            recipient=recipient,
            business=event.business,
            since_ms=event.at_ms,
            reason=event.reason,
            source=event.source,
        )
        for recipient, event in latest.items()
        if event.action is Action.ADD
    }
