"""The host-wide budget: the grant rule over a small file that every process of this user on
this host opens, so several ``campaigner send`` processes on one AccessKey share the quota
with no server.

The file (``$XDG_STATE_HOME/campaigner/budgets/<key>.budget``) holds the TAT and the recent
grant times on the host's monotonic clock, with a CRC. Each ``take`` locks it with ``flock``
(non-blocking: a busy lock is a short wait, never a stalled event loop), reads it, decides,
writes it back. A process killed at any point leaves nothing stuck: the kernel drops its
lock, and the file holds only times, no owner. A file that fails its CRC, was written by
another layout, or holds times ahead of the clock (the host rebooted) starts afresh: that
forgets at most the last second's grants, once.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from pathlib import Path

from campaigner.budget.gcra import GrantRule, GrantState
from campaigner.errors import RateBudgetError

__all__ = ("HostBudget", "decode_state", "encode_state", "state_dir")

_MAGIC = b"CGRB\x01"
_HEAD = struct.Struct("<5sId I")  # magic+version, limit, tat (NaN: none), grants stored
_BUSY_WAIT_S = 0.0005  # another process holds the lock for a few µs: ask again soon


def state_dir() -> Path | None:
    """``$XDG_STATE_HOME/campaigner`` (``~/.local/state/campaigner`` when unset)."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):  # the XDG spec ignores a relative value
        return Path(xdg) / "campaigner"
    try:
        return Path.home() / ".local" / "state" / "campaigner"
    except RuntimeError:  # no home folder to be found
        return None


def encode_state(rule: GrantRule, state: GrantState) -> bytes:
    """Always the same size (unused slots NaN), so a shorter state leaves no stale tail."""
    grants = list(state.grants or ())
    tat = math.nan if state.tat is None else state.tat
    padded = grants + [math.nan] * (rule.limit - len(grants))
    body = _HEAD.pack(_MAGIC, rule.limit, tat, len(grants)) + struct.pack(
        f"<{rule.limit}d", *padded
    )
    return body + struct.pack("<I", zlib.crc32(body))


def decode_state(rule: GrantRule, data: bytes) -> GrantState | None:
    """The state in ``data``; None when it is empty, damaged or of another layout or rule."""
    end = _HEAD.size + 8 * rule.limit
    if len(data) != end + 4:
        return None
    magic, limit, tat, count = _HEAD.unpack_from(data)
    if magic != _MAGIC or limit != rule.limit or count > limit:
        return None
    if struct.unpack_from("<I", data, end)[0] != zlib.crc32(data[:end]):
        return None
    grants = deque(struct.unpack_from(f"<{count}d", data, _HEAD.size))
    return GrantState(None if math.isnan(tat) else tat, grants)


class HostBudget:
    """The grant rule over one file shared by this host's processes (see the module)."""

    def __init__(
        self, path: Path, rule: GrantRule, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self.rule = rule
        self._clock = clock
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RateBudgetError(
                f"cannot open the host-wide rate budget {path}: {exc.strerror}; "
                "use --rate-budget local (this process only) or fix the folder"
            ) from None
        self._size = _HEAD.size + 8 * rule.limit + 4  # the most the file can hold
        self.granted_at: float | None = None  # the clock at the last grant (for checks)

    @property
    def where(self) -> str:
        return "host-wide"

    def take_now(self) -> float:
        """``take`` without the coroutine: a grant (0.0) or the seconds to wait."""
        fd = self._fd
        if fd is None:
            raise RateBudgetError("the host-wide rate budget is closed")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _BUSY_WAIT_S
        try:
            now = self._clock()
            state = decode_state(self.rule, os.pread(fd, self._size, 0))
            if state is None or not state.sane(self.rule, now):
                state = GrantState()
            wait = state.take(self.rule, now)
            if wait <= 0:
                data = encode_state(self.rule, state)
                if os.pwrite(fd, data, 0) != len(data):
                    raise OSError(errno.EIO, "short write")
                self.granted_at = now
            return wait
        except OSError as exc:
            raise RateBudgetError(
                f"the host-wide rate budget {self.path} cannot be used: {exc.strerror or exc}"
            ) from None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    async def take(self) -> float:
        return self.take_now()

    async def aclose(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
