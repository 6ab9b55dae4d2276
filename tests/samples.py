"""The sample campaign and the CLI's one-line errors, for the CLI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_data"


class Ran(Protocol):
    """A finished command: a subprocess result or click's Result."""

    @property
    def stderr(self) -> str: ...


def one_line_error(result: Ran) -> str:
    """The single `error: ...` line a failed command prints, with no traceback."""
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
    return line


def sample_campaign(folder: Path, **replace: str) -> Path:
    """The sample template campaign with its list by absolute path, and edits."""
    text = (SAMPLES / "whatsapp_template.toml").read_text()
    text = text.replace('input = "recipients.csv"', f'input = "{SAMPLES}/recipients.csv"')
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    path = folder / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path
