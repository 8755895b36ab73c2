"""The abuse limits' counters in Redis (`app.limits.Counters`), so limits hold across processes.

A rate's state is one key holding when its budget is full again (milliseconds), expiring then. A
capped set (open sessions, a user's open conversations) is a sorted set scored by each member's
expiry; expired members are dropped before counting. Each operation is one Lua script, so two
processes cannot both take the last call or the last place. Times come from the caller's clock
(processes' clocks are NTP-synchronised; a controllable clock keeps tests exact).
"""

from __future__ import annotations

from redis.asyncio import Redis

from app.limits import Rate

# KEYS[1] the rate's key; ARGV now, interval, period (ms). Returns 0 when the call is allowed
# (and spends it), else the ms until one is.
_TAKE = """
local now = tonumber(ARGV[1])
local due = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if due < now then due = now end
due = due + tonumber(ARGV[2])
local over = due - now - tonumber(ARGV[3])
if over > 0 then return over end
redis.call('SET', KEYS[1], due, 'PX', math.max(1, due - now))
return 0
"""

# KEYS[1] the set; ARGV now, member, until (ms), cap. Returns 1 when the member is held.
_HOLD = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ends = tonumber(ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], ends, ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.max(ends, tonumber(last[2])))
return 1
"""


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


class RedisCounters:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}limit:"
        self._take = redis.register_script(_TAKE)
        self._hold = redis.register_script(_HOLD)

    async def take(self, key: str, rate: Rate, now: float) -> float:
        args = [_ms(now), max(1, _ms(rate.interval)), _ms(rate.seconds)]
        wait_ms = await self._take(keys=[self._prefix + key], args=args)
        return int(wait_ms) / 1000

    async def hold(self, scope: str, member: str, until: float, cap: int, now: float) -> bool:
        args: list[str | int] = [_ms(now), member, _ms(until), cap]
        return bool(await self._hold(keys=[self._prefix + scope], args=args))

    async def let_go(self, scope: str, members: list[str]) -> None:
        if members:
            await self._redis.zrem(self._prefix + scope, *members)
