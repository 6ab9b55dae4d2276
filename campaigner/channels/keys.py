"""The keys inside ``ProductAction`` and ``FlowAction``: the reference's shapes and the
check for keys it does not define."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from campaigner.spelling import closest

__all__ = ("OBJECT_KEYS", "unknown_keys")

# The keys of the object parameters, as the reference and the SDK model spell them. A dict
# maps each key to the shape under it (None: any value, with free keys); a one-item list
# is an array of that shape. Only these keys are allowed (the SDK model silently drops any
# other, so a misspelt key would never reach the server); ``FlowActionData`` holds free keys.
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
