"""CSV bytes as UTF-8 text: the whole-file encoding check and the decoded blocks that every
reading pass (sample, records) takes, line ends kept as written.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from campaigner.inputs.sniff import MIB, unreadable

__all__ = ("BLOCK", "read_sample", "text_blocks", "validate_text")

BLOCK = 8 * MIB


def validate_text(path: Path, codec: str, skip: int) -> None:
    """Decode the whole file once so a bad byte is a file-level error, not a late crash."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    line = 1
    try:
        with path.open("rb") as fh:
            fh.seek(skip)
            while True:
                raw = fh.read(BLOCK)
                try:
                    decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    line += raw.count(b"\n", 0, max(exc.start, 0))
                    bad = exc.object[exc.start : exc.start + 1].hex().upper()
                    where = f"byte 0x{bad} on line {line}" if bad else f"line {line}"
                    if codec == "utf-8":
                        raise unreadable(
                            path,
                            f"is not UTF-8 text ({where}). Save it from Excel as 'CSV UTF-8', "
                            "or set the input encoding (e.g. 'cp1252', 'latin-1' or "
                            "'shift_jis').",
                        ) from None
                    raise unreadable(
                        path, f"is not valid {codec} text ({where}); check the input encoding."
                    ) from None
                if not raw:
                    return
                line += raw.count(b"\n")
    except OSError as exc:
        raise unreadable(path, f"cannot be read ({exc.strerror or exc})") from None


def _take(blocks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    """Blocks until more than ``limit`` bytes were taken (the last one may overshoot)."""
    got = 0
    for block in blocks:
        yield block
        got += len(block)
        if got > limit:
            return


def text_blocks(
    path: Path, codec: str, skip: int, errors: str, block_size: int = BLOCK
) -> Iterator[bytes]:
    """The file as UTF-8 bytes in blocks of about ``BLOCK`` bytes.

    Line ends stay as they are: a CR or CRLF inside a quoted cell is part of the cell.
    """
    decoder = None if codec == "utf-8" else codecs.getincrementaldecoder(codec)(errors)
    with path.open("rb") as fh:
        fh.seek(skip)
        while True:
            raw = fh.read(block_size)
            final = not raw
            data = raw if decoder is None else decoder.decode(raw, final=final).encode("utf-8")
            if data:
                yield data
            if final:
                return


def read_sample(path: Path, codec: str, skip: int, size: int) -> tuple[str, bool]:
    """About ``size`` bytes of text from the start, cut after a line end when there is more."""
    data = b"".join(_take(text_blocks(path, codec, skip, "replace", size), size))
    truncated = len(data) > size
    sample = data[:size].decode("utf-8", errors="replace")
    if truncated:
        sample = sample[: max(sample.rfind("\n"), sample.rfind("\r")) + 1] or sample
    return sample, truncated
