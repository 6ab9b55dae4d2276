"""A ``Type=message`` call checked: its MessageType on the channel and its Content against the
channel's Content rule."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from campaigner.channels.content import CONTENT_RULES, MESSAGE_TYPES, ContentRule
from campaigner.channels.problems import (
    BAD_JSON,
    CONTENT_ERROR,
    MISSING_FIELD_CODES,
    URL_NOT_HTTP,
    Problem,
    parse_json,
    shown,
    suggestion,
)

__all__ = ("check_message",)

# Content field names are compared case-insensitively: the reference itself writes both
# ``Link`` and ``link``, ``FileName`` and ``fileName``, ``Caption`` and ``caption``. A
# required field is missing if absent, null, blank text, or an empty object/array.


def check_message(channel: str | None, values: Mapping[str, str], problems: list[Problem]) -> None:
    """Add to ``problems`` what is wrong with MessageType and Content (``channel``: None
    when ChannelType is not valid)."""
    kind = values.get("MessageType")
    if kind is None:
        message = "MessageType is required for Type=message, e.g. text"
        problems.append(Problem("InvalidParameter.MessageTypeNotEmpty", "MessageType", message))
    elif channel is not None and kind not in MESSAGE_TYPES[channel]:
        allowed = MESSAGE_TYPES[channel]
        message = (
            f"MessageType {shown(kind)} is not supported on {channel}: use one of "
            f"{', '.join(allowed)}{suggestion(kind, allowed)}"
        )
        problems.append(Problem("InvalidParameter.MessageTypeNotSupport", "MessageType", message))
        kind = None
    elif channel == "whatsapp" and kind == "pin" and values.get("RecipientType") != "group":
        message = "pin messages can only be sent to groups: set RecipientType=group"
        problems.append(Problem("InvalidParameter.MessageTypeNotSupport", "MessageType", message))
    content = values.get("Content")
    if content is None:
        message = 'Content is required for Type=message: the message as JSON, e.g. {"text":"Hi"}'
        problems.append(Problem("InvalidParameter.ContentNotEmpty", "Content", message))
        return
    parsed = parse_json(content)
    if parsed is BAD_JSON:
        message = f"Content is not valid JSON (got {shown(content)})"
        problems.append(Problem(CONTENT_ERROR, "Content", message))
        return
    if channel is None or kind is None:
        return  # which fields are needed depends on a valid channel and MessageType
    rule = CONTENT_RULES[(channel, kind)]
    _check_content(parsed, rule, f"{channel} {kind}", problems)


def _check_content(parsed: Any, rule: ContentRule, what: str, problems: list[Problem]) -> None:
    if rule.array:
        if not isinstance(parsed, list) or not parsed:
            message = f'Content for {what} must be a JSON array of contacts, e.g. [{{"name":...}}]'
            problems.append(Problem(CONTENT_ERROR, "Content", message))
            return
        items = parsed
    elif not isinstance(parsed, dict):
        message = f'Content for {what} must be a JSON object, e.g. {{"text":"Hi"}}'
        problems.append(Problem(CONTENT_ERROR, "Content", message))
        return
    else:
        items = [parsed]
    for number, item in enumerate(items, start=1):
        where = f" in contact {number}" if rule.array else ""
        if not isinstance(item, dict):
            message = f"Content for {what}: contact {number} must be a JSON object"
            problems.append(Problem(CONTENT_ERROR, "Content", message))
            continue
        fields = {str(key).lower(): value for key, value in item.items()}
        for name in rule.required:
            if not _present(fields.get(name.lower())):
                code = MISSING_FIELD_CODES.get(name.lower(), CONTENT_ERROR)
                message = f"Content for {what} needs a {name!r} field{where}"
                problems.append(Problem(code, "Content", message))
        for name in rule.forbidden:
            if name.lower() in fields:
                message = f"Content for {what} must not have a {name!r} field{where}"
                problems.append(Problem(CONTENT_ERROR, "Content", message))
        link = fields.get("link")
        if (
            isinstance(link, str)
            and link.strip()
            and not re.match(r"https?://", link.strip(), re.I)
        ):
            message = f"the link in Content must start with http:// or https:// (got {shown(link)})"
            problems.append(Problem(URL_NOT_HTTP, "Content", message))


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict | list):
        return bool(value)
    return True
