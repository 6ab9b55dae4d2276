"""Untrusted text made safe to print on a terminal.

Cells, column names, file names and CAMS's messages come from others. Printed raw, an ESC or
CSI sequence can recolour or clear the screen, retitle the window or hide text, a bidi
override can make ``evil.exe`` read as something else, and a newline can forge a second line
of output. ``printable`` escapes all of them visibly instead.
"""

from __future__ import annotations

__all__ = ("printable",)


def _escapes() -> dict[int, str]:
    table: dict[int, str] = {}
    # C0 controls (ESC, BEL, CR, LF, TAB, ...), DEL, and C1 controls (CSI 0x9b, OSC 0x9d, ...).
    for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)):
        table[code] = f"\\x{code:02x}"
    # Bidi embeddings, overrides, isolates and marks; line and paragraph separators.
    for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)):
        table[code] = f"\\u{code:04x}"
    for code in (0x2028, 0x2029):
        table[code] = f"\\u{code:04x}"
    return table


_ESCAPES = _escapes()


def printable(text: object) -> str:
    """``str(text)`` with every control, bidi and line-separator character written as
    ``\\xNN`` or ``\\uNNNN``, so it prints as one inert line of text."""
    return str(text).translate(_ESCAPES)
