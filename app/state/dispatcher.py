"""Wakes a process's waiting readers when a journal stream they wait on grows.

One blocking connection per process, however many readers wait: one `XREAD BLOCK` over every
stream they wait on plus the process's wake-up stream, to which a reader with an earlier position
than the read under way appends to interrupt it. While nobody waits no new blocking read starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.state.connection import BLOCKING_READ_SECONDS
from app.state.journal import REDIS_RETRY, position, text_of

log = structlog.get_logger(__name__)

WAKE_STREAM_TTL_MS = 3_600_000


@dataclass
class _Waiter:
    after: tuple[int, int]
    future: asyncio.Future[None]


class Dispatcher:
    """Wakes this process's readers when a stream they wait on grows: one blocking connection
    for all of them, and no Redis command at all while nobody waits."""

    def __init__(self, blocking: Redis, redis: Redis, wake_key: str) -> None:
        self._blocking = blocking
        self._redis = redis
        self._wake_key = wake_key
        self._wake_seen = "0-0"
        self._waiters: dict[str, list[_Waiter]] = {}
        self._inflight: dict[str, tuple[int, int]] | None = None
        self._someone_waits = asyncio.Event()
        self.reading = asyncio.Event()
        """Set while a blocking read is under way."""
        self._task: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiters.values())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), context=contextvars.Context()
        )

    async def wait(self, key: str, after: str, seconds: float) -> bool:
        """Wait until `key` has an entry after `after`, at most `seconds`; True if it has.
        Raises RedisError when the dispatcher lost Redis meanwhile."""
        if seconds <= 0:
            return False
        waiter = _Waiter(position(after), asyncio.get_running_loop().create_future())
        self._waiters.setdefault(key, []).append(waiter)
        self._someone_waits.set()
        try:
            inflight = self._inflight
            if inflight is not None and inflight.get(key, (1 << 64, 0)) > waiter.after:
                # The blocking read under way does not cover this position: interrupt it.
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.xadd(self._wake_key, {"w": "1"}, maxlen=8, approximate=False)
                    pipe.pexpire(self._wake_key, WAKE_STREAM_TTL_MS)
                    await pipe.execute()
            try:
                async with asyncio.timeout(seconds):
                    await waiter.future
            except TimeoutError:
                return False
            return True
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[key]

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self._waiters:
                self._someone_waits.clear()
                await self._someone_waits.wait()
                continue
            positions = {
                key: min(w.after for w in pending)
                for key, waiters in self._waiters.items()
                if (pending := [w for w in waiters if not w.future.done()])
            }
            streams: dict[Any, Any] = {self._wake_key: self._wake_seen}
            streams.update({key: f"{ms}-{seq}" for key, (ms, seq) in positions.items()})
            self._inflight = positions
            self.reading.set()
            try:
                answer: Any = await self._blocking.xread(
                    streams, count=1, block=int(BLOCKING_READ_SECONDS * 1000)
                )
                failures = 0
            except Exception as exc:  # Redis away (or anything else): readers are told, and
                # the dispatcher keeps going
                self._inflight = None
                self._fail_all(
                    exc if isinstance(exc, RedisError) else RedisError(type(exc).__name__)
                )
                delay = REDIS_RETRY.delay(failures)
                failures += 1
                log.warning("state.dispatcher_failed", error=type(exc).__name__)
                await asyncio.sleep(delay)
                continue
            finally:
                self._inflight = None
                self.reading.clear()
            for raw_key, items in answer or []:
                key = text_of(raw_key)
                newest = text_of(items[-1][0])
                if key == self._wake_key:
                    self._wake_seen = newest
                    continue
                reached = position(newest)
                for waiter in self._waiters.get(key, []):
                    if waiter.after < reached and not waiter.future.done():
                        waiter.future.set_result(None)

    def _fail_all(self, exc: Exception) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(exc)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
