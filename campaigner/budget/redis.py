"""The Redis budget (``--rate-budget redis://HOST:PORT/DB``): the grant rule in one Lua script
on Redis's own clock, so processes on several hosts share one quota.

One script call per grant: it reads ``TIME``, the TAT and the recent grant times, decides as
``gcra.GrantState`` does, and records the grant, atomically. Both keys expire a few seconds
after the last grant, so nothing lingers. When Redis cannot be reached there is no grant:
``take`` raises ``BudgetUnavailable`` and the caller waits (no request without a budget).
A Redis restarted empty forgets the last second's grants, as a reboot does the host file.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from campaigner.budget.gcra import GrantRule
from campaigner.errors import BudgetUnavailable, RateBudgetError

__all__ = ("RedisBudget", "connect", "redis_where")

# KEYS: the TAT, the list of recent grant times (newest first).
# ARGV: limit, interval, tolerance, window (seconds), key lifetime (ms).
# Returns "0" for a grant, else the seconds to wait, as text (Lua numbers would be truncated).
_GRANT = """
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local tolerance = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local horizon = now + window + interval
local tat = tonumber(redis.call('GET', KEYS[1]))
local newest = tonumber(redis.call('LINDEX', KEYS[2], 0))
if (tat and tat > horizon) or (newest and newest > horizon) then
  redis.call('DEL', KEYS[1], KEYS[2])  -- Redis's clock went back: start afresh
  tat = nil
end
local wait = 0
if tat then wait = tat - now end
if redis.call('LLEN', KEYS[2]) >= limit then
  local oldest = tonumber(redis.call('LINDEX', KEYS[2], limit - 1))
  wait = math.max(wait, oldest + window - now)
end
if wait > 0 then return string.format('%.6f', wait) end
local base = now
if tat then base = math.max(tat, now - tolerance) end
redis.call('SET', KEYS[1], string.format('%.6f', base + interval), 'PX', ARGV[5])
redis.call('LPUSH', KEYS[2], string.format('%.6f', now))
redis.call('LTRIM', KEYS[2], 0, limit - 1)
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return '0'
"""
_KEY_LIFETIME_MS = 10_000
_TIMEOUT_S = 2.0


def redis_where(url: str) -> str:
    """The URL as shown in messages: no user name or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def connect(url: str) -> aioredis.Redis:
    """A client for ``url`` that fails fast (one quick retry) instead of hanging."""
    try:
        return aioredis.Redis.from_url(
            url,
            socket_timeout=_TIMEOUT_S,
            socket_connect_timeout=_TIMEOUT_S,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
    except ValueError as exc:
        raise RateBudgetError(f"--rate-budget {redis_where(url)}: {exc}") from None


def unavailable(where: str, exc: Exception) -> BudgetUnavailable:
    return BudgetUnavailable(f"rate budget {where} unreachable ({type(exc).__name__}: {exc})")


class RedisBudget:
    """The grant rule in Redis, under ``key`` (see the module)."""

    def __init__(self, url: str, key: str, rule: GrantRule, client: aioredis.Redis | None = None):
        self.rule = rule
        self._where = redis_where(url)
        self._client = client or connect(url)
        self._owned = client is None
        self._keys = [f"campaigner:budget:{{{key}}}:tat", f"campaigner:budget:{{{key}}}:grants"]
        self._args: list[Any] = [
            rule.limit,
            repr(rule.interval),
            repr(rule.tolerance),
            repr(rule.window),
            _KEY_LIFETIME_MS,
        ]
        self._script = self._client.register_script(_GRANT)

    @property
    def where(self) -> str:
        return self._where

    async def take(self) -> float:
        try:
            answer = await self._script(keys=self._keys, args=self._args)
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise unavailable(self._where, exc) from None
        except RedisError as exc:  # refused (auth, a read-only replica, a script error)
            if "LOADING" in str(exc) or "READONLY" in str(exc):
                raise unavailable(self._where, exc) from None
            raise RateBudgetError(f"rate budget {self._where}: {exc}") from None
        return float(answer)

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()
