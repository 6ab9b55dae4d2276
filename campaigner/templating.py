"""The Jinja sandbox every template renders in, with a bound on what one render may build.

Jinja's immutable sandbox limits what a template may *touch*, not what it may *build* or
how long it may run. Here every way a template can make a value or repeat work passes a
check:

- Operators (``* + % **``), calls (``str.center``, ``str.format``, ...), filters and
  globals check the size of what they would build *before* building it, and the size of
  what they built after: no string over MAX_STRING characters, no list that unfolds to
  more than MAX_ITEMS items (shared references counted every time they occur, since
  comparing or printing walks them), no number over MAX_DIGITS digits.
- Everything built and written counts against the render's memory budget (MAX_BUILT),
  and every hook (operator, call, lookup, filter, loop turn, output) counts a step
  (MAX_STEPS). The same template stops at the same point on every run, in any thread.
- A deadline (time.monotonic(), checked from the same hooks, so it works off the main
  thread too) catches whatever is slow without taking many steps.

So that loops, output, ``~``, literals and lookups reach these hooks, the template's
syntax tree is rewritten before compiling (``_Rewrite``).
"""

from __future__ import annotations

import inspect
import itertools
import re
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import update_wrapper, wraps
from types import BuiltinMethodType, MethodType
from typing import Any, TypeVar, cast

import jinja2
import jinja2.nodes as nodes
from jinja2.filters import make_attrgetter
from jinja2.runtime import Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace, generate_lorem_ipsum, pass_context, pass_environment
from jinja2.visitor import NodeTransformer
from markupsafe import EscapeFormatter, Markup

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

MAX_STRING = 100_000  # characters in any one string a template builds
MAX_ITEMS = 100_000  # items any one list/table unfolds to (64 characters of text count one)
MAX_DIGITS = 4_300  # digits of a number (Python's own limit for printing one)
MAX_DEPTH = 64  # nesting of lists and tables
MAX_BUILT = 2_000_000  # characters and items built by one render, in all (memory)
MAX_STEPS = 250_000  # hooks one render may pass: operators, calls, lookups, loop turns...
TIME_LIMIT_S = 2.0  # wall clock for one render, for what is slow in few steps

_MAX_BITS = MAX_DIGITS * 10 // 3  # about MAX_DIGITS decimal digits
_HOOK = "campaigner:"  # prefix of the rewrite's filters: no template can spell the name

T = TypeVar("T")


class LimitExceeded(Exception):
    """A render went over a bound; the message is the reason, in words."""


class OutputTooLong(LimitExceeded):
    """The rendered text went over the caller's limit."""


def _string_error() -> LimitExceeded:
    return LimitExceeded(f"the template builds a string over {MAX_STRING} characters")


def _items_error() -> LimitExceeded:
    return LimitExceeded(
        f"the template builds a list or table over {MAX_ITEMS} items"
        " (64 characters of text count as one)"
    )


def _number_error() -> LimitExceeded:
    return LimitExceeded(f"the template builds a number over {MAX_DIGITS} digits")


def _bound(length: int) -> None:
    if length > MAX_STRING:
        raise _string_error()


# -- the budget of the render running in this thread ------------------------------------


@dataclass(slots=True)
class _Budget:
    deadline: float
    steps: int = MAX_STEPS
    built: int = MAX_BUILT


_BUDGET: ContextVar[_Budget | None] = ContextVar("campaigner_render_budget", default=None)


def _charge(steps: int, built: int = 0) -> None:
    budget = _BUDGET.get()
    if budget is None:  # constant folding while compiling: sizes are still checked
        return
    budget.steps -= steps
    budget.built -= built
    if budget.steps < 0:
        raise LimitExceeded(f"the template takes too long to render (over {MAX_STEPS} steps)")
    if budget.built < 0:
        raise LimitExceeded(f"the template builds too much (over {MAX_BUILT} characters in all)")
    if time.monotonic() > budget.deadline:
        raise LimitExceeded(f"the template takes too long to render (over {TIME_LIMIT_S:g} s)")


# -- measuring values -------------------------------------------------------------------

_CONTAINERS = (list, tuple, dict, set, frozenset, Namespace)


def _children(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        return itertools.chain.from_iterable(value.items())
    if isinstance(value, Namespace):
        attrs: dict[str, Any] = object.__getattribute__(value, "_Namespace__attrs")
        return itertools.chain.from_iterable(attrs.items())
    return iter(value)


def _measure(value: Any, *, text: bool) -> tuple[int, int, int]:
    """(about how many characters ``str(value)`` has, how many items it unfolds to, depth).

    Shared references count each time they occur, as printing or comparing walks them;
    each container is walked once. A text counts one item per 64 characters, as comparing
    two equal texts that are not the same object reads them. With ``text``, ``value`` is
    about to become text: an Undefined anywhere inside raises its error and an object with
    no text form (a function, a generator) is refused, instead of reaching the message as
    'Undefined' or an address.
    """
    if isinstance(value, str):
        return len(value), 1 + len(value) // 64, 0
    memo: dict[int, tuple[int, int, int]] = {}
    walking: set[int] = set()
    visits = 0

    def walk(item: Any, level: int) -> tuple[int, int, int]:
        nonlocal visits
        visits += 1
        if isinstance(item, str | bytes):
            return len(item) + 3, 1 + len(item) // 64, 0  # quotes and a prefix
        if item is None or isinstance(item, bool | float | complex):
            return 24, 1, 0
        if isinstance(item, int):
            if item.bit_length() > _MAX_BITS:
                raise _number_error()
            return item.bit_length() // 3 + 2, 1, 0
        if isinstance(item, Undefined):
            if text:
                item._fail_with_undefined_error()
            return 9, 1, 0
        if not isinstance(item, _CONTAINERS) or (text and isinstance(item, Namespace)):
            if text:
                raise LimitExceeded(f"a {type(item).__name__} cannot be written as text")
            return 1, 1, 0
        key = id(item)
        if key in memo:
            return memo[key]
        if key in walking:  # a cycle, printed as [...]
            return 5, 1, 0
        if level >= MAX_DEPTH:
            raise LimitExceeded(f"the template builds values nested over {MAX_DEPTH} levels deep")
        walking.add(key)
        chars, items, depth = 2, 0, 0
        for child in _children(item):
            c, i, d = walk(child, level + 1)
            chars, items, depth = chars + c + 2, items + i, max(depth, d)
            if text and chars > MAX_STRING:
                raise _string_error()
            if items > MAX_ITEMS:
                raise _items_error()
        walking.discard(key)
        memo[key] = (chars, max(items, 1), depth + 1)
        return memo[key]

    result = walk(value, 0)
    _charge(visits)
    return result


def _text_size(value: Any) -> int:
    """Characters ``str(value)`` has; refuses over MAX_STRING, Undefined and non-data."""
    if type(value) is str:
        return len(value)
    return _measure(value, text=True)[0]


def _built(value: T) -> T:
    """Count a value the template just made; refuse one over the bounds."""
    if isinstance(value, str | bytes):
        size = len(value)
        if size > MAX_STRING:
            raise _string_error()
    elif isinstance(value, _CONTAINERS):
        size = len(value) if not isinstance(value, Namespace) else 1
        if size > MAX_ITEMS:
            raise _items_error()
        _measure(value, text=False)
    elif isinstance(value, int) and value.bit_length() > _MAX_BITS:
        raise _number_error()
    else:
        size = 1
    _charge(0, size)
    return value


# -- operators ---------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _width(digits: str) -> int:
    if len(digits) > 7:
        raise _string_error()
    return int(digits)


def _check_percent(fmt: str | bytes, args: Any) -> None:
    """``fmt % args`` (and the ``format`` filter): widths, and what the fields hold."""
    spelled = fmt.decode("latin-1") if isinstance(fmt, bytes) else fmt
    specs = _PERCENT_SPEC.findall(spelled)
    if not specs:
        return
    if isinstance(args, Mapping):
        values = list(args.values())
    else:
        values = list(args) if isinstance(args, tuple) else [args]
    widest = 0
    for parts in specs:
        for part in parts:
            if part == "*":
                widest = max([widest, *(v for v in values if isinstance(v, int))])
            elif part:
                widest = max(widest, _width(part))
    _bound(widest)
    longest = max((_text_size(v) for v in values), default=0)
    _bound(len(spelled) + len(specs) * max(widest, longest))


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be over the bounds, before computing it."""
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and not isinstance(seq, int | float):
                size = _size(seq)
                if size is not None:
                    total = size * max(times, 0)
                    if isinstance(seq, str | bytes):
                        _bound(total)
                    elif total > MAX_ITEMS or _measure(seq, text=False)[1] * times > MAX_ITEMS:
                        raise _items_error()
                return
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > _MAX_BITS + 1:
                raise _number_error()
    elif operator == "+":
        a, b = _size(left), _size(right)
        if a is not None and b is not None:
            if isinstance(left, str | bytes):
                _bound(a + b)
            elif a + b > MAX_ITEMS:
                raise _items_error()
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
            if (left.bit_length() - 1) * right > _MAX_BITS:
                raise _number_error()
    elif operator == "%" and isinstance(left, str | bytes):
        _check_percent(left, right)


# -- str methods and str.format ----------------------------------------------------------


def _check_str_method(
    owner: str | bytes, name: str, args: tuple[Any, ...], kwargs: Any
) -> tuple[Any, ...]:
    """Bound what a str/bytes method would build; may return args with an iterable listed."""
    try:
        if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
            _bound(max(len(owner), args[0]))
        elif name == "expandtabs":
            size = args[0] if args else kwargs.get("tabsize", 8)
            if isinstance(size, int):
                tab = "\t" if isinstance(owner, str) else b"\t"
                _bound(len(owner) + owner.count(tab) * max(size, 0))  # type: ignore[arg-type]
        elif name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            hits = owner.count(old) if old else len(owner) + 1
            if isinstance(count, int) and count >= 0:
                hits = min(hits, count)
            _bound(len(owner) + hits * max(len(new) - len(old), 0))
        elif name == "join" and args:
            items = list(args[0])
            if len(items) > MAX_ITEMS:
                raise _items_error()
            texts = sum(len(i) for i in items if isinstance(i, str | bytes))
            _bound(texts + len(owner) * max(len(items) - 1, 0))
            return (items, *args[1:])
        elif name == "translate" and args and isinstance(args[0], Mapping):
            widest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            _bound(len(owner) * max(widest, 1))
    except TypeError:
        pass  # the call itself will fail with the right message
    return args


class _BoundedFormatter(SandboxedFormatter):
    """``str.format`` with bounded widths and a bounded total."""

    def __init__(self, env: jinja2.Environment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.written = 0

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion is not None:  # !r, !s, !a: text made before format_field sees it
            _text_size(value)
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        for digits in _DIGITS.findall(format_spec):
            _bound(_width(digits))
        _text_size(value)
        text = super().format_field(value, format_spec)
        self.written += len(text)
        _bound(self.written)
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


# -- filters and globals ------------------------------------------------------------------

# Filters that turn their value into text.
_TEXT_FILTERS = frozenset(
    "capitalize center e escape forceescape format indent lower pprint replace safe string"
    " striptags title tojson trim truncate upper urlize wordcount wordwrap xmlattr".split()
)


def _steps(value: Any) -> int:
    """Work a filter does on ``value``, in steps."""
    if isinstance(value, str):
        return 1 + len(value) // 64
    if isinstance(value, list | tuple | dict | set | frozenset):
        return 1 + len(value)
    return 1


def _listed(environment: jinja2.Environment, value: Any, attribute: Any) -> list[Any]:
    if attribute is not None:
        value = map(make_attrgetter(environment, attribute), value)
    items = list(value)
    if len(items) > MAX_ITEMS:
        raise _items_error()
    return items


def _pre_center(a: dict[str, Any]) -> None:
    if isinstance(a["width"], int):
        _bound(max(_text_size(a["value"]), a["width"]))


def _pre_indent(a: dict[str, Any]) -> None:
    text = a["s"]
    width = a["width"]
    step = width if isinstance(width, int) else _text_size(width)
    lines = text.count("\n") + 1 if isinstance(text, str) else _text_size(text)
    _bound(_text_size(text) + lines * max(step, 0))


def _pre_wordwrap(a: dict[str, Any]) -> None:
    wrap = a["wrapstring"]
    _bound(_text_size(a["s"]) * (1 + (_text_size(wrap) if wrap is not None else 1)))


def _pre_replace(a: dict[str, Any]) -> None:
    text, old, new, count = str(a["s"]), a["old"], a["new"], a["count"]
    if isinstance(old, str) and isinstance(new, str):
        hits = text.count(old) if old else len(text) + 1
        if isinstance(count, int) and count >= 0:
            hits = min(hits, count)
        _bound(len(text) + hits * max(len(new) - len(old), 0))


def _pre_join(a: dict[str, Any]) -> None:
    items = _listed(a["eval_ctx"].environment, a["value"], a["attribute"])
    separator = _text_size(a["d"])
    _bound(sum(_text_size(i) for i in items) + separator * max(len(items) - 1, 0))
    a["value"], a["attribute"] = items, None


def _pre_format(a: dict[str, Any]) -> None:
    if isinstance(a["value"], str):
        _check_percent(a["value"], a["kwargs"] or a["args"])


def _pre_batch(a: dict[str, Any]) -> None:
    count, fill = a["linecount"], a["fill_with"]
    if isinstance(count, int) and fill is not None:
        if count * _measure(fill, text=False)[1] > MAX_ITEMS:
            raise _items_error()


def _pre_slice(a: dict[str, Any]) -> None:
    count, fill = a["slices"], a["fill_with"]
    if isinstance(count, int):
        per_fill = _measure(fill, text=False)[1] if fill is not None else 0
        if count * (1 + per_fill) > MAX_ITEMS:
            raise _items_error()


def _pre_tojson(a: dict[str, Any]) -> None:
    chars, _, depth = _measure(a["value"], text=True)
    indent = a["indent"]
    step = 0 if indent is None else indent if isinstance(indent, int) else _text_size(indent)
    _bound(chars * (1 + max(step, 0) * depth))


def _pre_pprint(a: dict[str, Any]) -> None:
    chars, _, depth = _measure(a["value"], text=True)
    _bound(chars * (1 + depth))


def _pre_urlencode(a: dict[str, Any]) -> None:
    value = a["value"]
    if not isinstance(value, str | Mapping):
        value = a["value"] = list(value)  # pairs; listed so they can be measured
    _bound(_text_size(value) * 3)  # %XX for every byte


def _pre_urlize(a: dict[str, Any]) -> None:
    chars = _text_size(a["value"])
    extra = sum(_text_size(a[k]) for k in ("target", "rel") if a[k] is not None)
    _bound(chars * 3 + (chars // 4 + 1) * (64 + extra))  # a link is at least 4 characters


_PRECHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "replace": _pre_replace,
    "join": _pre_join,
    "format": _pre_format,
    "batch": _pre_batch,
    "slice": _pre_slice,
    "tojson": _pre_tojson,
    "pprint": _pre_pprint,
    "urlize": _pre_urlize,
    "urlencode": _pre_urlencode,
}


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its steps counted, its input and output bounded."""
    if getattr(func, "jinja_async_variant", False):
        func = inspect.unwrap(func)  # the plain function: its own signature, never async here
    passes = hasattr(func, "jinja_pass_arg")  # context/eval_ctx/environment comes first
    pre = _PRECHECKS.get(name)
    signature = inspect.signature(func) if pre is not None else None
    textual = name in _TEXT_FILTERS

    @wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        value = args[1 if passes else 0] if len(args) > passes else None
        _charge(_steps(value))
        if textual:
            _text_size(value)
        if pre is not None and signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            pre(bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        return _built(func(*args, **kwargs))

    return guarded


@pass_environment
def _bounded_sum(
    environment: jinja2.Environment, iterable: Any, attribute: Any = None, start: Any = 0
) -> Any:
    """Jinja's ``sum``, one addition at a time, so adding lists or strings is bounded."""
    total = start
    for item in _listed(environment, iterable, attribute):
        _charge(1)
        _check_binop("+", total, item)
        total = total + item
    return total


def _bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    # Lorem ipsum words are short: 16 characters a word bounds a paragraph.
    _bound(n * (max * 16 + 16) if isinstance(n, int) and isinstance(max, int) else 0)
    return generate_lorem_ipsum(n=n, html=html, min=min, max=max)


# -- the rewrite's hooks --------------------------------------------------------------------


@pass_context
def _hook_loop(context: Any, iterable: Any) -> Iterator[Any]:
    for item in iterable:
        _charge(1)
        yield item


@pass_context
def _hook_out(context: Any, value: Any) -> str:
    if type(value) is str:
        _charge(1, len(value))
        return value
    _text_size(value)
    text = str(value)
    _charge(1, len(text))
    return text


@pass_context
def _hook_concat(context: Any, *values: Any) -> str:
    _charge(1)
    texts = []
    total = 0
    for value in values:
        if type(value) is not str:
            _text_size(value)
            value = str(value)
        total += len(value)
        _bound(total)
        texts.append(value)
    return _built("".join(texts))


@pass_context
def _hook_value(context: Any, value: T) -> T:
    return _built(value)


def _named(env: jinja2.Environment, value: Any, obj: Any, name: Any, hint: str) -> Any:
    """An Undefined that says which expression had no such attribute or item."""
    if isinstance(value, Undefined) and value._undefined_hint is None:
        return env.undefined(hint, obj=obj, name=name)
    return value


@pass_context
def _hook_getattr(context: Any, obj: Any, attribute: str, spelled: str) -> Any:
    value = context.environment.getattr(obj, attribute)
    return _named(
        context.environment, value, obj, attribute, f"{spelled} has no attribute {attribute!r}"
    )


@pass_context
def _hook_getitem(context: Any, obj: Any, key: Any, spelled: str) -> Any:
    value = context.environment.getitem(obj, key)
    shown = repr(key) if len(repr(key)) <= 40 else repr(key)[:37] + "..."
    return _named(context.environment, value, obj, key, f"{spelled} has no item {shown}")


_HOOKS: dict[str, Callable[..., Any]] = {
    "loop": _hook_loop,
    "out": _hook_out,
    "concat": _hook_concat,
    "value": _hook_value,
    "getattr": _hook_getattr,
    "getitem": _hook_getitem,
}


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
    return nodes.Filter(node, _HOOK + name, list(args), [], None, None, lineno=node.lineno)


def _const(value: Any, lineno: int) -> nodes.Const:
    return nodes.Const(value, lineno=lineno)


_CONSTANT = (nodes.Const, nodes.List, nodes.Tuple, nodes.Dict, nodes.Pair)


class _Rewrite(NodeTransformer):
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


# -- the environment ------------------------------------------------------------------------


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every operator, call, lookup and filter bounded."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        filters = {**self.filters, "sum": _bounded_sum}
        self.filters = {name: _guard_filter(name, f) for name, f in filters.items()}
        self.filters.update({_HOOK + name: hook for name, hook in _HOOKS.items()})
        self.globals["lipsum"] = _bounded_lipsum

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _charge(1)
        _check_binop(operator, left, right)
        return _built(self.binop_table[operator](left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _charge(1)
        if isinstance(__obj, BuiltinMethodType) and isinstance(__obj.__self__, str | bytes):
            args = _check_str_method(__obj.__self__, __obj.__name__, args, kwargs)
        return _built(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _charge(1)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _charge(1)
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through a formatter with bounded fields."""
        if not isinstance(value, MethodType | BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        is_map = value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            _charge(1)
            if is_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            formatter: _BoundedFormatter = (
                _BoundedEscapeFormatter(self, escape=owner.escape)
                if isinstance(owner, Markup)
                else _BoundedFormatter(self)
            )
            return _built(type(owner)(formatter.vformat(owner, args, kwargs)))

        return update_wrapper(wrapper, value)


_ENV = BoundedSandbox()


def parse(source: str) -> nodes.Template:
    """The syntax tree of ``source``; raises jinja2.TemplateSyntaxError."""
    return _ENV.parse(source)


def compile_template(source: str) -> jinja2.Template:
    """Compile ``source`` with every hook in place; raises jinja2.TemplateSyntaxError."""
    tree = _Rewrite().visit(_ENV.parse(source))
    tree.set_environment(_ENV)
    return _ENV.from_string(tree)


def render(template: jinja2.Template, context: Mapping[str, Any], max_chars: int) -> str:
    """Render within the bounds above, and to at most ``max_chars`` characters.

    Raises LimitExceeded (OutputTooLong for the output), jinja2.UndefinedError,
    jinja2.exceptions.SecurityError, or whatever the template's own operations raise.
    """
    token = _BUDGET.set(_Budget(deadline=time.monotonic() + TIME_LIMIT_S))
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
        _BUDGET.reset(token)
