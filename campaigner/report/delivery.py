"""The delivery columns of report rows, pure polars: each sent row's receipts folded into
``delivery``, ``delivery_error``, ``delivered_at`` and ``read_at``, and its first reply
(docs/delivery.md). The I/O that feeds it is ``report.delivery_source``."""

from __future__ import annotations

from typing import Final

import polars as pl

from campaigner.columns import ROW, internal
from campaigner.statuses import DELIVERY_RANK, Delivery

__all__ = (
    "DELIVERY_COLUMNS",
    "ERROR_CODE",
    "REPLY_CHARS",
    "RECEIPT_SCHEMA",
    "INBOUND_SCHEMA",
    "SENT_SCHEMA",
    "delivery_columns",
    "first_replies",
    "phone_key",
    "reply_candidates",
)

DELIVERY_COLUMNS: Final = ("delivery", "delivery_error", "delivered_at", "read_at", "reply")
REPLY_CHARS: Final = 200  # a reply is cut to this many characters in the report

# The receipts of each sent row, folded per row (one row per sent row; nulls without receipts):
# ``state`` the highest DELIVERY_RANK among them (0: none; Failed ranks highest), when it was
# sent (ms: its last intent), the Delivered and Read receipts' own Timestamps (ms), and the
# Failed receipt's error.
RECEIPT_SCHEMA: Final = {
    ROW: pl.Int64,
    "sent_ms": pl.Int64,
    "state": pl.Int64,
    "delivered_ms": pl.Int64,
    "read_ms": pl.Int64,
    "error_code": pl.String,
    "error_description": pl.String,
}
# Sent rows for the reply join: who got it (phone_key), from which number, and when (ms).
SENT_SCHEMA: Final = {
    ROW: pl.Int64,
    "to_key": pl.String,
    "from_key": pl.String,
    "sent_ms": pl.Int64,
}
# Inbound messages: the user (sender), our number (recipient), when, and what it said.
INBOUND_SCHEMA: Final = {
    "sender": pl.String,
    "recipient": pl.String,
    "ts_ms": pl.Int64,
    "type": pl.String,
    "text": pl.String,
    "payload": pl.String,
}

# The Failed receipt's ErrorCode, kept beside the report columns for the funnel.
ERROR_CODE: Final = internal("delivery:error_code")

_BY_RANK = {rank: state.value for state, rank in DELIVERY_RANK.items()}


def phone_key(value: pl.Expr) -> pl.Expr:
    """``campaigner.receipts.parse.phone_key`` for a column: the digits of a phone number,
    or a value with letters (a Messenger or Instagram ID) stripped as it is."""
    text = value.str.strip_chars()
    return (
        pl.when(text.str.contains(r"\p{L}")).then(text).otherwise(text.str.replace_all(r"\D", ""))
    )


def _iso_utc(ms: pl.Expr) -> pl.Expr:
    # Epoch milliseconds read as a naive datetime are UTC already (and format faster).
    return ms.cast(pl.Datetime("ms")).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ")


def _error_text(code: pl.Expr, description: pl.Expr) -> pl.Expr:
    """``ErrorCode: ErrorDescription``. CAMS's descriptions often start with the code
    again (``131026:Receiver is incapable…``): that repeat is dropped."""
    code = code.str.strip_chars()
    description = description.str.strip_chars()
    bare = (
        pl.when(description.str.starts_with(code + pl.lit(":")))
        .then(description.str.slice(code.str.len_chars() + 1).str.strip_chars())
        .otherwise(description)
    )
    return (
        pl.when(code.is_not_null() & (code != "") & bare.is_not_null() & (bare != ""))
        .then(pl.concat_str(code, pl.lit(": "), bare))
        .when(code.is_not_null() & (code != ""))
        .then(code)
        .otherwise(pl.when(bare != "").then(bare))
    )


def delivery_columns(receipts: pl.DataFrame) -> pl.DataFrame:
    """ROW, the four receipt columns and ``ERROR_CODE`` for rows folded as ``RECEIPT_SCHEMA``.

    Failed is final: a Failed receipt makes the row Failed whatever else came. Otherwise
    the furthest state reached, whatever order the receipts came in. A time is the
    receipt's own Timestamp (when CAMS says it happened), in ISO 8601 UTC; a state known
    without one (a lookup, a receipt without Timestamp) leaves its time empty.
    """
    state = pl.col("state").replace_strict(_BY_RANK, default=None, return_dtype=pl.String)
    folded = receipts.select(
        ROW,
        state.alias("delivery"),
        _iso_utc(pl.col("delivered_ms")).alias("delivered_at"),
        _iso_utc(pl.col("read_ms")).alias("read_at"),
    )
    # The error texts of the (few) Failed rows only: string work on every row costs.
    errors = receipts.filter(pl.col("state") == DELIVERY_RANK[Delivery.FAILED]).select(
        ROW,
        _error_text(pl.col("error_code"), pl.col("error_description")).alias("delivery_error"),
        pl.coalesce(pl.col("error_code").str.strip_chars(), pl.lit("")).alias(ERROR_CODE),
    )
    return folded.join(errors, on=ROW, how="left", maintain_order="left").select(
        ROW, "delivery", "delivery_error", "delivered_at", "read_at", ERROR_CODE
    )


def _blank_to_null(text: pl.Expr) -> pl.Expr:
    return pl.when(text.str.strip_chars() != "").then(text)


def _reply_text() -> pl.Expr:
    """What a reply said: its text (a REPLY's button text), else a button's payload, else
    its type (``[image]``): a photo is a reply too."""
    kind = pl.col("type").str.strip_chars().str.to_lowercase()
    return pl.coalesce(
        _blank_to_null(pl.col("text")),
        _blank_to_null(pl.col("payload")),
        pl.concat_str(
            pl.lit("["), pl.coalesce(_blank_to_null(kind), pl.lit("message")), pl.lit("]")
        ),
    )


def reply_candidates(inbound: pl.DataFrame) -> pl.DataFrame:
    """Inbound messages (``INBOUND_SCHEMA``, sorted by ``ts_ms``) as ``first_replies`` takes
    them: keyed by the user and our number, with what each said, cut to ``REPLY_CHARS``.
    Made once per report; a message without a time cannot be placed and is left out."""
    return inbound.filter(pl.col("ts_ms").is_not_null()).select(
        pl.col("sender").alias("to_key"),
        pl.col("recipient").alias("from_key"),
        pl.col("ts_ms").alias("reply_ms"),
        _reply_text().str.slice(0, REPLY_CHARS).alias("reply"),
    )


def first_replies(sent: pl.DataFrame, candidates: pl.DataFrame) -> pl.DataFrame:
    """ROW and ``reply`` for ``sent`` rows (``SENT_SCHEMA``): the first of the
    ``reply_candidates`` (by its Timestamp; ties: the first in their order) from that
    recipient to that sender number strictly after the send; null when there is none."""
    empty = sent.select(ROW, pl.lit(None, pl.String).alias("reply"))
    if sent.is_empty() or candidates.is_empty():
        return empty
    left = sent.filter(pl.col("sent_ms").is_not_null() & pl.col("to_key").is_not_null()).sort(
        "sent_ms"
    )
    if left.is_empty():
        return empty
    matched = left.join_asof(
        candidates,
        left_on="sent_ms",
        right_on="reply_ms",
        by=["to_key", "from_key"],
        strategy="forward",
        allow_exact_matches=False,  # a message at the very ms of the send came before it
        check_sortedness=False,
    )
    return empty.select(ROW).join(
        matched.select(ROW, "reply"), on=ROW, how="left", maintain_order="left"
    )
