"""The template's syntax tree rewritten so loops, output, ``~``, literals and lookups
reach the hooks."""

from __future__ import annotations

from typing import Any, cast

import jinja2.nodes as nodes
from jinja2.visitor import NodeTransformer

from campaigner.templating.hooks import HOOK_PREFIX

__all__ = ("Rewrite",)


def _spell(node: nodes.Node) -> str:
    """How a template wrote an expression, for messages."""
    if isinstance(node, nodes.Name):
        return str(node.name)
    if isinstance(node, nodes.Getattr):
        return f"{_spell(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return f"{_spell(node.node)}[{node.arg.value!r}]"
    if isinstance(node, nodes.Const):
        return repr(node.value)
    if isinstance(node, nodes.Call):
        return f"{_spell(node.node)}(...)"
    if isinstance(node, nodes.Filter) and node.node is not None:
        return f"({_spell(node.node)} | {node.name})"
    return "the value"


def _hook(name: str, node: nodes.Expr, *args: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(node, HOOK_PREFIX + name, list(args), [], None, None, lineno=node.lineno)


def _const(value: Any, lineno: int) -> nodes.Const:
    return nodes.Const(value, lineno=lineno)


_CONSTANT = (nodes.Const, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair)


class Rewrite(NodeTransformer):
    """Route loops, output, ``~``, literals and lookups through the hooks above."""

    def __init__(self) -> None:
        self.repeating = 0  # inside a body that may run many times

    def _repeat(self, node: nodes.Node) -> nodes.Node:
        self.repeating += 1
        try:
            self.generic_visit(node)
        finally:
            self.repeating -= 1
        return node

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self._repeat(node)
        node.iter = _hook("loop", cast(nodes.Expr, node.iter))
        return node

    visit_Macro = _repeat
    visit_CallBlock = _repeat

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [self._output(child) for child in node.nodes]
        return node

    def _output(self, child: nodes.Expr) -> nodes.Expr:
        if isinstance(child, nodes.TemplateData):
            if not self.repeating:
                return child  # written once: bounded by the template's size
            child = _const(child.data, child.lineno)
        return _hook("out", child)

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _hook("concat", node.nodes[0], *node.nodes[1:])

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # an assignment target
        if all(isinstance(n, _CONSTANT) for n in node.find_all(nodes.Node)):
            return node  # written out in the template: bounded by its size
        return _hook("value", node)  # holds variables: may unfold to anything

    visit_List = _literal
    visit_Tuple = _literal
    visit_Dict = _literal

    def visit_Getattr(self, node: nodes.Getattr) -> nodes.Node:
        spelled = _spell(node.node)
        self.generic_visit(node)
        lineno = node.lineno
        return _hook("getattr", node.node, _const(node.attr, lineno), _const(spelled, lineno))

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        spelled = _spell(node.node)
        self.generic_visit(node)
        if isinstance(node.arg, nodes.Slice):
            return node  # a slice is never bigger than what it slices
        return _hook("getitem", node.node, node.arg, _const(spelled, node.lineno))
