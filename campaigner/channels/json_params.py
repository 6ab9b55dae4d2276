"""The JSON parameters of a call (TemplateParams, Payload, ProductAction, FlowAction): their
shapes and limits checked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from campaigner.channels.keys import unknown_keys
from campaigner.channels.problems import BAD_JSON, INVALID, Problem, parse_json, shown

__all__ = ("check_json_parameters",)

# ProductAction's limits in the reference. ``ProductAction`` only matters on WhatsApp: it is
# checked for form, not refused elsewhere (the reference does not say the server rejects it).
_MAX_SECTIONS, _MAX_PRODUCTS = 10, 30


def check_json_parameters(values: Mapping[str, str], problems: list[Problem]) -> None:
    """Add to ``problems`` what is wrong with the JSON parameters present in ``values``."""
    checks = {
        "TemplateParams": _template_params_problem,
        "Payload": _payload_problem,
        "ProductAction": _product_action_problem,
        "FlowAction": _flow_action_problem,
    }
    for name, check in checks.items():
        if name not in values:
            continue
        parsed = parse_json(values[name])
        problem = (
            f"{name} is not valid JSON (got {shown(values[name])})"
            if parsed is BAD_JSON
            else check(parsed)
        )
        if problem:
            problems.append(Problem(INVALID, name, problem))


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
