"""Which process holds a guest session's Salesforce event stream: exactly one across all processes.

Each process has a random id and a heartbeat key (`proc:<id>`) that expires `heartbeat_ttl` after
its last renewal. A session's owner key (`own:<session>`) names the process holding its stream.
A session is free when the owner key is missing or names a process whose heartbeat expired (it
died, or stalled longer than the TTL): any process may then claim it, atomically. A closed chat's
owner key says `!ended` (and a session whose stream Salesforce refuses for good, `!broken`):
nobody may claim it again. Every write of
the owner (`journal`) is fenced by the same test, in the same Lua script, so a stalled owner that
lost its sessions cannot write after another process took them.

One heartbeat per process, however many sessions it holds: renewal costs one command a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import secrets
from collections.abc import Awaitable, Callable

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger(__name__)

ENDED = "!ended"
"""The owner of a closed chat's session: no process."""
BROKEN = "!broken"
"""The owner of a session whose stream Salesforce refuses for good (an expired token)."""

# Returns 1 when ARGV[1] holds (or now holds) the session, 0 when another live process does,
# -1 when nobody may because its chat was closed, -2 because Salesforce refuses its stream.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if current == '!ended' then
  return -1
end
if current and string.sub(current, 1, 1) == '!' then
  return -2
end
if current and redis.call('EXISTS', ARGV[2] .. current) == 1 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

# Of the owner keys given, the 1-based indexes of those no live process holds.
_FREE = """
local free = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if not current or (string.sub(current, 1, 1) ~= '!'
      and redis.call('EXISTS', ARGV[1] .. current) == 0) then
    free[#free + 1] = i
  end
end
return free
"""

# Of the owner keys given, the 1-based indexes of those not naming ARGV[1] (any more).
_LOST = """
local lost = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= ARGV[1] then
    lost[#lost + 1] = i
  end
end
return lost
"""

_RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""


class Ownership:
    def __init__(self, redis: Redis, prefix: str, *, heartbeat_ttl: float = 3.0) -> None:
        self.process_id = secrets.token_hex(8)
        self._redis = redis
        self._prefix = prefix
        self.heartbeat_ttl = heartbeat_ttl
        self._claim = redis.register_script(_CLAIM)
        self._free = redis.register_script(_FREE)
        self._release = redis.register_script(_RELEASE)
        self._lost = redis.register_script(_LOST)
        self._task: asyncio.Task[None] | None = None
        self._on_lapsed: Callable[[], Awaitable[None]] | None = None

    @property
    def process_prefix(self) -> str:
        return f"{self._prefix}proc:"

    @property
    def heartbeat_key(self) -> str:
        return self.process_prefix + self.process_id

    def owner_key(self, session: str) -> str:
        return f"{self._prefix}own:{session}"

    async def start(self, on_lapsed: Callable[[], Awaitable[None]] | None = None) -> None:
        """Beat once (so claims work at once), then keep beating in the background.
        `on_lapsed` runs when a beat finds the heartbeat expired (Redis was away, or this
        process stalled, for longer than the TTL): every session may have been taken, so the
        process must let go of all of them before it beats again."""
        self._on_lapsed = on_lapsed
        await self._redis.set(self.heartbeat_key, b"1", px=self._ttl_ms)
        self._task = asyncio.get_running_loop().create_task(
            self._beating(), context=contextvars.Context()
        )

    @property
    def _ttl_ms(self) -> int:
        return int(self.heartbeat_ttl * 1000)

    async def beat(self) -> None:
        """Renew the heartbeat only while it lives (fail closed): a lapsed one is renewed only
        after `on_lapsed` gave up what this process held."""
        if await self._redis.set(self.heartbeat_key, b"1", px=self._ttl_ms, xx=True):
            return
        log.warning("state.heartbeat_lapsed")
        if self._on_lapsed is not None:
            await self._on_lapsed()
        await self._redis.set(self.heartbeat_key, b"1", px=self._ttl_ms)

    async def _beating(self) -> None:
        interval = self.heartbeat_ttl / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.beat()
            except RedisError as exc:
                log.warning("state.heartbeat_failed", error=type(exc).__name__)
            except Exception as exc:  # the heartbeat must outlive any one failure
                log.error("state.heartbeat_crashed", error=type(exc).__name__)

    async def claim(self, session: str, ttl: float) -> int:
        """Hold the session's stream unless a live process does: 1 when this process holds it,
        0 when another live one does, -1 when nobody may since its chat was closed (`end`), -2
        since Salesforce refuses its stream (`mark_broken`)."""
        result = await self._claim(
            keys=[self.owner_key(session)],
            args=[self.process_id, self.process_prefix, max(1, int(ttl * 1000))],
        )
        return int(result)

    async def free(self, sessions: list[str]) -> list[str]:
        """Those of `sessions` no live process holds."""
        if not sessions:
            return []
        indexes = await self._free(
            keys=[self.owner_key(s) for s in sessions], args=[self.process_prefix]
        )
        return [sessions[int(i) - 1] for i in indexes]

    async def lost(self, sessions: list[str]) -> list[str]:
        """Those of `sessions` (held here) whose owner key no longer names this process: taken
        over while this process stalled, or ended by another process (a closed chat)."""
        if not sessions:
            return []
        indexes = await self._lost(
            keys=[self.owner_key(s) for s in sessions], args=[self.process_id]
        )
        return [sessions[int(i) - 1] for i in indexes]

    async def end(self, session: str, ttl: float) -> None:
        """The session's chat was closed: nobody may hold its stream again (for `ttl`, its
        remaining life); the holder notices at its next scan and stops the stream."""
        await self._redis.set(self.owner_key(session), ENDED, px=max(1, int(ttl * 1000)))

    async def mark_broken(self, session: str, ttl: float) -> None:
        """Salesforce refuses the session's stream for good: nobody opens it again, and readers
        everywhere are told."""
        await self._redis.set(self.owner_key(session), BROKEN, px=max(1, int(ttl * 1000)))

    async def release(self, sessions: list[str]) -> int:
        """Let go of sessions this process holds (idle, closed, shutting down)."""
        if not sessions:
            return 0
        return int(
            await self._release(keys=[self.owner_key(s) for s in sessions], args=[self.process_id])
        )

    async def stop(self) -> None:
        """Stop beating and drop the heartbeat, so every session still held is free at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(RedisError):
            await self._redis.delete(self.heartbeat_key)
