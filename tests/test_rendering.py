"""Rendering a batch: the polars fast paths agree with Jinja, errors name the column."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaigner.columns import RENDER_ERROR
from campaigner.errors import ConfigError, MissingColumnsError
from campaigner.rendering import compile_message
from campaigner.sim.harness import CREDENTIALS, Sandbox

ROOT = Path(__file__).resolve().parents[1]


def render(template: str, rows: list[dict[str, str | None]]) -> list[tuple[str | None, str | None]]:
    message = compile_message({"To": template})
    frame = pl.DataFrame(rows, schema=dict.fromkeys(rows[0], pl.String))
    out = message.render(frame)
    slot = message.slot("To")
    assert slot is not None
    values = out[slot.column].to_list() if slot.kind != "static" else [slot.parts[0][1]] * len(rows)
    return list(zip(values, out[RENDER_ERROR].to_list(), strict=True))


@pytest.mark.parametrize(
    ("template", "row", "value", "error"),
    [
        ("{{ phone }}", {"phone": "123"}, "123", None),
        ("{{ phone }}", {"phone": "  123 "}, "123", None),  # cells are trimmed
        ("Hi {{ name }}!", {"name": "Ana"}, "Hi Ana!", None),
        ("{{ a }}-{{ b }}", {"a": "x", "b": "y"}, "x-y", None),
        ("{{ name | title }}", {"name": "ana maria"}, "Ana Maria", None),
        ("{{ name | default('friend') }}", {"name": None}, "friend", None),
        ("{% if vip %}VIP {% endif %}{{ name }}", {"vip": "1", "name": "Bo"}, "VIP Bo", None),
        ("fixed text", {"x": "1"}, "fixed text", None),
        ("{{ phone }}", {"phone": None}, None, "empty value in column 'phone' (needed for To)"),
        ("{{ phone }}", {"phone": "   "}, None, "empty value in column 'phone' (needed for To)"),
        ("Hi {{ name }}", {"name": ""}, None, "empty value in column 'name' (needed for To)"),
        (
            "{{ name | upper }}",
            {"name": None},
            None,
            "empty value in column 'name' (needed for To)",
        ),
    ],
)
def test_render_cases(
    template: str, row: dict[str, str | None], value: str | None, error: str | None
) -> None:
    assert render(template, [row]) == [(value, error)]


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ('{0.__class__}' | attr('format'))(1) }}",
        "{{ 'a' * 50000000 }}",
        "{{ 10 ** 2000000 }}",
        "{% for i in range(100001) %}{% endfor %}",
        "{{ x.__class__.__base__.__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_sandbox_escapes_are_row_errors_not_crashes(template: str) -> None:
    [(value, error)] = render(template, [{"x": "1"}])
    assert value is None or "class" not in value
    assert error is not None or value in ("", None)


def test_runaway_output_is_refused() -> None:
    [(value, error)] = render("{% for i in range(5000) %}xxxxxxxxxx{% endfor %}", [{"x": "1"}])
    assert value is None
    assert error is not None and "too long" in error


def test_syntax_error_is_a_config_error_naming_the_parameter() -> None:
    with pytest.raises(ConfigError, match=r"TemplateParams\.name: template error on line 1"):
        compile_message({"TemplateParams": {"name": "{{ first_name "}})


def test_missing_column_names_the_closest_one() -> None:
    message = compile_message({"To": "{{ phnoe }}"})
    with pytest.raises(MissingColumnsError, match="'phnoe' \\(did you mean 'phone'\\?\\)"):
        message.check_columns(("phone", "name"))


def test_leaves_of_tables_and_arrays_are_templates() -> None:
    message = compile_message(
        {"Content": {"text": "Hi {{ n }}", "buttons": [{"title": "{{ n | upper }}"}]}, "Ttl": 60}
    )
    frame = pl.DataFrame({"n": ["ana"]})
    values = message.render(frame).row(0, named=True)
    built = message.build(values)
    assert built == {"Content": {"text": "Hi ana", "buttons": [{"title": "ANA"}]}, "Ttl": 60}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=12)), min_size=1, max_size=30))
def test_fast_paths_agree_with_jinja(values: list[str | None]) -> None:
    """The polars concat path renders exactly what the sandbox would."""
    rows = [{"a": v, "b": "x"} for v in values]
    fast = render("<{{ a }}|{{ b }}>", rows)
    slow = render("<{{ a }}|{{ b | string }}>", rows)  # a filter forces the Jinja path
    assert [v for v, _ in fast] == [v for v, _ in slow]
    assert [e is None for _, e in fast] == [e is None for _, e in slow]


@pytest.mark.parametrize("to", ["{{ phone }}", "8613800000000"])
def test_a_template_that_reads_no_column_renders_on_every_row(to: str) -> None:
    message = compile_message({"To": to, "TemplateParams": {"code": "{{ 'SPRING' | lower }}"}})
    out = message.render(pl.DataFrame({"phone": ["1", "2", "3"]}))
    slot = message.slot("TemplateParams", "code")
    assert slot is not None and slot.kind == "jinja"
    assert out[slot.column].to_list() == ["spring"] * 3
    assert out[RENDER_ERROR].to_list() == [None] * 3


# Renders in a child process that cannot map more than 1 GiB, so a template that builds a
# huge value fails the test instead of the machine; prints each row's (value, error) and
# the child's peak memory.
_SMALL_PROCESS = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
import polars as pl
from campaigner.columns import RENDER_ERROR
from campaigner.rendering import compile_message
results = []
for template in json.loads(sys.argv[1]):
    message = compile_message({"To": template})
    out = message.render(pl.DataFrame({"first_name": ["ana"], "x": ["1"]}))
    results.append([out[message.slot("To").column][0], out[RENDER_ERROR][0]])
# VmHWM, not ru_maxrss: ru_maxrss keeps the parent's peak across exec
status = open("/proc/self/status").read()
peak = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps({"results": results, "peak_mib": peak}))
"""

_STRING = "To: the template builds a string over 100000 characters"
_LIST = "To: the template builds a list or table over 100000 items"

HUGE = [
    ("{{ ('a' * 100000 * 1000) | length }}", _STRING),
    ("{{ first_name | center(1500000000) | length }}", _STRING),
    ('{{ "{:>200000000}".format(x) | length }}', _STRING),
    ("{% for i in range(20000) %}{{ 'a' * 100000 }}{% endfor %}", "To is too long after rendering"),
    ("{{ '%200000000s' % x }}", _STRING),
    ("{{ '%*s' % (200000000, x) }}", _STRING),
    ("{{ x.ljust(1500000000) | length }}", _STRING),
    ("{{ first_name | indent(1500000000) | length }}", _STRING),
    ("{{ ('a,' * 50000) | replace(',', 'x' * 1000) | length }}", _STRING),
    ("{{ ('x' * 1000).join(['a'] * 99999) | length }}", _STRING),
    ("{{ (['x' * 100000] * 30000) | join | length }}", _LIST),
    ("{{ (['x' * 50000] * 3) | join | length }}", _STRING),
    ("{{ (['x' * 50000] * 3) | string | length }}", _STRING),
    ("{{ lipsum(100000) | length }}", _STRING),
    (
        "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}{{ ns.s | length }}",
        _STRING,
    ),
    ("{{ [1] | batch(1000000000, 0) | list | length }}", _LIST),
    ("{{ [1] | slice(1000000000) | list | length }}", _LIST),
    # shared references: tiny in memory, but comparing or printing it walks 2**60 lists
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}"
        "{% endfor %}{{ ns.l == ns.l }}",
        _LIST,
    ),
    # equal texts that are not the same object: comparing reads 5 * 10**9 characters
    (
        "{% set a = 'x' * 100000 %}{% set b = 'x' * 99999 ~ 'x' %}{{ [a] * 50000 == [b] * 50000 }}",
        _LIST,
    ),
    ("{{ '{!r}'.format(['x' * 50000] * 3) }}", _STRING),
    ("{{ 10 ** 2000000 }}", "To: the template builds a number over 4300 digits"),
]


def test_templates_that_build_huge_values_are_row_errors_in_little_memory() -> None:
    templates = [template for template, _ in HUGE]
    child = subprocess.run(
        [sys.executable, "-c", _SMALL_PROCESS, json.dumps(templates)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    answer = json.loads(child.stdout)
    for (template, reason), (value, error) in zip(HUGE, answer["results"], strict=True):
        assert value is None, template
        assert error is not None and error.startswith(reason), (template, error)
    assert answer["peak_mib"] < 300  # every one of them stayed small


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ '%-5s|' % first_name }}", "ana  |"),
        ("{{ '{0}-{1}'.format(first_name, x) }}", "ana-1"),
        ("{{ first_name ~ '-' ~ x }}", "ana-1"),
        ("{{ first_name | center(7) }}", "  ana  "),
        ("{{ ('ab' * 3) | replace('b', 'c') }}", "acacac"),
        ("{% for n in 'a,b'.split(',') %}{{ loop.index }}{{ n | upper }}{% endfor %}", "1A2B"),
        ("{{ 'a,b'.split(',') | map('upper') | join('-') }}", "A-B"),
        ("{{ [first_name, x] | join(',') }}", "ana,1"),
        ("{{ {'k': first_name} | tojson }}", '{"k": "ana"}'),
        ("{{ [[1], [2]] | sum(start=[]) }}", "[1, 2]"),
        ("{{ 2 ** 10 }}", "1024"),
        ("{{ none }}", "None"),
    ],
)
def test_ordinary_templates_are_not_limited(template: str, value: str) -> None:
    assert render(template, [{"first_name": "ana", "x": "1"}]) == [(value, None)]


SLOW = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def test_a_slow_template_is_refused_the_same_way_on_any_thread() -> None:
    on_main = render(SLOW + "{{ x }}", [{"x": "1"}])
    on_worker: list[list[tuple[str | None, str | None]]] = []
    worker = threading.Thread(
        target=lambda: on_worker.append(render(SLOW + "{{ x }}", [{"x": "1"}])), daemon=True
    )
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the render in a worker thread was not stopped"
    [(value, error)] = on_main
    assert value is None and error is not None
    assert error.startswith("To: the template takes too long to render (over 250000 steps)")
    assert on_worker == [on_main]


def test_a_row_too_slow_to_render_is_never_sent(tmp_path: Path) -> None:
    """The send path renders in a worker thread: it must refuse what validation refused,
    and the report rebuilt from the journal must agree with what the simulator received."""
    (tmp_path / "campaign.toml").write_text(
        'name = "slow"\ninput = "list.csv"\n[message]\nChannelType = "whatsapp"\n'
        'Type = "template"\nFrom = "8613800000000"\nTo = "{{ phone }}"\n'
        'TemplateCode = "tpl"\nLanguage = "en"\n[message.TemplateParams]\n'
        f'name = "{{% if slow is defined %}}{SLOW}{{% endif %}}{{{{ name }}}}"\n'
    )
    with (tmp_path / "list.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phone", "name", "slow"])
        for i in range(6):
            writer.writerow([f"86139{i:08d}", f"user{i}", "yes" if i in (1, 4) else ""])
    with Sandbox(latency_ms=0) as sandbox:
        child = subprocess.run(
            [sys.executable, "-m", "campaigner", "send", str(tmp_path / "campaign.toml")]
            + ["--endpoint", sandbox.url, "--yes", "--out", str(tmp_path / "out")],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, **CREDENTIALS},
            check=False,
        )
        accepted = sandbox.accepted()
    assert child.returncode == 3, child.stderr[-3000:]
    [run] = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]  # beside ledger.sqlite
    with (run / "report.csv").open(encoding="utf-8-sig", newline="") as f:
        report = list(csv.DictReader(f))
    assert [r["status"] for r in report] == ["sent", "invalid", "sent", "sent", "invalid", "sent"]
    assert all("takes too long to render" in report[i]["error"] for i in (1, 4))
    sent_to = sorted(str(a["to"]) for a in accepted)
    assert sent_to == sorted(r["To"] for r in report if r["status"] == "sent")


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{ first_name.foo }}", "To: first_name has no attribute 'foo'"),
        ("{{ first_name['foo'] }}", "To: first_name has no item 'foo'"),
        ("{{ first_name[50] }}", "To: first_name has no item 50"),
        ("{{ [first_name.foo] }}", "To: first_name has no attribute 'foo'"),
        ("{{ (first_name.foo,) | string }}", "To: first_name has no attribute 'foo'"),
        ("{{ 'a'.split(',') | map(attribute='foo') | list }}", "To: 'str object' has no attribute"),
        (
            "{{ 'a,b'.split(',') | map(attribute='__class__') | list }}",
            "To: the template is not allowed to do that",
        ),
        ("{{ 'a'.split(',') | map('upper') }}", "To: a generator cannot be written as text"),
        ("{{ first_name.upper }}", "To: a builtin_function_or_method cannot be written as text"),
        ("{{ first_name.foo.bar }}", "To: first_name has no attribute 'foo'"),
        ("{% set ns = namespace(a=1) %}{{ ns }}", "To: a Namespace cannot be written as text"),
        ("{{ '%s' % (first_name.foo,) }}", "To: first_name has no attribute 'foo'"),
        ("{{ '{}'.format(first_name['x']) }}", "To: first_name has no item 'x'"),
    ],
)
def test_undefined_attributes_and_items_are_row_errors_naming_them(
    template: str, error: str
) -> None:
    [(value, problem)] = render(template, [{"first_name": "ana"}])
    assert value is None
    assert problem is not None and problem.startswith(error), problem


@pytest.mark.parametrize(
    ("template", "value"),
    [
        ("{{ first_name.foo | default('friend') }}", "friend"),
        ("{{ first_name.foo is defined }}", "False"),
        ("{{ first_name['foo'] | default('-') }}", "-"),
    ],
)
def test_an_undefined_attribute_can_still_have_a_default(template: str, value: str) -> None:
    assert render(template, [{"first_name": "ana"}]) == [(value, None)]


def test_an_unknown_filter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="To: template error on line 1: No filter named 'nosuch'"):
        compile_message({"To": "{{ x | nosuch }}"})
