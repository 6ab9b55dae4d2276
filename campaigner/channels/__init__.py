"""What the SendChatappMessage reference allows per channel, as data, and one call checker.

The public names of the parts below, so importers need only ``campaigner.channels``.
"""

# The data follow the API reference ("Last Updated Mar 27, 2026"), summarized in
# docs/wire-format.md#parameter-rules. ``check_call`` reads a call in wire form (every
# parameter a string, exactly as it goes in the query) and lists what the server would
# reject, each with the CAMS error code it would answer. The CLI uses it to validate before
# sending and the simulator to answer like the server, so it never raises, whatever the input.
# Where the reference is silent or loose, the decision is written beside the code it shapes.
#
#   parameters.py   the request parameters: specs, channels, types, enums, ranges
#   content.py      the MessageTypes per channel and the Content fields each needs
#   recipients.py   To: phone number or ID, and its check
#   keys.py         the keys inside ProductAction and FlowAction
#   problems.py     Problem, the CAMS codes, wire values read and shown
#   message.py      a Type=message call's MessageType and Content checked
#   json_params.py  TemplateParams, Payload, ProductAction, FlowAction checked
#   call.py         check_call: the whole call

from __future__ import annotations

from campaigner.channels.call import check_call
from campaigner.channels.content import CONTENT_RULES, MESSAGE_TYPES, ContentRule
from campaigner.channels.keys import OBJECT_KEYS, unknown_keys
from campaigner.channels.parameters import (
    CHANNELS,
    ENUMS,
    PARAMETERS,
    RANGES,
    TYPES,
    ParamSpec,
)
from campaigner.channels.problems import Problem
from campaigner.channels.recipients import (
    GROUP_CHANNELS,
    ID_PATTERN,
    MAX_ID_CHARS,
    PHONE_CHANNELS,
    check_recipient,
    id_rule,
    takes_phone_number,
)

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
