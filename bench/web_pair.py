"""The web app's CPU per message of two commits, measured side by side.

    .venv/bin/python -u bench/web_pair.py [REV_A] [REV_B] [--runs 1] [bench/web.py options]

This machine's speed moves by up to 60 % from one minute to the next, so one run of
bench/web.py before a change and one after compare the minutes more than the code. Here
both commits run bench/web.py (``--no-preview``) at the same time, each from a git worktree
of its own (under bench/out/pair/), with its own simulator and its own host-wide rate budget
(``XDG_STATE_HOME``), so both see the same machine. Two copies of one commit measured this
way differ by about 2 %. ``REV_A`` defaults to ``HEAD~1``, ``REV_B`` to the work tree as it is
(uncommitted changes included). Prints each run's two figures and B's ratio to A.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "pair"
_CPU = re.compile(r"server CPU [\d.]+ s = ([\d.]+) ms per message")


def remove_worktree(path: Path) -> None:
    if path != ROOT and path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
        shutil.rmtree(path, ignore_errors=True)


def worktree(rev: str, name: str) -> Path:
    """A detached worktree of ``rev`` (made afresh), or the work tree itself for ``rev=''``."""
    if not rev:
        return ROOT
    path = OUT / name
    remove_worktree(path)
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(path), rev],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return path


def bench(tree: Path, name: str, extra: list[str], results: dict[str, str]) -> None:
    """bench/web.py of ``tree``'s code: ``python -m campaigner`` imports from the cwd."""
    state = OUT / f"state-{name}"
    state.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    cmd = [sys.executable, "-u", "bench/web.py", "--no-preview", *extra]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    (OUT / f"{name}.out").write_text(done.stdout + done.stderr, encoding="utf-8")
    results[name] = done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("rev_a", nargs="?", default="HEAD~1")
    parser.add_argument("rev_b", nargs="?", default="", help="default: the work tree as it is")
    parser.add_argument("--runs", type=int, default=1)
    args, extra = parser.parse_known_args()
    OUT.mkdir(parents=True, exist_ok=True)
    trees = {"A": worktree(args.rev_a, "A"), "B": worktree(args.rev_b, "B")}
    try:
        compare(trees, args.rev_a, args.rev_b, args.runs, extra)
    finally:  # copies of the code under bench/out would be found by linters and tests
        for tree in trees.values():
            remove_worktree(tree)


def compare(trees: dict[str, Path], rev_a: str, rev_b: str, runs: int, extra: list[str]) -> None:
    for run in range(1, runs + 1):
        results: dict[str, str] = {}
        threads = [
            threading.Thread(target=bench, args=(tree, name, extra, results))
            for name, tree in trees.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        figures = {name: _CPU.search(results.get(name, "")) for name in trees}
        if not all(figures.values()):
            sys.exit(f"a run printed no CPU figure: see {OUT}/A.out and {OUT}/B.out")
        a, b = (float(m.group(1)) for m in figures.values() if m is not None)
        print(
            f"run {run}: A {rev_a or 'work tree'} {a:.2f} ms per message, "
            f"B {rev_b or 'work tree'} {b:.2f} ms per message, B/A {b / a:.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
