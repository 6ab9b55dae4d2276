"""The SendChatappMessage request parameters as data: specs, channels, types, enums, ranges.

From the API reference ("Last Updated Mar 27, 2026"): docs/wire-format.md#parameter-rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = ("CHANNELS", "ENUMS", "PARAMETERS", "RANGES", "TYPES", "Kind", "ParamSpec")

Kind = Literal["string", "integer", "object", "array", "json"]


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """One request parameter of SendChatappMessage.

    ``kind`` is its type in the reference; on the wire every value is a string, and
    object/array parameters are compact JSON. ``json`` (Content only) is a string that must
    hold JSON: an object, or an array of contacts for WhatsApp ``contacts``.
    """

    name: str
    kind: Kind
    required: bool = False
    required_when: str | None = None  # e.g. "Type=template"
    deprecated: bool = False
    documented: bool = True  # False: only in the SDK model, not on the reference page


def _specs(*specs: ParamSpec) -> Mapping[str, ParamSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


# Every parameter, in the reference's order; the last three exist only in the SDK model.
# Unknown parameter names are not reported by check_call: this lists the known ones.
PARAMETERS: Mapping[str, ParamSpec] = _specs(
    ParamSpec("ChannelType", "string", required=True),
    ParamSpec("Type", "string", required=True),
    ParamSpec("MessageType", "string", required_when="Type=message"),
    ParamSpec("TemplateCode", "string", required_when="Type=template"),
    ParamSpec("Language", "string", required_when="Type=template"),
    ParamSpec("From", "string", required=True),
    ParamSpec("To", "string", required=True),
    ParamSpec("TemplateParams", "object"),
    ParamSpec("Content", "json", required_when="Type=message"),
    ParamSpec("Payload", "array"),
    ParamSpec("CustWabaId", "string", deprecated=True),
    ParamSpec("FallBackId", "string"),
    ParamSpec("FallBackContent", "string"),
    ParamSpec("IsvCode", "string", deprecated=True),
    ParamSpec("CustSpaceId", "string"),
    ParamSpec("ContextMessageId", "string"),
    ParamSpec("TrackingData", "string"),
    ParamSpec("Label", "string"),
    ParamSpec("Ttl", "integer"),
    ParamSpec("Tag", "string"),
    ParamSpec("TaskId", "string"),
    ParamSpec("FallBackDuration", "integer"),
    ParamSpec("ProductAction", "object"),
    ParamSpec("FallBackRule", "string"),
    ParamSpec("FlowAction", "object"),
    ParamSpec("TemplateName", "string"),
    ParamSpec("RecipientType", "string"),
    ParamSpec("MessageCampaignId", "string"),
    ParamSpec("AdAccountId", "string"),
    ParamSpec("TokenType", "string"),
    ParamSpec("Category", "string"),
    ParamSpec("OwnerId", "integer", documented=False),
    ParamSpec("ResourceOwnerId", "integer", documented=False),
    ParamSpec("ResourceOwnerAccount", "string", documented=False),
)

# ``telegram`` appears in newer SDK docstrings but not in the reference, so it is not accepted.
CHANNELS: tuple[str, ...] = ("whatsapp", "messenger", "instagram", "viber")
TYPES: tuple[str, ...] = ("template", "message")

# Parameters that only matter on one channel (``Ttl`` and ``Label`` for Viber) are checked
# for form, not refused elsewhere: the reference does not say the server rejects them.
ENUMS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "Label": ("promotion", "transaction"),
        "FallBackRule": ("undelivered", "sentFailed"),
        "RecipientType": ("individual", "group"),
    }
)
# name -> (lowest, highest, unit)
RANGES: Mapping[str, tuple[int, int, str]] = MappingProxyType(
    {"Ttl": (30, 1_209_600, "seconds"), "FallBackDuration": (60, 43_200, "seconds")}
)
