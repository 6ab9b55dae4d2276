"""Every limit and default bound campaigner relies on, each defined once.

Limits of the API and of the campaign file; Excel's sheet limits follow below.
"""

from __future__ import annotations

from typing import Final

__all__ = (
    "CALLBACK_TOKEN_MIN_CHARS",
    "CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_OUTAGE_LIMIT_S",
    "DEFAULT_RECEIVE_PORT",
    "DEFAULT_TIMEOUT_S",
    "MAX_CAMPAIGN_BYTES",
    "EXCEL_MAX_CELL_CHARS",
    "EXCEL_MAX_COLUMNS",
    "EXCEL_MAX_ROWS",
    "LIST_QPS",
    "MAX_QPS",
    "RECEIPT_BODY_MAX_BYTES",
    "RECEIPT_BODY_MAX_ITEMS",
    "RECEIPT_BODY_TIMEOUT_S",
    "RECEIPT_HEADERS_TIMEOUT_S",
    "RECEIPT_KEEP_ALIVE_S",
    "RECONCILE_GRACE_S",
    "WEB_HEADERS_TIMEOUT_S",
    "column_letter",
)

# -- the API and the send ------------------------------------------------------------------
MAX_QPS: Final = 250  # SendChatappMessage's per-account limit (requests per second)
# ListChatappMessage (reconcile, status): a lookup API; its own budget, far below sending's.
LIST_QPS: Final = 10
DEFAULT_MAX_ATTEMPTS: Final = 5  # attempts for answers that provably were not accepted
DEFAULT_TIMEOUT_S: Final = 15.0  # read timeout per request; a timeout is an `unknown` outcome
CONNECT_TIMEOUT_S: Final = 5.0  # connecting to CAMS
DEFAULT_OUTAGE_LIMIT_S: Final = 300.0  # give up (resumable) when CAMS stays unreachable this long
# Reconcile calls a message unsent only this long after its request (the list can lag).
RECONCILE_GRACE_S: Final = 600.0

# -- the receipt receiver -----------------------------------------------------------------
RECEIPT_BODY_MAX_BYTES: Final = 1 << 20  # one pushed body; above it the answer is 413
# Objects in one body: ~2,600 real receipts fill a MiB, so more is junk such as `[{},{},...]`.
RECEIPT_BODY_MAX_ITEMS: Final = 10_000
RECEIPT_BODY_TIMEOUT_S: Final = 10.0  # a body must arrive within this (slow uploads: 408)
RECEIPT_KEEP_ALIVE_S: Final = 5.0  # an idle keep-alive connection is closed after this
RECEIPT_HEADERS_TIMEOUT_S: Final = 10.0  # a request's headers must arrive within this
CALLBACK_TOKEN_MIN_CHARS: Final = 16  # the callback path's token: unguessable, or no start
DEFAULT_RECEIVE_PORT: Final = 8787

# -- the web app ---------------------------------------------------------------------------
WEB_HEADERS_TIMEOUT_S: Final = 10.0  # a request's headers must arrive within this

# -- the campaign file ---------------------------------------------------------------------
MAX_CAMPAIGN_BYTES: Final = 1 << 20  # a campaign is a page of TOML; more is a wrong file

# -- Excel's sheet (inputs read up to it, reports write within it) -------------------------
EXCEL_MAX_ROWS: Final = 1_048_576  # rows of a sheet
EXCEL_MAX_COLUMNS: Final = 16_384  # columns of a sheet (A to XFD); also a CSV header's limit
EXCEL_MAX_CELL_CHARS: Final = 32_767  # characters (UTF-16 units) in a cell


def column_letter(index: int) -> str:
    """0-based column index -> Excel letters (0 -> A, 26 -> AA)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
