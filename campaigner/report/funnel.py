"""The delivery funnel of a run: of the rows CAMS accepted, how many were delivered, read
and replied to, and how many failed (by error code), counted batch by batch
(summary.json ``delivery``, docs/delivery.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from campaigner.report.delivery import ERROR_CODE
from campaigner.statuses import Delivery

__all__ = ("Funnel",)


@dataclass
class Funnel:
    """Counts over the sent rows. ``lookup``: whether ListChatappMessage can ask about
    this channel's messages (WhatsApp, Viber); Messenger and Instagram rows without a
    receipt are counted apart, as ``cannot_look_up``, instead of as ``no_receipt``."""

    lookup: bool = True
    sent: int = 0
    delivered: int = 0  # Delivered or Read
    read: int = 0
    replied: int = 0
    failed: int = 0
    failed_by_code: dict[str, int] = field(default_factory=dict)
    pending: int = 0  # neither delivered nor failed yet: a Sent receipt, or none
    no_receipt: int = 0  # of those, no receipt at all (`campaigner status` can ask)
    cannot_look_up: int = 0  # no receipt, and no lookup for the channel

    def add(self, sent: pl.DataFrame) -> None:
        """Count sent rows with their ``delivery``, ``reply`` and ``ERROR_CODE`` columns."""
        if sent.is_empty():
            return
        state = pl.col("delivery")
        counts = sent.select(
            pl.len().alias("sent"),
            state.is_in([Delivery.DELIVERED.value, Delivery.READ.value]).sum().alias("delivered"),
            (state == Delivery.READ.value).sum().alias("read"),
            pl.col("reply").is_not_null().sum().alias("replied"),
            (state == Delivery.FAILED.value).sum().alias("failed"),
            (state.is_null() | (state == Delivery.SENT.value)).sum().alias("pending"),
            state.is_null().sum().alias("none"),
        ).row(0, named=True)
        self.sent += counts["sent"]
        self.delivered += counts["delivered"]
        self.read += counts["read"]
        self.replied += counts["replied"]
        self.failed += counts["failed"]
        self.pending += counts["pending"]
        if self.lookup:
            self.no_receipt += counts["none"]
        else:
            self.cannot_look_up += counts["none"]
        if counts["failed"]:
            codes = sent.filter(state == Delivery.FAILED.value)[ERROR_CODE].replace("", None)
            for code, n in codes.fill_null("unknown").value_counts().iter_rows():
                self.failed_by_code[code] = self.failed_by_code.get(code, 0) + n

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "read": self.read,
            "replied": self.replied,
            "failed": self.failed,
            "failed_by_code": dict(sorted(self.failed_by_code.items(), key=lambda kv: -kv[1])),
            "pending": self.pending,
            "no_receipt": self.no_receipt,
            "cannot_look_up": self.cannot_look_up,
            "lookup": self.lookup,
        }
