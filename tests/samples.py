"""The sample campaign, a small campaign's text and the CLI's one-line errors, for the tests."""

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


def campaign_toml(
    name: str, *, list_file: str | None = None, send: str = "", params: bool = True
) -> str:
    """A WhatsApp template campaign as TOML text, `To` from the list's `phone` column: its
    ``name``, the list (``list_file``) if named here, ``send`` as the `[send]` table's lines,
    and `{{ name }}` as the template parameter unless ``params`` is false."""
    lines = [f'name = "{name}"']
    if list_file is not None:
        lines.append(f'input = "{list_file}"')
    if send:
        lines += ["", "[send]", send]
    lines += [
        "",
        "[message]",
        'ChannelType = "whatsapp"',
        'Type = "template"',
        'From = "8613800000000"',
        'To = "{{ phone }}"',
        'TemplateCode = "tpl"',
        'Language = "en"',
    ]
    if params:
        lines += ["", "[message.TemplateParams]", 'name = "{{ name }}"']
    return "\n".join(lines) + "\n"
