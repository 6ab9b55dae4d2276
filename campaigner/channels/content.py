"""The Content rules per channel: which MessageTypes each channel takes and the fields each needs.

As the reference's examples spell them; the WhatsApp ``carousel`` type appears in newer SDK
docstrings but not in the reference, so it is not accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = ("CONTENT_RULES", "MESSAGE_TYPES", "ContentRule")

_MEDIA_AND_CHAT = (
    "text",
    "image",
    "video",
    "document",
    "audio",
    "interactive",
    "couponTemplate",
    "regularTemplate",
    "quickReply",
    "buttonTemplate",
)
MESSAGE_TYPES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "whatsapp": (
            "text",
            "image",
            "video",
            "audio",
            "document",
            "interactive",
            "location",
            "contacts",
            "reaction",
            "sticker",
            "typing_indicator",
            "pin",
        ),
        "viber": (
            "text",
            "image",
            "text_image_button",
            "text_button",
            "document",
            "video",
            "text_video",
            "text_video_button",
            "text_image",
        ),
        "messenger": _MEDIA_AND_CHAT,
        "instagram": _MEDIA_AND_CHAT,
    }
)


@dataclass(frozen=True, slots=True)
class ContentRule:
    """Content fields for one (channel, MessageType), spelled as the reference's examples.

    ``array``: Content is a JSON array of objects (WhatsApp contacts), each needing
    ``required``. Types the reference gives no fields for have the empty rule.
    """

    required: tuple[str, ...] = ()
    forbidden: tuple[str, ...] = ()
    array: bool = False


_NO_CAPTION = ("caption",)
_RULES: dict[tuple[str, str], ContentRule] = {
    ("whatsapp", "text"): ContentRule(("text",), _NO_CAPTION),
    ("whatsapp", "image"): ContentRule(("link",)),
    ("whatsapp", "video"): ContentRule(("link",)),
    ("whatsapp", "audio"): ContentRule(("link",), _NO_CAPTION),
    ("whatsapp", "document"): ContentRule(("link", "fileName"), _NO_CAPTION),
    ("whatsapp", "interactive"): ContentRule(("type", "action")),
    ("whatsapp", "contacts"): ContentRule(("name",), array=True),
    ("whatsapp", "location"): ContentRule(("longitude", "latitude")),
    ("whatsapp", "sticker"): ContentRule(("link",), ("caption", "fileName")),
    ("whatsapp", "reaction"): ContentRule(("messageId", "emoji")),
    ("messenger", "text"): ContentRule(("text",)),
    ("messenger", "image"): ContentRule(("link",)),
    ("messenger", "video"): ContentRule(("link",)),
    ("messenger", "audio"): ContentRule(("link",)),
    ("messenger", "document"): ContentRule(("link",)),
    ("instagram", "text"): ContentRule(("text",)),
    ("instagram", "image"): ContentRule(("link",)),
    ("instagram", "video"): ContentRule(("link",)),
    ("instagram", "audio"): ContentRule(("link",)),
    ("viber", "text"): ContentRule(("text",)),
    ("viber", "image"): ContentRule(("link",)),
    ("viber", "video"): ContentRule(("link", "thumbnail", "fileSize", "duration")),
    ("viber", "document"): ContentRule(("link", "fileName", "fileType")),
    ("viber", "text_button"): ContentRule(("text", "caption", "action")),
    ("viber", "text_image_button"): ContentRule(("text", "link", "caption", "action")),
    ("viber", "text_video"): ContentRule(("text", "link", "thumbnail", "fileSize", "duration")),
    ("viber", "text_video_button"): ContentRule(
        ("text", "link", "thumbnail", "fileSize", "duration", "caption"), ("action",)
    ),
}
# Every allowed (channel, MessageType); the ones the reference is silent on have no fields.
CONTENT_RULES: Mapping[tuple[str, str], ContentRule] = MappingProxyType(
    {
        (channel, kind): _RULES.get((channel, kind), ContentRule())
        for channel, kinds in MESSAGE_TYPES.items()
        for kind in kinds
    }
)
