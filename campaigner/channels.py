"""SendChatappMessage's rules, as data, and one checker (pure).

Source: the API reference (reference/SendChatappMessage.txt) and cams-wire.md §7, §10.
``check_call`` takes a call in wire form (every value a string, structures as JSON) so the
CLI's validation and the simulator's answers come from the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = (
    "CHANNELS",
    "MESSAGE_TYPES",
    "PARAMETERS",
    "ParamSpec",
    "Problem",
    "check_call",
    "check_recipient",
    "required_content_fields",
)

Kind = Literal["string", "integer", "object", "array", "json"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    kind: Kind
    deprecated: bool = False


PARAMETERS: Mapping[str, ParamSpec] = {
    "ChannelType": ParamSpec("string"),
    "Type": ParamSpec("string"),
    "MessageType": ParamSpec("string"),
    "TemplateCode": ParamSpec("string"),
    "Language": ParamSpec("string"),
    "From": ParamSpec("string"),
    "To": ParamSpec("string"),
    "TemplateParams": ParamSpec("object"),
    "Content": ParamSpec("json"),
    "Payload": ParamSpec("array"),
    "CustWabaId": ParamSpec("string", deprecated=True),
    "FallBackId": ParamSpec("string"),
    "FallBackContent": ParamSpec("string"),
    "IsvCode": ParamSpec("string", deprecated=True),
    "CustSpaceId": ParamSpec("string"),
    "ContextMessageId": ParamSpec("string"),
    "TrackingData": ParamSpec("string"),
    "Label": ParamSpec("string"),
    "Ttl": ParamSpec("integer"),
    "Tag": ParamSpec("string"),
    "TaskId": ParamSpec("string"),
    "FallBackDuration": ParamSpec("integer"),
    "ProductAction": ParamSpec("object"),
    "FallBackRule": ParamSpec("string"),
    "FlowAction": ParamSpec("object"),
    "TemplateName": ParamSpec("string"),
    "RecipientType": ParamSpec("string"),
    "MessageCampaignId": ParamSpec("string"),
    "AdAccountId": ParamSpec("string"),
    "TokenType": ParamSpec("string"),
    "Category": ParamSpec("string"),
}

CHANNELS = ("whatsapp", "messenger", "instagram", "viber")
_MESSENGER_TYPES = (
    "text", "image", "video", "document", "audio", "interactive", "couponTemplate",
    "regularTemplate", "quickReply", "buttonTemplate",
)  # fmt: skip
MESSAGE_TYPES: Mapping[str, tuple[str, ...]] = {
    "whatsapp": (
        "text", "image", "video", "audio", "document", "interactive", "location", "contacts",
        "reaction", "sticker", "typing_indicator", "pin",
    ),
    "viber": (
        "text", "image", "text_image_button", "text_button", "document", "video", "text_video",
        "text_video_button", "text_image",
    ),
    "messenger": _MESSENGER_TYPES,
    "instagram": _MESSENGER_TYPES,
}  # fmt: skip

# (channel, MessageType) -> Content fields that must be present and non-empty.
_REQUIRED: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("whatsapp", "text"): ("text",),
    ("whatsapp", "image"): ("link",),
    ("whatsapp", "video"): ("link",),
    ("whatsapp", "audio"): ("link",),
    ("whatsapp", "document"): ("link", "fileName"),
    ("whatsapp", "interactive"): ("type", "action"),
    ("whatsapp", "contacts"): ("name",),
    ("whatsapp", "location"): ("longitude", "latitude"),
    ("whatsapp", "sticker"): ("link",),
    ("whatsapp", "reaction"): ("messageId", "emoji"),
    ("messenger", "text"): ("text",),
    ("messenger", "image"): ("link",),
    ("messenger", "video"): ("link",),
    ("messenger", "audio"): ("link",),
    ("messenger", "document"): ("link",),
    ("instagram", "text"): ("text",),
    ("instagram", "image"): ("link",),
    ("instagram", "video"): ("link",),
    ("instagram", "audio"): ("link",),
    ("viber", "text"): ("text",),
    ("viber", "image"): ("link",),
    ("viber", "video"): ("link", "thumbnail", "fileSize", "duration"),
    ("viber", "document"): ("link", "fileName", "fileType"),
    ("viber", "text_button"): ("text", "caption", "action"),
    ("viber", "text_image_button"): ("text", "link", "caption", "action"),
    ("viber", "text_video"): ("text", "link", "thumbnail", "fileSize", "duration"),
    ("viber", "text_video_button"): (
        "text", "link", "thumbnail", "fileSize", "duration", "caption",
    ),
}  # fmt: skip
# (channel, MessageType) -> Content fields the API does not accept.
_FORBIDDEN: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("whatsapp", "text"): ("caption",),
    ("whatsapp", "audio"): ("caption",),
    ("whatsapp", "document"): ("caption",),
    ("whatsapp", "sticker"): ("caption", "fileName"),
    ("viber", "text_video_button"): ("action",),
}
_ENUMS: Mapping[str, tuple[str, ...]] = {
    "Label": ("promotion", "transaction"),
    "FallBackRule": ("undelivered", "sentFailed"),
    "RecipientType": ("individual", "group"),
}
_RANGES: Mapping[str, tuple[int, int, str]] = {
    "Ttl": (30, 1_209_600, "seconds"),
    "FallBackDuration": (60, 43_200, "seconds"),
}
_CONTENT_CODES = {"text": "InvalidParameter.TextNotEmpty", "link": "InvalidParameter.LinkNotEmpty"}


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # the CAMS error code the server would answer
    field: str  # the API parameter at fault
    message: str  # a reason a marketer understands


def required_content_fields(channel: str, message_type: str) -> tuple[str, ...]:
    return _REQUIRED.get((channel, message_type), ())


def _present(content: Mapping[str, Any], name: str) -> bool:
    # The reference spells fields both ways (Link/link, FileName/fileName).
    for key, value in content.items():
        if key.lower() == name.lower():
            return value not in (None, "", [], {})
    return False


def _check_content(channel: str, message_type: str, raw: str | None) -> list[Problem]:
    if raw is None or raw == "":
        return [
            Problem(
                "InvalidParameter.ContentNotEmpty",
                "Content",
                "Content is required when Type is message",
            )
        ]
    try:
        content = json.loads(raw)
    except ValueError:
        return [Problem("InvalidParameter.ContentError", "Content", "Content is not valid JSON")]
    if channel == "whatsapp" and message_type == "contacts" and isinstance(content, list):
        if not all(isinstance(c, Mapping) and _present(c, "name") for c in content) or not content:
            return [
                Problem("InvalidParameter.ContentError", "Content", "each contact needs a name")
            ]
        return []
    if not isinstance(content, Mapping):
        return [
            Problem("InvalidParameter.ContentError", "Content", "Content must be a JSON object")
        ]
    problems = []
    for name in required_content_fields(channel, message_type):
        if not _present(content, name):
            problems.append(
                Problem(
                    _CONTENT_CODES.get(name, "InvalidParameter.ContentError"),
                    "Content",
                    f"Content needs a non-empty '{name}' for a {channel} {message_type} message",
                )
            )
    for name in _FORBIDDEN.get((channel, message_type), ()):
        if any(k.lower() == name.lower() for k in content):
            problems.append(
                Problem(
                    "InvalidParameter.ContentError",
                    "Content",
                    f"a {channel} {message_type} message cannot have '{name}' in Content",
                )
            )
    return problems


def check_recipient(channel: str, to: str) -> Problem | None:
    """Wire-level recipient check: phone channels want 8-15 digits, no '+'."""
    if channel in ("whatsapp", "viber"):
        if not (to.isascii() and to.isdigit() and 8 <= len(to) <= 15):
            return Problem(
                "InvalidParameter.PhoneNumberError",
                "To",
                "To must be a phone number of 8 to 15 digits with its country code",
            )
        return None
    if not to or any(c.isspace() for c in to):
        return Problem("InvalidParameter", "To", f"To must be a {channel} user ID without spaces")
    return None


def check_call(query: Mapping[str, str]) -> list[Problem]:
    """Every rule of the reference that a single call can break. Never raises."""
    problems: list[Problem] = []
    channel = query.get("ChannelType", "")
    if channel not in CHANNELS:
        return [
            Problem(
                "InvalidParameter.ChannelTypeNotSupport",
                "ChannelType",
                f"ChannelType must be one of {', '.join(CHANNELS)} (got {channel!r})",
            )
        ]
    for name in ("From", "To"):
        if not query.get(name):
            problems.append(Problem("InvalidParameter", name, f"{name} is required"))
    kind = query.get("Type", "")
    if kind == "template":
        if not query.get("TemplateCode") and not query.get("TemplateName"):
            problems.append(
                Problem(
                    "InvalidParameter.TemplateCodeNotEmpty",
                    "TemplateCode",
                    "TemplateCode is required when Type is template",
                )
            )
        if not query.get("Language"):
            problems.append(
                Problem(
                    "InvalidParameter.LanguageNotEmpty",
                    "Language",
                    "Language is required when Type is template",
                )
            )
    elif kind == "message":
        message_type = query.get("MessageType", "")
        if not message_type:
            problems.append(
                Problem(
                    "InvalidParameter.MessageTypeNotEmpty",
                    "MessageType",
                    "MessageType is required when Type is message",
                )
            )
        elif message_type not in MESSAGE_TYPES[channel]:
            problems.append(
                Problem(
                    "InvalidParameter.MessageTypeNotSupport",
                    "MessageType",
                    f"MessageType {message_type!r} is not available on {channel}; use one of "
                    + ", ".join(MESSAGE_TYPES[channel]),
                )
            )
        else:
            problems.extend(_check_content(channel, message_type, query.get("Content")))
    else:
        problems.append(
            Problem("InvalidParameter", "Type", f"Type must be template or message (got {kind!r})")
        )
    for name, values in _ENUMS.items():
        value = query.get(name)
        if value is not None and value != "" and value not in values:
            problems.append(
                Problem(
                    "InvalidParameter",
                    name,
                    f"{name} must be {' or '.join(values)} (got {value!r})",
                )
            )
    for name, (low, high, unit) in _RANGES.items():
        value = query.get(name)
        if value is None or value == "":
            continue
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            problems.append(
                Problem(
                    "InvalidParameter",
                    name,
                    f"{name} must be a whole number of {unit} from {low} to {high} (got {value})",
                )
            )
    for name in ("TemplateParams", "ProductAction", "FlowAction", "Payload"):
        value = query.get(name)
        if value is None:
            continue
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        wanted = list if name == "Payload" else dict
        if not isinstance(parsed, wanted):
            problems.append(
                Problem("InvalidParameter", name, f"{name} is not valid JSON of the right shape")
            )
    return problems
