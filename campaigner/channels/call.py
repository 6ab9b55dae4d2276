"""``check_call``: one SendChatappMessage call in wire form against the reference, every
problem the server would answer listed, never raising."""

from __future__ import annotations

import re
from collections.abc import Mapping

from campaigner.channels.json_params import check_json_parameters
from campaigner.channels.message import check_message
from campaigner.channels.parameters import CHANNELS, ENUMS, PARAMETERS, RANGES, TYPES
from campaigner.channels.problems import INVALID, Problem, as_text, shown, suggestion
from campaigner.channels.recipients import GROUP_CHANNELS

__all__ = ("check_call",)

# Empty optional parameters count as absent: the SDK sends ``Tag=`` for an empty string, and
# the reference defines an empty ``FallBackRule`` as the default rule.


def check_call(query: Mapping[str, str]) -> list[Problem]:
    """Problems of one SendChatappMessage call in wire form; empty when the call is valid."""
    problems: list[Problem] = []
    values = {name: as_text(value) for name, value in query.items() if as_text(value).strip()}
    channel = _check_channel(values.get("ChannelType"), problems)
    kind = _check_type(values.get("Type"), problems)
    _check_sender(channel, values.get("From"), problems)
    if "To" not in values:
        problems.append(Problem(INVALID, "To", "To is required: the recipient's number or ID"))
    if kind == "template":
        _check_template(values, problems)
    elif kind == "message":
        check_message(channel, values, problems)
    for name, allowed in ENUMS.items():
        if name in values and values[name] not in allowed:
            choices = " or ".join(allowed)
            problems.append(
                Problem(INVALID, name, f"{name} must be {choices} (got {shown(values[name])})")
            )
    if values.get("RecipientType") == "group" and channel and channel not in GROUP_CHANNELS:
        message = f"RecipientType group is for WhatsApp groups only, not {channel}"
        problems.append(Problem(INVALID, "RecipientType", message))
    for name, spec in PARAMETERS.items():
        if spec.kind == "integer" and name in values:
            _check_integer(name, values[name], problems)
    check_json_parameters(values, problems)
    return problems


def _check_channel(value: str | None, problems: list[Problem]) -> str | None:
    code = "InvalidParameter.ChannelTypeNotSupport"
    choices = ", ".join(CHANNELS)
    if value is None:
        problems.append(Problem(code, "ChannelType", f"ChannelType is required: {choices}"))
        return None
    if value not in CHANNELS:
        hint = suggestion(value, CHANNELS)
        message = f"ChannelType {shown(value)} is not supported: use {choices}{hint}"
        problems.append(Problem(code, "ChannelType", message))
        return None
    return value


def _check_type(value: str | None, problems: list[Problem]) -> str | None:
    if value is None:
        message = "Type is required: template (an approved template) or message (free form)"
        problems.append(Problem(INVALID, "Type", message))
        return None
    if value not in TYPES:
        hint = suggestion(value, TYPES)
        message = f"Type must be template or message (got {shown(value)}){hint}"
        problems.append(Problem(INVALID, "Type", message))
        return None
    return value


def _check_sender(channel: str | None, value: str | None, problems: list[Problem]) -> None:
    if value is None:
        problems.append(Problem(INVALID, "From", "From is required: the sender number or ID"))
    elif channel == "whatsapp" and not re.fullmatch(r"[0-9]+", value):
        message = (
            "From must be the WhatsApp sender number in digits only, with the country code "
            f"and no + (got {shown(value)})"
        )
        problems.append(Problem("InvalidParameter.FromOnlyNumeric", "From", message))


def _check_template(values: Mapping[str, str], problems: list[Problem]) -> None:
    # ``Type=template`` needs ``TemplateCode``. The reference names ``TemplateName`` but says
    # only TemplateCode is required; nothing found says a name can replace the code for this
    # API (either is allowed only for SendChatappMassMessage: docs/wire-format.md#mass-send),
    # so a name alone is rejected.
    if "TemplateCode" not in values:
        message = "TemplateCode is required for Type=template (see Template Design)"
        if "TemplateName" in values:
            message += "; TemplateName alone is not enough"
        problems.append(Problem("InvalidParameter.TemplateCodeNotEmpty", "TemplateCode", message))
    if "Language" not in values:
        message = "Language is required for Type=template, e.g. en"
        problems.append(Problem("InvalidParameter.LanguageNotEmpty", "Language", message))


def _check_integer(name: str, value: str, problems: list[Problem]) -> None:
    # Strict like the server's integer parsing: no spaces, no decimals.
    whole = re.fullmatch(r"[+-]?[0-9]+", value) is not None
    limits = RANGES.get(name)
    if limits is None:
        if not whole:
            message = f"{name} must be a whole number (got {shown(value)})"
            problems.append(Problem(INVALID, name, message))
        return
    low, high, unit = limits
    # int() refuses very long digit strings (Python 3.11): those are out of range anyway.
    fits = whole and len(value.lstrip("+-").lstrip("0")) <= 12
    if not (fits and low <= int(value) <= high):
        shown_value = value if fits else shown(value)
        message = (
            f"{name} must be a whole number of {unit} from {low} to {high} (got {shown_value})"
        )
        problems.append(Problem(INVALID, name, message))
