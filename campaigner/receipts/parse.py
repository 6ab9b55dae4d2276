"""Pushed CAMS bodies (status receipts, inbound messages) as plain values.

CAMS pushes a JSON array of objects; a single object is accepted too. Spellings vary between
the documentation's language versions and its own examples (``"Timestamp "`` with a trailing
space, ``UserId`` vs ``FromUserId``, lowercase types, a trailing comma), so keys are compared
after strip() and case-folding and nothing is refused for an odd spelling. Every object keeps
its original JSON in ``raw`` so unknown fields are never lost. Pure: bytes in, values out.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaigner.errors import ReceiptFormatError
from campaigner.statuses import Delivery

__all__ = (
    "CANONICAL_STATUSES",
    "Inbound",
    "Receipt",
    "parse_inbound_body",
    "parse_status_body",
    "phone_key",
)

# Canonical spellings of the statuses CAMS documents, keyed case-folded: the delivery states
# of the report's vocabulary, and those that are not delivery states. Others are kept as given.
CANONICAL_STATUSES: dict[str, str] = {
    **{state.value.casefold(): state.value for state in Delivery},
    "deleted": "Deleted",  # documented, never pushed
    "unsubscribe": "unsubscribe",  # Viber opt-out and opt-in
    "subscribe": "subscribe",
}

# Below this a Timestamp is taken for seconds, not milliseconds (10^11 ms is 1973).
_SECONDS_LIMIT = 100_000_000_000

# A JSON string, or a comma before a closing bracket: the docs' own example has the latter.
_TRAILING_COMMA = re.compile(r'("(?:[^"\\]|\\.)*")|,(\s*[}\]])', re.DOTALL)

_MISSING_ID_PREFIX = "no-message-id:"
# JSON may escape a lone UTF-16 surrogate ("\ud800"): text SQLite cannot store as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

# One encoder for every _dumps(): json.dumps builds one per call. Decoded JSON cannot hold a
# cycle, so the cycle check is skipped: the output is the same.
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"))

# For ASCII text, str.isalpha() is [A-Za-z] and str.isdigit() is [0-9].
_ASCII_LETTER = re.compile(r"[A-Za-z]")
_ASCII_NON_DIGIT = re.compile(r"[^0-9]")

# Folded spellings of keys seen before: a body repeats the same dozen keys in every object.
# Bounded, and short keys only, as keys come from the network.
_FOLDED_KEYS: dict[str, str] = {}
_FOLDED_KEYS_MAX = 1024
_FOLDED_KEY_LENGTH_MAX = 64

# _status() of the canonical spellings, the ones CAMS pushes, looked up as given.
_STATUS_AS_GIVEN = {
    status: CANONICAL_STATUSES.get(status.casefold(), status)
    for status in CANONICAL_STATUSES.values()
    if status and status == status.strip()
}

# Integer Timestamps from here up to 2**53 are milliseconds that int(float(value)) keeps as is.
_EXACT_MS_MAX = 2**53


@dataclass(frozen=True, slots=True)
class Receipt:
    """One status receipt. ``recipient`` is ``phone_key(To)``, ``sender`` ``phone_key(From)``."""

    message_id: str
    status: str
    ts_ms: int | None
    error_code: str | None
    error_description: str | None
    recipient: str | None
    sender: str | None
    raw: str


@dataclass(frozen=True, slots=True)
class Inbound:
    """One inbound message: ``sender`` is the user (From), ``recipient`` our number (To).

    ``type`` is upper-cased (``TEXT``, ``REPLY``, ``IMAGE`` ...); ``text`` is the message of a
    TEXT or the button text of a REPLY; ``payload`` the REPLY button's payload.
    """

    message_id: str
    sender: str | None
    recipient: str | None
    type: str | None
    text: str | None
    payload: str | None
    ts_ms: int | None
    raw: str


def phone_key(value: object) -> str:
    """The digits of a phone number (``+86 138-0000`` -> ``861380000``); a value with letters
    (a Messenger or Instagram ID) is kept as it is, stripped."""
    text = value.strip() if isinstance(value, str) else _text(value) or ""
    if text.isdigit():  # the common case; no character is both a digit and a letter
        return text
    if text.isascii():
        return text if _ASCII_LETTER.search(text) else _ASCII_NON_DIGIT.sub("", text)
    if any(ch.isalpha() for ch in text):
        return text
    return "".join(ch for ch in text if ch.isdigit())


def parse_status_body(body: bytes, max_items: int | None = None) -> list[Receipt]:
    """Every status receipt of a pushed body; ``ReceiptFormatError`` if it is not JSON objects
    (or more than ``max_items`` of them)."""
    objects = _objects(body, max_items)
    try:
        return [_receipt(obj) for obj in objects]
    except RecursionError:  # re-encoding a value nested near the limit, deeper in the stack
        raise ReceiptFormatError("the JSON is nested too deeply") from None


def parse_inbound_body(body: bytes, max_items: int | None = None) -> list[Inbound]:
    """Every inbound message of a pushed body; ``ReceiptFormatError`` if it is not JSON
    objects (or more than ``max_items`` of them)."""
    objects = _objects(body, max_items)
    try:
        return [_inbound(obj) for obj in objects]
    except RecursionError:
        raise ReceiptFormatError("the JSON is nested too deeply") from None


def _objects(body: bytes, max_items: int | None) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReceiptFormatError(f"the body is not UTF-8 (byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    data = _loads(text)
    if _SURROGATE_ESCAPE.search(text):
        try:
            data = _without_lone_surrogates(data)
        except RecursionError:
            raise ReceiptFormatError("the JSON is nested too deeply") from None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        if max_items is not None and len(data) > max_items:
            raise ReceiptFormatError(f"{len(data)} items in one body; at most {max_items}")
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                kind = type(item).__name__
                raise ReceiptFormatError(f"item {index} of the array is a {kind}, not an object")
        return data
    raise ReceiptFormatError(f"the body is a JSON {type(data).__name__}, not an object or array")


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ReceiptFormatError("the JSON is nested too deeply") from None
    except ValueError as first:
        # Tolerate the trailing commas of the documentation's own example, nothing else.
        fixed = _TRAILING_COMMA.sub(lambda m: m.group(1) or m.group(2), text)
        if fixed != text:
            try:
                return json.loads(fixed)
            except (ValueError, RecursionError):
                pass
        raise ReceiptFormatError(f"invalid JSON: {first}") from None


def _without_lone_surrogates(value: Any) -> Any:
    """Lone surrogates replaced by ``?``; pairs were already joined by the JSON decoder."""
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value


def _folded(obj: Mapping[str, Any]) -> dict[str, Any]:
    # The first non-empty value wins when two spellings fold to the same key.
    out: dict[str, Any] = {}
    for key, value in obj.items():
        folded = _FOLDED_KEYS.get(key)
        if folded is None:
            folded = key.strip().casefold()
            if len(_FOLDED_KEYS) < _FOLDED_KEYS_MAX and len(key) <= _FOLDED_KEY_LENGTH_MAX:
                _FOLDED_KEYS[key] = folded
        if folded not in out or out[folded] in (None, ""):
            out[folded] = value
    return out


def _raw(obj: Mapping[str, Any]) -> str:
    return _dumps(obj)


def _dumps(value: object) -> str:
    """``json.dumps(value, ensure_ascii=False, separators=(",", ":"))``, and as many Python
    frames deep, so a value nested near the recursion limit fails or passes as it did."""
    return _ENCODER.encode(value)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return _dumps(value)


def _timestamp_ms(value: object) -> int | None:
    number: float
    if type(value) is int and _SECONDS_LIMIT <= value <= _EXACT_MS_MAX:
        return value
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    if not math.isfinite(number) or number <= 0 or number >= 1e16:
        return None
    if number < _SECONDS_LIMIT:
        number *= 1000
    return int(number)


def _phone(value: object) -> str | None:
    return phone_key(value) or None if value is not None else None


def _message_id(fields: Mapping[str, Any], raw: str) -> str:
    # A report without a MessageId is still kept (it cannot join a row): its id is derived
    # from its content so a duplicate of it is still stored once.
    found = _text(fields.get("messageid"))
    if found:
        return found
    return _MISSING_ID_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _status(value: object) -> str:
    if type(value) is str:
        canonical = _STATUS_AS_GIVEN.get(value)
        if canonical is not None:
            return canonical
    text = _text(value) or ""
    return CANONICAL_STATUSES.get(text.casefold(), text)


def _receipt(obj: dict[str, Any]) -> Receipt:
    fields = _folded(obj)
    raw = _raw(obj)
    return Receipt(
        message_id=_message_id(fields, raw),
        status=_status(fields.get("status")),
        ts_ms=_timestamp_ms(fields.get("timestamp")),
        error_code=_text(fields.get("errorcode")),
        error_description=_text(fields.get("errordescription")),
        recipient=_phone(fields.get("to")),
        sender=_phone(fields.get("from")),
        raw=raw,
    )


def _inbound(obj: dict[str, Any]) -> Inbound:
    fields = _folded(obj)
    raw = _raw(obj)
    kind = _text(fields.get("type"))
    kind = kind.upper() if kind else None
    message = fields.get("message")
    text: str | None = None
    payload: str | None = None
    if kind == "REPLY":
        text, payload = _button(fields, message)
    elif kind == "TEXT" or (kind is None and isinstance(message, str)):
        text = _text(message) if isinstance(message, str) else _nested(message, "body", "text")
    return Inbound(
        message_id=_message_id(fields, raw),
        sender=_phone(fields.get("from")),
        recipient=_phone(fields.get("to")),
        type=kind,
        text=text,
        payload=payload,
        ts_ms=_timestamp_ms(fields.get("timestamp")),
        raw=raw,
    )


def _button(fields: Mapping[str, Any], message: object) -> tuple[str | None, str | None]:
    """A REPLY's button text and payload: top-level ``Text``/``Payload`` fields, or inside
    ``Message`` (an object, or a JSON string of one), or ``Message`` as the plain text."""
    text = _first(fields, "text", "buttontext", "title")
    payload = _first(fields, "payload", "buttonpayload")
    inner: object = message
    if isinstance(message, str):
        try:
            inner = json.loads(message)
        except (ValueError, RecursionError):
            inner = None
            text = text or _text(message)
    if isinstance(inner, dict):
        text = text or _nested(inner, "text", "buttontext", "title", "body")
        payload = payload or _nested(inner, "payload", "buttonpayload", "id")
    elif isinstance(inner, str | int | float) and not isinstance(inner, bool):
        text = text or _text(inner)
    return text, payload


def _nested(value: object, *names: str) -> str | None:
    if not isinstance(value, dict):
        return None
    return _first(_folded(value), *names)


def _first(fields: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = _text(fields.get(name))
        if value is not None:
            return value
    return None
