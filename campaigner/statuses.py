"""The row vocabulary: a row's status in a report, its state in the journal, and the
result columns a report appends (docs/row-states.md)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ("FINAL_STATES", "RESULT_COLUMNS", "JournalState", "Status")


class Status(StrEnum):
    """The status of one input row in a report."""

    WOULD_SEND = "would_send"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    NOT_ATTEMPTED = "not_attempted"


class JournalState(StrEnum):
    """The state of one row in the run journal (the ``state`` column stores ``.value``).

    The report's final statuses plus ``pending`` (checked, waiting to be sent) and
    ``intent`` (its request may be leaving the machine). A row absent from the journal
    was never reached and is reported ``not_attempted``.
    """

    PENDING = "pending"
    INTENT = "intent"
    SENT = Status.SENT.value
    FAILED = Status.FAILED.value
    INVALID = Status.INVALID.value
    DUPLICATE = Status.DUPLICATE.value
    UNKNOWN = Status.UNKNOWN.value


# Rows in these states are never sent again by a resume.
FINAL_STATES: frozenset[JournalState] = frozenset(
    {
        JournalState.SENT,
        JournalState.FAILED,
        JournalState.INVALID,
        JournalState.DUPLICATE,
        JournalState.UNKNOWN,
    }
)

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
