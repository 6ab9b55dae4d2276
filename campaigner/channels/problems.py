"""A reason the server would reject a call: ``Problem``, the CAMS codes it carries, and how
a wire value is read and shown in its message."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from campaigner.spelling import closest

__all__ = (
    "BAD_JSON",
    "CONTENT_ERROR",
    "INVALID",
    "MISSING_FIELD_CODES",
    "URL_NOT_HTTP",
    "Problem",
    "as_text",
    "parse_json",
    "shown",
    "suggestion",
)

# Codes the server answers (docs/wire-format.md#error-codes); ranges, enums and plain missing
# values have no specific code there, so they get the generic one.
INVALID = "InvalidParameter"
MISSING_FIELD_CODES = {
    "text": "InvalidParameter.TextNotEmpty",
    "link": "InvalidParameter.LinkNotEmpty",
}
CONTENT_ERROR = "InvalidParameter.ContentError"
URL_NOT_HTTP = "ERR-OPERATION-MAAP-0085"


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason the server would reject the call."""

    code: str  # the CAMS error code, e.g. "InvalidParameter.TemplateCodeNotEmpty"
    field: str  # the API parameter, e.g. "Content"
    message: str  # what to fix, in words a marketer understands


def as_text(value: object) -> str:
    """A wire value as text: wire values are strings; anything else (from a careless
    caller) is read as its text."""
    return value if isinstance(value, str) else str(value)


def shown(value: str) -> str:
    """A value quoted for a message, cut to 40 characters."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def suggestion(value: str, allowed: tuple[str, ...]) -> str:
    """A did-you-mean for a short list; empty when there is none."""
    # Only a difference of case or surrounding spaces is suggested for these short lists.
    option = closest(value.strip(), allowed, cutoff=1.0)
    return f" (did you mean {option!r}?)" if option else ""


BAD_JSON: Any = object()  # parse_json's answer for text that is not JSON


def _not_json(constant: str) -> Any:
    # Python writes float("nan") and infinities as NaN/Infinity, which JSON does not have.
    raise ValueError(f"{constant} is not JSON")


def parse_json(text: str) -> Any:
    """The JSON value of a wire parameter, or ``BAD_JSON``; never raises."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and huge ints
        return BAD_JSON
