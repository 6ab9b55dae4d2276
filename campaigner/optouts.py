"""The workspace's suppression list by hand: ``campaigner suppress add|remove|list|import|export``.

Entries go to receipts.sqlite beside the opt-outs learned from receipts (``receipts.store``),
as numbers in their ``phone_key`` form (international digits). Without ``--sender`` an entry
counts for every business number. Export writes CSV that ``import`` reads back; its text
cells are formula-defused (a reason may quote what a user wrote).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import polars as pl

from campaigner.errors import ConfigError, UnreadableInputError
from campaigner.receipts.parse import phone_key
from campaigner.receipts.store import ReceiptStore
from campaigner.receipts.suppression import ANY_BUSINESS, Suppression
from campaigner.report.safety import neutralize

__all__ = (
    "EXPORT_COLUMNS",
    "ImportResult",
    "add",
    "export_csv",
    "import_file",
    "listing",
    "recipient_key",
    "remove",
    "since_text",
)

EXPORT_COLUMNS = ("recipient", "business", "since", "reason", "source")
_RECIPIENT_HEADERS = frozenset(
    {"recipient", "to", "phone", "number", "phone number", "mobile", "msisdn", "whatsapp"}
)
_BUSINESS_HEADERS = frozenset({"business", "sender", "from", "business number"})
_REASON_HEADERS = frozenset({"reason", "why", "note"})
_CHUNK = 10_000
# A Messenger or Instagram ID typed by hand: letters, digits and . _ - only.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{5,63}")
_MAX_SKIPPED_SHOWN = 20


def recipient_key(value: str) -> str | None:
    """The stored form of a number typed by hand, or None if it is not one: 6-20 digits
    (``+86 138-0000-0001`` works), or an ID of letters, digits and ``._-`` (Messenger)."""
    key = phone_key(value)
    if key.isdigit():
        return key if 6 <= len(key) <= 20 else None
    return key if _ID.fullmatch(key) else None


def _business(sender: str | None) -> str:
    if sender is None or sender.strip() in ("", ANY_BUSINESS):
        return ANY_BUSINESS
    key = recipient_key(sender)
    if key is None:
        raise ConfigError(f"--sender {sender!r} is not a phone number")
    return key


def _keys(recipients: Iterable[str]) -> list[str]:
    keys = []
    for value in recipients:
        key = recipient_key(value)
        if key is None:
            raise ConfigError(f"{value!r} is not a phone number (6-20 digits, + and spaces ok)")
        keys.append(key)
    return keys


def add(workspace: Path, recipients: Sequence[str], sender: str | None, reason: str) -> int:
    """Suppress every recipient (all of them checked first); how many were added."""
    business = _business(sender)
    keys = _keys(recipients)
    with ReceiptStore.open(workspace) as store:
        return store.add_suppressions(((business, key, reason, None) for key in keys), "manual")


def remove(workspace: Path, recipients: Sequence[str], sender: str | None) -> int:
    """Lift every recipient's suppression (without a sender: for every business)."""
    business = _business(sender)
    keys = _keys(recipients)
    with ReceiptStore.open(workspace) as store:
        for key in keys:
            store.remove_suppression(business, key)
    return len(keys)


def listing(workspace: Path, sender: str | None) -> list[Suppression]:
    """The suppressions in force: for one business (those for any included), or all."""
    with ReceiptStore.open(workspace) as store:
        if sender is None:
            return store.list_suppressions()
        return store.list_suppressions(_business(sender))


def since_text(since_ms: int) -> str:
    """ISO 8601 UTC, as the report's dates."""
    return datetime.fromtimestamp(since_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def export_csv(workspace: Path, sender: str | None, stream: TextIO) -> int:
    """The list as CSV (``EXPORT_COLUMNS``) on ``stream``; how many rows."""
    found = listing(workspace, sender)
    frame = pl.DataFrame(
        {
            "recipient": [s.recipient for s in found],
            "business": [s.business for s in found],
            "since": [since_text(s.since_ms) for s in found],
            "reason": [s.reason for s in found],
            "source": [s.source for s in found],
        },
        schema=dict.fromkeys(EXPORT_COLUMNS, pl.String),
    )
    stream.write(neutralize(frame).write_csv())
    return len(found)


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import did: entries added, and the lines skipped (line number, why)."""

    added: int
    skipped: int
    examples: tuple[tuple[int, str], ...] = field(default=())


def import_file(
    workspace: Path, path: Path, sender: str | None, reason: str | None
) -> ImportResult:
    """Suppress every number of a CSV file (a column named recipient/phone/number/to...,
    else the first). A ``business`` column (as export writes) names each line's sender
    when ``sender`` is not given; a ``reason`` column its reason."""
    default_business = _business(sender)
    default_reason = reason or f"imported from {path.name}"
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise UnreadableInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UnreadableInputError(
            f"{path} is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise UnreadableInputError(f"{path} is not a CSV file (it holds NUL bytes)")
    skipped: list[tuple[int, str]] = []
    added = 0
    entries = _entries(text, default_business, default_reason, sender is not None, skipped)
    with ReceiptStore.open(workspace) as store:
        try:
            for chunk in _chunks(entries):
                added += store.add_suppressions(chunk, "import")
        except csv.Error as exc:
            raise UnreadableInputError(
                f"{path} is not a readable CSV file ({exc}); {added} entries were added"
            ) from None
    return ImportResult(added, len(skipped), tuple(skipped[:_MAX_SKIPPED_SHOWN]))


def _chunks(
    entries: Iterator[tuple[str, str, str, int | None]],
) -> Iterator[list[tuple[str, str, str, int | None]]]:
    chunk: list[tuple[str, str, str, int | None]] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _entries(
    text: str, business: str, reason: str, sender_given: bool, skipped: list[tuple[int, str]]
) -> Iterator[tuple[str, str, str, int | None]]:
    rows = csv.reader(io.StringIO(text, newline=""), _dialect(text))
    column, business_column, reason_column, since_column = 0, None, None, None
    for line, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if line == 1:
            folded = [cell.casefold() for cell in cells]
            named = [i for i, name in enumerate(folded) if name in _RECIPIENT_HEADERS]
            if named or recipient_key(cells[0]) is None:
                column = named[0] if named else 0
                business_column = _index(folded, _BUSINESS_HEADERS)
                reason_column = _index(folded, _REASON_HEADERS)
                since_column = _index(folded, frozenset({"since"}))
                continue
        value = cells[column] if column < len(cells) else ""
        key = recipient_key(value)
        if key is None:
            skipped.append((line, "not a phone number"))
            continue
        line_business = business
        if business_column is not None and not sender_given and business_column < len(cells):
            line_business = _line_business(cells[business_column], business)
        line_reason = reason
        if reason_column is not None and reason_column < len(cells) and cells[reason_column]:
            line_reason = cells[reason_column].removeprefix("'")
        since = None
        if since_column is not None and since_column < len(cells):
            since = _since_ms(cells[since_column])
        yield line_business, key, line_reason, since


def _since_ms(cell: str) -> int | None:
    try:
        moment = datetime.fromisoformat(cell.removeprefix("'").replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _index(folded: list[str], names: frozenset[str]) -> int | None:
    return next((i for i, name in enumerate(folded) if name in names), None)


def _line_business(cell: str, default: str) -> str:
    if cell in ("", ANY_BUSINESS):
        return default if cell == "" else ANY_BUSINESS
    return recipient_key(cell) or default
