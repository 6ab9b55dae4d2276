"""The layout's rules, checked: no import cycles, no upward imports, no private names
imported across modules, and neither the package nor the benches import the tests."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "campaigner"
BENCH = ROOT / "bench"


def _lint_imports() -> str:
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    assert found, "lint-imports is missing: pip install -e '.[dev]'"
    return found


def test_import_contracts_are_kept() -> None:
    """The contracts in pyproject.toml ([tool.importlinter]): acyclic, layered, no tests."""
    result = subprocess.run(
        [_lint_imports(), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) of every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, a.name, []) for a in node.names)
    return found


def _python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


def test_no_private_name_is_imported_from_another_module() -> None:
    """What another module needs is public in the module that owns it (and in __all__)."""
    crossings = []
    for path in _python_files(PACKAGE, BENCH):
        for line, module, names in _imports(path):
            if not module.startswith("campaigner"):
                continue
            if any(part.startswith("_") and part != "__init__" for part in module.split(".")):
                crossings.append(f"{path.relative_to(ROOT)}:{line} imports module {module}")
            for name in names:
                if name.startswith("_") and not name.startswith("__"):
                    crossings.append(f"{path.relative_to(ROOT)}:{line} imports {module}.{name}")
    assert not crossings, "\n".join(crossings)


def test_neither_the_package_nor_the_benches_import_the_tests() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _python_files(PACKAGE, BENCH)
        for line, module, _ in _imports(path)
        if module == "tests" or module.startswith("tests.")
    ]
    assert not found, "\n".join(found)


def test_the_benches_import_the_installed_package_not_the_checkout() -> None:
    """bench/ runs against the package as installed; it does not put the repo on sys.path."""
    found = [
        str(path.relative_to(ROOT))
        for path in _python_files(BENCH)
        if "sys.path.insert" in path.read_text(encoding="utf-8")
        or "sys.path.append" in path.read_text(encoding="utf-8")
    ]
    assert not found, found
