"""Session records in Redis, sealed (`app.state.sealing`): nothing of a record (the Salesforce
token, the handle, the ChatGPT subject, pre-chat values) is readable in a dump.

Keys hold a hash of the handle, never the handle. Each record expires with its session
(`PEXPIREAT`), so Redis forgets it by itself; there is no size cap (the limits of concurrent
sessions are a separate concern).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import WatchError

from app.state.sealing import Sealer
from app.store.base import SessionRecord


def handle_key(handle: str) -> str:
    """A stable, non-reversible name for a handle, for Redis keys."""
    return hashlib.sha256(handle.encode()).hexdigest()[:32]


class RedisSessionStore:
    def __init__(
        self,
        redis: Redis,
        sealer: Sealer,
        prefix: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._sealer = sealer
        self._prefix = prefix

    def _key(self, handle: str) -> str:
        return f"{self._prefix}session:{handle_key(handle)}"

    def _seal(self, record: SessionRecord) -> bytes:
        return self._sealer.seal(record.model_dump_json(context={"reveal": True}).encode())

    @staticmethod
    def _expiry_ms(record: SessionRecord) -> int:
        return max(1, int(record.expires_at * 1000))

    def _open(self, handle: str, sealed: Any) -> SessionRecord | None:
        if sealed is None:
            return None
        record = SessionRecord.model_validate_json(self._sealer.open(sealed))
        if record.handle != handle or record.expires_at <= self._clock():
            return None
        return record

    async def put(self, record: SessionRecord) -> None:
        await self._redis.set(
            self._key(record.handle), self._seal(record), pxat=self._expiry_ms(record)
        )

    async def get(self, handle: str) -> SessionRecord | None:
        return self._open(handle, await self._redis.get(self._key(handle)))

    async def update(
        self, handle: str, change: Callable[[SessionRecord], bool]
    ) -> SessionRecord | None:
        key = self._key(handle)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    record = self._open(handle, await pipe.get(key))
                    if record is None or not change(record):
                        return record  # leaving the pipeline unwatches
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, self._seal(record), pxat=self._expiry_ms(record))
                    await pipe.execute()
                    return record
                except WatchError:
                    continue  # written meanwhile (another call, another process): again

    async def delete(self, handle: str) -> None:
        await self._redis.delete(self._key(handle))

    async def close(self) -> None:
        """The Redis client is shared and closed by its owner."""
