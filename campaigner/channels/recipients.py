"""Who a call goes to: which channels take a phone number in ``To`` and which an ID, and the
check of ``To``'s form."""

from __future__ import annotations

import re

from campaigner.channels.parameters import CHANNELS
from campaigner.channels.problems import INVALID, Problem, as_text, shown

__all__ = (
    "GROUP_CHANNELS",
    "ID_PATTERN",
    "MAX_ID_CHARS",
    "PHONE_CHANNELS",
    "check_recipient",
    "id_rule",
    "takes_phone_number",
)

PHONE_CHANNELS: frozenset[str] = frozenset({"whatsapp", "viber"})  # To is a phone number
# RecipientType=group is WhatsApp only (the reference ties groups to WhatsApp ``pin``); a
# group's ``To`` is the group ID the Groups API gives (e.g. ``Y2FwaV9ncm91cDox…``), an opaque
# ID like Messenger's PSIDs, so it is checked as an ID.
GROUP_CHANNELS: frozenset[str] = frozenset({"whatsapp"})  # RecipientType=group: To is a group ID
MAX_ID_CHARS = 128
# User and group IDs (PSIDs, IGSIDs, WhatsApp group IDs) are opaque ASCII tokens; allowing
# visible ASCII only also catches no-break and zero-width spaces pasted along with them.
ID_PATTERN = rf"[!-~]{{1,{MAX_ID_CHARS}}}"


def check_recipient(channel: str, to: str, recipient_type: str | None = None) -> Problem | None:
    """Whether ``To`` has the form the channel needs (phone channels: 8-15 digits).

    Messenger and Instagram take page- or account-scoped user IDs, and WhatsApp groups
    (``recipient_type="group"``) group IDs: both are checked with ``ID_PATTERN``. An
    unknown channel is check_call's concern: None.
    """
    value = as_text(to)
    if takes_phone_number(channel, recipient_type):
        if not re.fullmatch(r"[0-9]{8,15}", value):
            return Problem(
                "InvalidParameter.PhoneNumberError",
                "To",
                f"To must be the country code and number, 8 to 15 digits only (got {shown(value)})",
            )
        return None
    if channel in CHANNELS and not re.fullmatch(ID_PATTERN, value):
        return Problem(INVALID, "To", f"{id_rule(channel, recipient_type)} (got {shown(value)})")
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
