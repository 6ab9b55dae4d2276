"""Per-row outcome vocabulary shared by preview, send, journal and report."""

from __future__ import annotations

from enum import StrEnum

__all__ = ("RESULT_COLUMNS", "Status")


class Status(StrEnum):
    """The status of one input row in a report."""

    WOULD_SEND = "would_send"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    NOT_ATTEMPTED = "not_attempted"


# Columns the report appends after the input columns, in this order.
RESULT_COLUMNS: tuple[str, ...] = (
    "row",
    "status",
    "To",
    "MessageId",
    "Code",
    "Message",
    "RequestId",
    "attempts",
    "error",
)
