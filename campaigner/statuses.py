"""The row vocabulary: a row's status in a report, its state in the journal, and the
result columns a report appends (docs/row-states.md)."""

from __future__ import annotations

from enum import StrEnum

__all__ = (
    "DELIVERY_RANK",
    "FINAL_STATES",
    "HELD",
    "RESULT_COLUMNS",
    "Delivery",
    "JournalState",
    "Status",
)


class Status(StrEnum):
    """The status of one input row in a report."""

    WOULD_SEND = "would_send"
    SENT = "sent"
    FAILED = "failed"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    UNKNOWN = "unknown"
    NOT_ATTEMPTED = "not_attempted"
    # Held back by what the workspace knows (campaigner/screening.py): the recipient opted
    # out of the sender number, or (send --only-new) got this same call in an earlier run.
    SUPPRESSED = "suppressed"
    ALREADY_SENT = "already_sent"


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
    SUPPRESSED = Status.SUPPRESSED.value
    ALREADY_SENT = Status.ALREADY_SENT.value


# Rows in these states are never sent again by a resume.
FINAL_STATES: frozenset[JournalState] = frozenset(
    {
        JournalState.SENT,
        JournalState.FAILED,
        JournalState.INVALID,
        JournalState.DUPLICATE,
        JournalState.UNKNOWN,
        JournalState.SUPPRESSED,
        JournalState.ALREADY_SENT,
    }
)

# Statuses of rows held back on purpose: they do not make a run (or a preview) incomplete.
HELD: frozenset[Status] = frozenset({Status.SUPPRESSED, Status.ALREADY_SENT})

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
    # What happened after CAMS accepted the message, from receipts and replies
    # (docs/delivery.md); empty in a preview and until something is known.
    "delivery",
    "delivery_error",
    "delivered_at",
    "read_at",
    "reply",
    "retried_in",  # the run that retried this row (campaigner retry), empty otherwise
)


class Delivery(StrEnum):
    """How far a sent message got, from its status receipts (the report's ``delivery``).

    CAMS's own spellings. The furthest state wins (``DELIVERY_RANK``); ``Failed`` is final
    and wins over any other.
    """

    SENT = "Sent"
    DELIVERED = "Delivered"
    READ = "Read"
    FAILED = "Failed"


# A message's receipts fold to the highest rank among them. Failed ranks highest: it is final.
DELIVERY_RANK: dict[Delivery, int] = {
    Delivery.SENT: 1,
    Delivery.DELIVERED: 2,
    Delivery.READ: 3,
    Delivery.FAILED: 4,
}
