"""The run lease in Redis: a key naming the process that works on a run, with an expiry it
keeps renewing, so two hosts sharing a Redis budget never send the same run at once (the run
folder's own lock only holds on one host).

A second process finds the key taken and stops before it touches the journal. The holder
renews every third of the lifetime; if the key is gone (Redis restarted empty) it takes it
back, and if another process holds it by then, the holder is told it lost the run. While
Redis is unreachable nothing is renewed, and nothing is sent either (no budget).
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from collections.abc import Callable

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from campaigner.errors import RateBudgetError

__all__ = ("RunLease",)

_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RunLease:
    """The lease on one run in ``client``'s Redis: ``run_name`` is its folder's name (for
    messages), ``created`` when it was created (folders in two workspaces may share a name)."""

    def __init__(
        self,
        client: aioredis.Redis,
        where: str,
        run_name: str,
        *,
        created: str = "",
        lifetime_s: float = 15.0,
    ) -> None:
        self._client = client
        self._where = where
        self.run_name = run_name
        digest = hashlib.sha256(f"{run_name}\0{created}".encode()).hexdigest()[:32]
        self.key = f"campaigner:lease:{digest}"
        self._ms = int(lifetime_s * 1000)
        self.lifetime_s = lifetime_s
        # Who holds it, for the other process's message; unique per process and run.
        self.holder = f"{socket.gethostname()} pid {os.getpid()} {uuid.uuid4().hex[:8]}"
        self.lost: str | None = None  # why the lease was lost to another process, if it was
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    async def acquire(self) -> None:
        """Take the lease, or say who has it (``RateBudgetError``)."""
        try:
            if await self._client.set(self.key, self.holder, nx=True, px=self._ms):
                return
            other = str(await self._client.get(self.key) or "just now")
        except (RedisError, OSError) as exc:
            await self._close()
            raise RateBudgetError(
                f"cannot reach the rate budget {self._where} to lease run {self.run_name} "
                f"({type(exc).__name__}: {exc}); nothing was sent"
            ) from None
        await self._close()
        raise RateBudgetError(
            f"run {self.run_name} is being sent by another process ({other}, "
            f"lease in {self._where}); nothing was sent from here"
        )

    async def renew(self) -> bool | None:
        """True: still ours; False: another process holds it; None: Redis unreachable."""
        try:
            return bool(await self._renew(keys=[self.key], args=[self.holder, self._ms]))
        except (RedisError, OSError):
            return None

    async def keep(self, lost: Callable[[str], None]) -> None:
        """Renew until cancelled; ``lost`` hears why if another process took the run."""
        while True:
            await anyio.sleep(self.lifetime_s / 3)
            if await self.renew() is False:
                self.lost = f"the lease on run {self.run_name} in {self._where} was taken over"
                lost(self.lost)
                return

    async def release(self) -> None:
        """Give the lease back (if still ours) and close the connection."""
        try:
            await self._release(keys=[self.key], args=[self.holder])
        except (RedisError, OSError):
            pass  # it expires by itself
        await self._close()

    async def _close(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError):
            pass
