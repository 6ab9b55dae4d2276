"""What the SendChatappMessage reference allows, as data, and one checker for a call.

The data follow the API reference ("Last Updated Mar 27, 2026"), summarized in
docs/wire-format.md#parameter-rules. ``check_call`` reads a call in wire form (every parameter a
string, exactly as it goes in the query) and lists what the server would reject, each with
the CAMS error code it would answer. The CLI uses it to validate before sending and the
simulator to answer like the server, so it never raises, whatever the input.

Decisions where the reference is silent or loose:

- ``Type=template`` needs ``TemplateCode``. The reference names ``TemplateName`` but says
  only TemplateCode is required; nothing found says a name can replace the code for this
  API (either is allowed only for SendChatappMassMessage: docs/wire-format.md#mass-send), so a
  name alone is rejected.
- Content field names are compared case-insensitively: the reference itself writes both
  ``Link`` and ``link``, ``FileName`` and ``fileName``, ``Caption`` and ``caption``.
- A required Content field is missing if absent, null, blank text, or an empty object/array.
- Empty optional parameters count as absent: the SDK sends ``Tag=`` for an empty string, and
  the reference defines an empty ``FallBackRule`` as the default rule.
- Parameters that only matter on one channel (``Ttl`` and ``Label`` for Viber,
  ``ProductAction`` for WhatsApp) are checked for form, not refused elsewhere: the
  reference does not say the server rejects them.
- Unknown parameter names are not reported (``PARAMETERS`` lists the known ones).
- ``telegram`` and the WhatsApp ``carousel`` type appear in newer SDK docstrings but not in
  the reference, so they are not accepted.
- ``RecipientType=group`` is WhatsApp only (the reference ties groups to WhatsApp ``pin``);
  a group's ``To`` is the group ID the Groups API gives (e.g. ``Y2FwaV9ncm91cDox…``), an
  opaque ID like Messenger's PSIDs, so it is checked as an ID: 1 to 128 visible ASCII
  characters, no spaces.
- Keys inside ``ProductAction`` and ``FlowAction`` must be the reference's (the SDK model
  silently drops any other, so a misspelt key would never reach the server);
  ``FlowActionData`` holds free keys.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from campaigner.spelling import closest

__all__ = (
    "CHANNELS",
    "CONTENT_RULES",
    "ENUMS",
    "GROUP_CHANNELS",
    "ID_PATTERN",
    "MAX_ID_CHARS",
    "MESSAGE_TYPES",
    "OBJECT_KEYS",
    "PARAMETERS",
    "PHONE_CHANNELS",
    "RANGES",
    "TYPES",
    "ContentRule",
    "ParamSpec",
    "Problem",
    "check_call",
    "check_recipient",
    "id_rule",
    "takes_phone_number",
    "unknown_keys",
)

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

CHANNELS: tuple[str, ...] = ("whatsapp", "messenger", "instagram", "viber")
PHONE_CHANNELS: frozenset[str] = frozenset({"whatsapp", "viber"})  # To is a phone number
GROUP_CHANNELS: frozenset[str] = frozenset({"whatsapp"})  # RecipientType=group: To is a group ID
MAX_ID_CHARS = 128
# User and group IDs (PSIDs, IGSIDs, WhatsApp group IDs) are opaque ASCII tokens; allowing
# visible ASCII only also catches no-break and zero-width spaces pasted along with them.
ID_PATTERN = rf"[!-~]{{1,{MAX_ID_CHARS}}}"
TYPES: tuple[str, ...] = ("template", "message")

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
_MAX_SECTIONS, _MAX_PRODUCTS = 10, 30  # ProductAction limits in the reference
# The keys of the object parameters, as the reference and the SDK model spell them. A dict
# maps each key to the shape under it (None: any value, with free keys); a one-item list
# is an array of that shape.
OBJECT_KEYS: Mapping[str, Any] = MappingProxyType(
    {
        "ProductAction": {
            "Sections": [{"ProductItems": [{"ProductRetailerId": None}], "Title": None}],
            "ThumbnailProductRetailerId": None,
        },
        "FlowAction": {"FlowActionData": None, "FlowToken": None},
    }
)
_ITEM_NAMES = {"Sections": "section", "ProductItems": "product"}

# Codes the server answers (docs/wire-format.md#error-codes); ranges, enums and plain missing
# values have no specific code there, so they get the generic one.
_INVALID = "InvalidParameter"
_MISSING_FIELD_CODES = {
    "text": "InvalidParameter.TextNotEmpty",
    "link": "InvalidParameter.LinkNotEmpty",
}
_CONTENT_ERROR = "InvalidParameter.ContentError"
_URL_NOT_HTTP = "ERR-OPERATION-MAAP-0085"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the server would reject the call."""

    code: str  # the CAMS error code, e.g. "InvalidParameter.TemplateCodeNotEmpty"
    field: str  # the API parameter, e.g. "Content"
    message: str  # what to fix, in words a marketer understands


def check_call(query: Mapping[str, str]) -> list[Problem]:
    """Problems of one SendChatappMessage call in wire form; empty when the call is valid."""
    problems: list[Problem] = []
    values = {name: _text(value) for name, value in query.items() if _text(value).strip()}
    channel = _check_channel(values.get("ChannelType"), problems)
    kind = _check_type(values.get("Type"), problems)
    _check_sender(channel, values.get("From"), problems)
    if "To" not in values:
        problems.append(Problem(_INVALID, "To", "To is required: the recipient's number or ID"))
    if kind == "template":
        _check_template(values, problems)
    elif kind == "message":
        _check_message(channel, values, problems)
    for name, allowed in ENUMS.items():
        if name in values and values[name] not in allowed:
            choices = " or ".join(allowed)
            problems.append(
                Problem(_INVALID, name, f"{name} must be {choices} (got {_shown(values[name])})")
            )
    if values.get("RecipientType") == "group" and channel and channel not in GROUP_CHANNELS:
        message = f"RecipientType group is for WhatsApp groups only, not {channel}"
        problems.append(Problem(_INVALID, "RecipientType", message))
    for name, spec in PARAMETERS.items():
        if spec.kind == "integer" and name in values:
            _check_integer(name, values[name], problems)
    _check_json_parameters(values, problems)
    return problems


def check_recipient(channel: str, to: str, recipient_type: str | None = None) -> Problem | None:
    """Whether ``To`` has the form the channel needs (phone channels: 8-15 digits).

    Messenger and Instagram take page- or account-scoped user IDs, and WhatsApp groups
    (``recipient_type="group"``) group IDs: both are checked with ``ID_PATTERN``. An
    unknown channel is check_call's concern: None.
    """
    value = _text(to)
    if takes_phone_number(channel, recipient_type):
        if not re.fullmatch(r"[0-9]{8,15}", value):
            return Problem(
                "InvalidParameter.PhoneNumberError",
                "To",
                f"To must be the country code and number, 8 to 15 digits only "
                f"(got {_shown(value)})",
            )
        return None
    if channel in CHANNELS and not re.fullmatch(ID_PATTERN, value):
        return Problem(_INVALID, "To", f"{id_rule(channel, recipient_type)} (got {_shown(value)})")
    return None


def takes_phone_number(channel: str, recipient_type: str | None) -> bool:
    """Whether ``To`` is a phone number (else a user or group ID) for this call."""
    group = channel in GROUP_CHANNELS and recipient_type == "group"
    return channel in PHONE_CHANNELS and not group


def id_rule(channel: str, recipient_type: str | None) -> str:
    """What an ID ``To`` must look like, in words (no value: it goes to reports and logs)."""
    group = channel in GROUP_CHANNELS and recipient_type == "group"
    what = "WhatsApp group ID" if group else f"{channel} user ID"
    return f"To must be a {what}: 1 to {MAX_ID_CHARS} letters, digits or symbols, no spaces"


def unknown_keys(name: str, value: object) -> list[tuple[str, str, str | None]]:
    """Keys inside ``ProductAction``/``FlowAction`` that the reference does not define.

    Each is ``(where, key, closest valid key or None)``, ``where`` in words such as
    ``ProductAction section 2``. Shapes other than the reference's are not reported here
    (check_call does that), so any value is safe.
    """
    found: list[tuple[str, str, str | None]] = []
    if name in OBJECT_KEYS:
        _walk_keys(OBJECT_KEYS[name], value, name, found)
    return found


def _walk_keys(
    shape: Any, value: object, where: str, found: list[tuple[str, str, str | None]]
) -> None:
    if not isinstance(shape, dict) or not isinstance(value, Mapping):
        return
    for key, item in value.items():
        if key not in shape:
            found.append((where, str(key), closest(str(key), shape)))
            continue
        inner = shape[key]
        if isinstance(inner, list) and isinstance(item, list):
            for number, element in enumerate(item, start=1):
                _walk_keys(inner[0], element, f"{where} {_ITEM_NAMES[key]} {number}", found)
        else:
            _walk_keys(inner, item, f"{where} {key}", found)


# --- parts of check_call ---------------------------------------------------------------------


def _text(value: object) -> str:
    # Wire values are strings; anything else (from a careless caller) is read as its text.
    return value if isinstance(value, str) else str(value)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _suggest(value: str, allowed: tuple[str, ...]) -> str:
    # Only a difference of case or surrounding spaces is suggested for these short lists.
    option = closest(value.strip(), allowed, cutoff=1.0)
    return f" (did you mean {option!r}?)" if option else ""


def _check_channel(value: str | None, problems: list[Problem]) -> str | None:
    code = "InvalidParameter.ChannelTypeNotSupport"
    choices = ", ".join(CHANNELS)
    if value is None:
        problems.append(Problem(code, "ChannelType", f"ChannelType is required: {choices}"))
        return None
    if value not in CHANNELS:
        hint = _suggest(value, CHANNELS)
        message = f"ChannelType {_shown(value)} is not supported: use {choices}{hint}"
        problems.append(Problem(code, "ChannelType", message))
        return None
    return value


def _check_type(value: str | None, problems: list[Problem]) -> str | None:
    if value is None:
        message = "Type is required: template (an approved template) or message (free form)"
        problems.append(Problem(_INVALID, "Type", message))
        return None
    if value not in TYPES:
        hint = _suggest(value, TYPES)
        message = f"Type must be template or message (got {_shown(value)}){hint}"
        problems.append(Problem(_INVALID, "Type", message))
        return None
    return value


def _check_sender(channel: str | None, value: str | None, problems: list[Problem]) -> None:
    if value is None:
        problems.append(Problem(_INVALID, "From", "From is required: the sender number or ID"))
    elif channel == "whatsapp" and not re.fullmatch(r"[0-9]+", value):
        message = (
            "From must be the WhatsApp sender number in digits only, with the country code "
            f"and no + (got {_shown(value)})"
        )
        problems.append(Problem("InvalidParameter.FromOnlyNumeric", "From", message))


def _check_template(values: Mapping[str, str], problems: list[Problem]) -> None:
    if "TemplateCode" not in values:
        message = "TemplateCode is required for Type=template (see Template Design)"
        if "TemplateName" in values:
            message += "; TemplateName alone is not enough"
        problems.append(Problem("InvalidParameter.TemplateCodeNotEmpty", "TemplateCode", message))
    if "Language" not in values:
        message = "Language is required for Type=template, e.g. en"
        problems.append(Problem("InvalidParameter.LanguageNotEmpty", "Language", message))


def _check_message(channel: str | None, values: Mapping[str, str], problems: list[Problem]) -> None:
    kind = values.get("MessageType")
    if kind is None:
        message = "MessageType is required for Type=message, e.g. text"
        problems.append(Problem("InvalidParameter.MessageTypeNotEmpty", "MessageType", message))
    elif channel is not None and kind not in MESSAGE_TYPES[channel]:
        allowed = MESSAGE_TYPES[channel]
        message = (
            f"MessageType {_shown(kind)} is not supported on {channel}: use one of "
            f"{', '.join(allowed)}{_suggest(kind, allowed)}"
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
    parsed = _json(content)
    if parsed is _BAD_JSON:
        message = f"Content is not valid JSON (got {_shown(content)})"
        problems.append(Problem(_CONTENT_ERROR, "Content", message))
        return
    if channel is None or kind is None:
        return  # which fields are needed depends on a valid channel and MessageType
    rule = CONTENT_RULES[(channel, kind)]
    _check_content(parsed, rule, f"{channel} {kind}", problems)


def _check_content(parsed: Any, rule: ContentRule, what: str, problems: list[Problem]) -> None:
    if rule.array:
        if not isinstance(parsed, list) or not parsed:
            message = f'Content for {what} must be a JSON array of contacts, e.g. [{{"name":...}}]'
            problems.append(Problem(_CONTENT_ERROR, "Content", message))
            return
        items = parsed
    elif not isinstance(parsed, dict):
        message = f'Content for {what} must be a JSON object, e.g. {{"text":"Hi"}}'
        problems.append(Problem(_CONTENT_ERROR, "Content", message))
        return
    else:
        items = [parsed]
    for number, item in enumerate(items, start=1):
        where = f" in contact {number}" if rule.array else ""
        if not isinstance(item, dict):
            message = f"Content for {what}: contact {number} must be a JSON object"
            problems.append(Problem(_CONTENT_ERROR, "Content", message))
            continue
        fields = {str(key).lower(): value for key, value in item.items()}
        for name in rule.required:
            if not _present(fields.get(name.lower())):
                code = _MISSING_FIELD_CODES.get(name.lower(), _CONTENT_ERROR)
                message = f"Content for {what} needs a {name!r} field{where}"
                problems.append(Problem(code, "Content", message))
        for name in rule.forbidden:
            if name.lower() in fields:
                message = f"Content for {what} must not have a {name!r} field{where}"
                problems.append(Problem(_CONTENT_ERROR, "Content", message))
        link = fields.get("link")
        if (
            isinstance(link, str)
            and link.strip()
            and not re.match(r"https?://", link.strip(), re.I)
        ):
            message = (
                f"the link in Content must start with http:// or https:// (got {_shown(link)})"
            )
            problems.append(Problem(_URL_NOT_HTTP, "Content", message))


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict | list):
        return bool(value)
    return True


def _check_integer(name: str, value: str, problems: list[Problem]) -> None:
    # Strict like the server's integer parsing: no spaces, no decimals.
    whole = re.fullmatch(r"[+-]?[0-9]+", value) is not None
    limits = RANGES.get(name)
    if limits is None:
        if not whole:
            message = f"{name} must be a whole number (got {_shown(value)})"
            problems.append(Problem(_INVALID, name, message))
        return
    low, high, unit = limits
    # int() refuses very long digit strings (Python 3.11): those are out of range anyway.
    fits = whole and len(value.lstrip("+-").lstrip("0")) <= 12
    if not (fits and low <= int(value) <= high):
        shown = value if fits else _shown(value)
        message = f"{name} must be a whole number of {unit} from {low} to {high} (got {shown})"
        problems.append(Problem(_INVALID, name, message))


_BAD_JSON: Any = object()


def _not_json(constant: str) -> Any:
    # Python writes float("nan") and infinities as NaN/Infinity, which JSON does not have.
    raise ValueError(f"{constant} is not JSON")


def _json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and huge ints
        return _BAD_JSON


def _check_json_parameters(values: Mapping[str, str], problems: list[Problem]) -> None:
    checks = {
        "TemplateParams": _template_params_problem,
        "Payload": _payload_problem,
        "ProductAction": _product_action_problem,
        "FlowAction": _flow_action_problem,
    }
    for name, check in checks.items():
        if name not in values:
            continue
        parsed = _json(values[name])
        problem = (
            f"{name} is not valid JSON (got {_shown(values[name])})"
            if parsed is _BAD_JSON
            else check(parsed)
        )
        if problem:
            problems.append(Problem(_INVALID, name, problem))


def _template_params_problem(parsed: Any) -> str | None:
    if not isinstance(parsed, dict):
        return 'TemplateParams must be a JSON object of texts, e.g. {"name":"Ana"}'
    bad = [key for key, value in parsed.items() if not isinstance(value, str)]
    if bad:
        return f"TemplateParams values must be texts (not for {', '.join(map(repr, bad[:3]))})"
    return None


def _payload_problem(parsed: Any) -> str | None:
    if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
        return 'Payload must be a JSON array of texts, e.g. ["yes","no"]'
    return None


def _unknown_key_problem(name: str, parsed: Any) -> str | None:
    for where, key, hint in unknown_keys(name, parsed):
        return f"{where} has an unknown key {key!r}" + (
            f" (did you mean {hint!r}?)" if hint else ""
        )
    return None


def _product_action_problem(parsed: Any) -> str | None:
    if not isinstance(parsed, dict):
        return "ProductAction must be a JSON object with ThumbnailProductRetailerId and Sections"
    unknown = _unknown_key_problem("ProductAction", parsed)
    if unknown:
        return unknown
    thumbnail = parsed.get("ThumbnailProductRetailerId")
    if thumbnail is not None and not isinstance(thumbnail, str):
        return "ProductAction ThumbnailProductRetailerId must be a text"
    sections = parsed.get("Sections", [])
    if not isinstance(sections, list) or not all(isinstance(s, dict) for s in sections):
        return "ProductAction Sections must be an array of objects with Title and ProductItems"
    if len(sections) > _MAX_SECTIONS:
        return f"ProductAction can have at most {_MAX_SECTIONS} Sections (got {len(sections)})"
    products = 0
    for section in sections:
        if not isinstance(section.get("Title", ""), str):
            return "ProductAction section Title must be a text"
        items = section.get("ProductItems", [])
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("ProductRetailerId"), str)
            for item in items
        ):
            return "ProductAction ProductItems must be objects with a ProductRetailerId text"
        products += len(items)
    if products > _MAX_PRODUCTS:
        return f"ProductAction can have at most {_MAX_PRODUCTS} products (got {products})"
    return None


def _flow_action_problem(parsed: Any) -> str | None:
    if not isinstance(parsed, dict):
        return "FlowAction must be a JSON object with FlowToken and FlowActionData"
    unknown = _unknown_key_problem("FlowAction", parsed)
    if unknown:
        return unknown
    if "FlowActionData" in parsed and not isinstance(parsed["FlowActionData"], dict):
        return "FlowAction FlowActionData must be a JSON object"
    if "FlowToken" in parsed and not isinstance(parsed["FlowToken"], str):
        return "FlowAction FlowToken must be a text"
    return None
