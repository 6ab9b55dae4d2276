"""``ListChatappMessage`` over the accepted sends: request checks, filters and the page of items.

The request and answer shapes (partly unverified) are in docs/simulator.md#listchatappmessage.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def list_messages(
    params: Mapping[str, str],
    accepted: Sequence[AcceptedSend],
    by_to: Mapping[str, Sequence[AcceptedSend]],
) -> list[dict[str, Any]] | ListError:
    """The requested page of ``accepted`` (indexed by recipient in ``by_to``), newest first."""
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
    if (
        params.get("EventAction", "DOWN").upper() != "DOWN"
        or params.get("GroupMessageId")
        or (status and status.lower() != "success")
    ):
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
    return [_item(r) for r in rows[(index - 1) * size : index * size]]


def _item(r: AcceptedSend) -> dict[str, Any]:
    return {
        "MessageId": r.message_id,
        "UserNumber": r.to,
        "BusinessNumber": r.from_,
        "ChannelType": r.channel_type.upper(),
        "EventAction": "DOWN",
        "EventActionName": "DOWN",
        "MessageStatus": "success",
        "MessageStatusName": "Success",
        "SendTime": iso_ms(r.received_wall).replace("Z", "+00:00"),
        "Month": datetime.fromtimestamp(r.received_wall, UTC).strftime("%Y%m"),
        "TemplateCode": r.template_code,
        "LanguageCode": r.language,
        "Type": r.type,
        "MessageType": r.message_type,
        "MessageSource": "api",
    }
