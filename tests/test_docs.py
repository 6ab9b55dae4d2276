"""The layout docs match the tree: the README's layout paragraph names every module and
package, and docs/architecture.md has one line per module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "campaigner"


def _modules() -> set[str]:
    """Every module as a path under campaigner/, e.g. "send/pool.py"."""
    return {
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
    }


def test_the_readme_layout_names_every_module_and_package() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("\nLayout, top to bottom") :].split("\n\n", 1)[0]
    named = set(re.findall(r"`([a-z0-9_]+/?)`", paragraph))
    top = {m.split("/")[0] + "/" if "/" in m else m.removesuffix(".py") for m in _modules()}
    top -= {"__init__", "__main__"}
    subpackage_parts = {
        m.split("/")[1].removesuffix(".py") for m in _modules() if m.startswith("send/")
    }
    assert top <= named, sorted(top - named)
    assert named <= top | subpackage_parts, sorted(named - top - subpackage_parts)


def test_the_architecture_tree_has_one_line_per_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = text.split("```text\n", 1)[1].split("```", 1)[0]
    listed: set[str] = set()
    folder = ""
    for line in tree.splitlines()[1:]:
        name = line.split()[0]
        if line.startswith("  ") and not line.startswith("    "):
            folder = name if name.endswith("/") else ""
            if not folder:
                listed.add(name)
        elif line.startswith("    "):
            listed.add(folder + name)
    assert listed == _modules(), (sorted(_modules() - listed), sorted(listed - _modules()))
