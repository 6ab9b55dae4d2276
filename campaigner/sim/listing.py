"""``ListChatappMessage`` over the accepted sends: request checks, filters and the page of items.

The request and answer shapes (partly unverified) are in docs/simulator.md#listchatappmessage.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campaigner.sim.fate import ReceiptPlan, fate_of
from campaigner.sim.records import AcceptedSend, iso_ms

__all__ = ("ListError", "list_messages")


@dataclass(frozen=True, slots=True)
class ListError:
    """A refused listing request: answered with this status, Code and Message."""

    status: int
    code: str
    message: str


def _bare(number: str) -> str:
    return number[1:] if number.startswith("+") else number


# A delivery status as ListChatappMessage names it: (MessageStatus, MessageStatusName).
_LISTED = {
    None: ("success", "Sent"),  # accepted; its Sent receipt is not due yet
    "Sent": ("success", "Sent"),
    "Delivered": ("delivered", "Delivered"),
    "Read": ("read", "Read"),
    "Failed": ("failed", "Failed"),
}


def list_messages(
    params: Mapping[str, str],
    accepted: Sequence[AcceptedSend],
    by_to: Mapping[str, Sequence[AcceptedSend]],
    plan: ReceiptPlan | None = None,
    seed: int = 0,
    now: float = 0.0,
) -> list[dict[str, Any]] | ListError:
    """The requested page of ``accepted`` (indexed by recipient in ``by_to``), newest first.

    With a receipt ``plan`` each message's state at ``now`` (epoch seconds) is the furthest one
    its seeded fate has reached: the same the pusher reports (sim/fate.py)."""
    for name in ("ChannelType", "BusinessNumber", "Page"):
        if not params.get(name):
            return ListError(400, f"Missing{name}", f"{name} is mandatory for this action.")
    try:
        page = json.loads(params["Page"])
        index, size = int(page.get("Index", 1)), int(page.get("Size", 20))
        start = int(params["StartTime"]) if params.get("StartTime") else None
        end = int(params["EndTime"]) if params.get("EndTime") else None
    except (ValueError, TypeError, AttributeError):
        return ListError(400, "InvalidParameter", "The specified parameter is not valid.")
    if index < 1 or not 1 <= size <= 100:
        return ListError(400, "InvalidParameter", "The specified parameter Page is not valid.")
    user = params.get("UserNumber")
    pool: Sequence[AcceptedSend]
    if user:
        pool = [*by_to.get(_bare(user), ()), *by_to.get("+" + _bare(user), ())]
    else:
        pool = accepted
    channel = params["ChannelType"].lower()
    business = _bare(params["BusinessNumber"])
    template = params.get("TemplateCode")
    status = params.get("MessageStatus")
    if params.get("EventAction", "DOWN").upper() != "DOWN" or params.get("GroupMessageId"):
        pool = []
    rows = [
        r
        for r in pool
        if r.channel_type.lower() == channel
        and _bare(r.from_) == business
        and (template is None or r.template_code == template)
        and (start is None or r.received_wall * 1000 >= start)
        and (end is None or r.received_wall * 1000 <= end)
    ]
    rows.sort(key=lambda r: r.received_wall, reverse=True)
    items = (_item(r, plan, seed, now) for r in rows)
    if status:
        items = (i for i in items if i["MessageStatus"] == status.lower())
    return list(itertools.islice(items, (index - 1) * size, index * size))


def _item(r: AcceptedSend, plan: ReceiptPlan | None, seed: int, now: float) -> dict[str, Any]:
    state = None
    if plan is not None:
        state = fate_of(r, plan, seed).state_at((now - r.received_wall) * 1000)
    name = state.status if state is not None else None
    message_status, status_name = _LISTED.get(name, _LISTED[None])
    return {
        "MessageId": r.message_id,
        "UserNumber": r.to,
        "BusinessNumber": r.from_,
        "ChannelType": r.channel_type.upper(),
        "EventAction": "DOWN",
        "EventActionName": "DOWN",
        "MessageStatus": message_status,
        "MessageStatusName": status_name,
        "FailReason": state.error_description if state is not None else None,
        "SendTime": iso_ms(r.received_wall).replace("Z", "+00:00"),
        "Month": datetime.fromtimestamp(r.received_wall, UTC).strftime("%Y%m"),
        "TemplateCode": r.template_code,
        "LanguageCode": r.language,
        "Type": r.type,
        "MessageType": r.message_type,
        "MessageSource": "api",
    }
