"""The SendChatappMessage wire mapping, pure.

What the official SDK puts on the wire: every parameter in the query under its API name;
``TemplateParams``, ``Payload``, ``ProductAction`` and ``FlowAction`` as compact JSON (no
spaces, non-ASCII kept, model keys in alphabetical order, every list of a model present,
empty if unset); integers as ``str(int)``; ``Content`` as the caller's JSON string.
``classify_reply`` classifies an answer once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from campaigner.channels import PARAMETERS
from campaigner.statuses import Status

__all__ = (
    "ACCOUNT_ERROR_CODES",
    "API_VERSION",
    "DEFAULT_ENDPOINT",
    "LIST_ACTION",
    "SEND_ACTION",
    "Reply",
    "ReplyKind",
    "build_query",
    "classify_reply",
    "compact_json",
)


DEFAULT_ENDPOINT = "https://cams.ap-southeast-1.aliyuncs.com"  # the only documented one
SEND_ACTION = "SendChatappMessage"
LIST_ACTION = "ListChatappMessage"  # the messages sent, for reconcile
API_VERSION = "2020-06-06"


def compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _drop_none(value: Any) -> Any:
    # The SDK would send JSON null for None; an empty cell must not become "null".
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value


def _model(value: Any, lists: tuple[str, ...] = ()) -> Any:
    """A mapping as an SDK model writes it: keys sorted, each of ``lists`` present ([] if unset).

    Anything else (a shape the reference does not allow) is passed through for check_call
    to report, never raised on here.
    """
    if not isinstance(value, Mapping):
        return value
    out: dict[Any, Any] = {key: [] for key in lists}
    out.update(value)
    return dict(sorted(out.items(), key=lambda pair: str(pair[0])))


def _each(value: Any, convert: Any) -> Any:
    return [convert(item) for item in value] if isinstance(value, list) else value


def _product_action(value: Any) -> Any:
    def section(entry: Any) -> Any:
        entry = _model(entry, ("ProductItems",))
        if isinstance(entry, dict):
            entry["ProductItems"] = _each(entry["ProductItems"], _model)
        return entry

    out = _model(value, ("Sections",))
    if isinstance(out, dict):
        out["Sections"] = _each(out["Sections"], section)
    return out


# FlowActionData is a free map: its keys keep the caller's order, as in the SDK capture.
_flow_action = _model

# Integers as the SDK writes them (str(int)): "0300" and "+300" are 300.
_INTEGER = re.compile(r"([+-]?)0*([0-9]+)")
_INTEGER_PARAMS = frozenset(name for name, spec in PARAMETERS.items() if spec.kind == "integer")


def _integer(value: Any) -> str | None:
    """The canonical decimal text of an integer parameter; None (not sent) when empty.

    A value that is not a whole number is passed through unchanged for check_call to
    report as a row error.
    """
    text = value if isinstance(value, str) else str(value)
    match = _INTEGER.fullmatch(text)
    if match and len(match[2]) <= 18:  # longer is out of every range: keep it as written
        return str(int(match[1] + match[2]))
    return text if text.strip() else None


def build_query(message: Mapping[str, Any]) -> dict[str, str]:
    """The query parameters for one call, in the SDK's (alphabetical) order."""
    query: dict[str, str] = {}
    for name in sorted(message):
        value = _drop_none(message[name])
        if value is None:
            continue
        if name == "TemplateParams":
            query[name] = compact_json({k: str(v) for k, v in value.items()})
        elif name == "Payload":
            query[name] = compact_json([str(v) for v in value])
        elif name == "ProductAction":
            query[name] = compact_json(_product_action(value))
        elif name == "FlowAction":
            query[name] = compact_json(_flow_action(value))
        elif name == "Content":
            query[name] = value if isinstance(value, str) else compact_json(value)
        elif name in _INTEGER_PARAMS:
            number = _integer(value)
            if number is not None:
                query[name] = number
        else:
            query[name] = str(value)
    return query


class ReplyKind(StrEnum):
    """How one answer settles a row (docs/row-states.md#retry-classes)."""

    # The three that settle a row name the status it gets (statuses.Status).
    SENT = Status.SENT.value  # 200 + Code OK
    FAILED = Status.FAILED.value  # the row itself was rejected: final, not retried
    RETRY = "retry"  # provably not accepted (throttling, 503): safe to send again
    UNKNOWN = Status.UNKNOWN.value  # may have been accepted: never resent automatically
    ACCOUNT = "account"  # the account/credentials are refused: stop the run


# Codes that no row can get past: stop the run at once.
ACCOUNT_ERROR_CODES = frozenset(
    {
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSecurityToken.Expired",
        "InvalidSecurityToken.Malformed",
        "InvalidSecurityToken.MismatchWithAccessKey",
        "Ram.PermissionDeny",
        "Forbidden.RAM",
        "NoPermission",
        "Product.Unsubscript",
        "Unknown.ResourceOwnerId",
        "Authentication.NoAuth",
        "InvalidTimeStamp.Expired",
        "SignatureNonceUsed",
        "MissingAccessKeyId",
    }
)
_THROTTLE_CODES = frozenset(
    {"System.LimitControl", "Throttling", "Throttling.User", "Throttling.Api"}
)


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ReplyKind
    message_id: str | None = None
    code: str | None = None
    message: str | None = None
    request_id: str | None = None
    retry_after_s: float | None = None  # from x-acs-retry-after (milliseconds on the wire)
    throttled: bool = False  # flow control said slow down (vs. 503 or no connection)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("x-acs-retry-after")
    if raw is None:
        return None
    try:
        ms = float(raw)
    except ValueError:
        return None
    return ms / 1000 if ms > 0 else None


def classify_reply(status: int, headers: Mapping[str, str], body: bytes) -> Reply:
    """Classify one HTTP answer to SendChatappMessage. ``headers`` keys are lowercase."""
    retry_after = _retry_after(headers)
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        if status == 200 or status >= 500 and status != 503:
            # A 200 we cannot read, or a server error after the request arrived: ambiguous.
            return Reply(ReplyKind.UNKNOWN, code=f"HTTP{status}", message="unreadable answer")
        if status in (429, 503) or retry_after is not None:
            return Reply(
                ReplyKind.RETRY,
                code=f"HTTP{status}",
                retry_after_s=retry_after,
                throttled=status == 429 or retry_after is not None,
            )
        return Reply(ReplyKind.FAILED, code=f"HTTP{status}", message="unreadable error answer")
    code = str(data.get("Code") or "") or None
    message = data.get("Message")
    request_id = data.get("RequestId")
    fields: dict[str, Any] = {
        "code": code,
        "message": str(message) if message is not None else None,
        "request_id": str(request_id) if request_id is not None else None,
    }
    if status == 200:
        if code == "OK":
            message_id = data.get("MessageId")
            if not message_id:
                return Reply(ReplyKind.UNKNOWN, **fields)
            return Reply(ReplyKind.SENT, message_id=str(message_id), **fields)
        if code is None:
            return Reply(ReplyKind.UNKNOWN, **fields)
    if code in _THROTTLE_CODES or status == 429 or retry_after is not None:
        return Reply(ReplyKind.RETRY, retry_after_s=retry_after, throttled=True, **fields)
    if code in ACCOUNT_ERROR_CODES or status in (401, 403):
        return Reply(ReplyKind.ACCOUNT, **fields)
    if status == 503:
        return Reply(ReplyKind.RETRY, **fields)
    if status >= 500:
        return Reply(ReplyKind.UNKNOWN, **fields)
    return Reply(ReplyKind.FAILED, **fields)
