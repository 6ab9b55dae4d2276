"""The Jinja sandbox every template renders in, with a bound on what one render may build:
compile a template with every hook in place, render it within the bounds."""

# Jinja's immutable sandbox limits what a template may *touch*, not what it may *build* or
# how long it may run. Here every way a template can make a value or repeat work passes a
# check:
#
# - Operators (``* + % **``), calls (``str.center``, ``str.format``, ...), filters and
#   globals check the size of what they would build *before* building it, and the size of
#   what they built after: no string over MAX_STRING characters, no list that unfolds to
#   more than MAX_ITEMS items (shared references counted every time they occur, since
#   comparing or printing walks them), no number over MAX_DIGITS digits.
# - Everything built and written counts against the render's memory budget (MAX_BUILT),
#   and every hook (operator, call, lookup, filter, loop turn, output) counts a step
#   (MAX_STEPS). The same template stops at the same point on every run, in any thread.
# - A deadline (time.monotonic(), checked from the same hooks, so it works off the main
#   thread too) catches whatever is slow without taking many steps.
#
# So that loops, output, ``~``, literals and lookups reach these hooks, the template's
# syntax tree is rewritten before compiling (``rewrite.py``).

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, cast

import jinja2
import jinja2.nodes as nodes

from campaigner.templating.bounds import (
    MAX_BUILT,
    MAX_ITEMS,
    MAX_STEPS,
    MAX_STRING,
    TIME_LIMIT_S,
    LimitExceeded,
    OutputTooLong,
)
from campaigner.templating.budget import begin, end
from campaigner.templating.environment import BoundedSandbox
from campaigner.templating.rewrite import Rewrite

__all__ = (
    "MAX_BUILT",
    "MAX_ITEMS",
    "MAX_STEPS",
    "MAX_STRING",
    "TIME_LIMIT_S",
    "LimitExceeded",
    "OutputTooLong",
    "compile_template",
    "parse",
    "render",
)

_ENV = BoundedSandbox()


def parse(source: str) -> nodes.Template:
    """The syntax tree of ``source``; raises jinja2.TemplateSyntaxError."""
    return _ENV.parse(source)


def compile_template(source: str) -> jinja2.Template:
    """Compile ``source`` with every hook in place; raises jinja2.TemplateSyntaxError."""
    tree = Rewrite().visit(_ENV.parse(source))
    tree.set_environment(_ENV)
    return _ENV.from_string(tree)


def render(template: jinja2.Template, context: Mapping[str, Any], max_chars: int) -> str:
    """Render within the bounds above, and to at most ``max_chars`` characters.

    Raises LimitExceeded (OutputTooLong for the output), jinja2.UndefinedError,
    jinja2.exceptions.SecurityError, or whatever the template's own operations raise.
    """
    token = begin()
    pieces = cast(Generator[str, None, None], template.generate(context))
    try:
        out: list[str] = []
        total = 0
        for piece in pieces:
            total += len(piece)
            if total > max_chars:
                raise OutputTooLong(f"over {max_chars} characters")
            out.append(piece)
        return "".join(out)
    finally:
        pieces.close()
        end(token)
