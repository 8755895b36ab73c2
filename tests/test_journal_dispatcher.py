"""The journal's dispatcher: one blocking connection wakes every local reader, on the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.state.connection import SOCKET_TIMEOUT, blocking_client, pooled_client
from app.state.dispatcher import Dispatcher
from tests.redis_support import REDIS_URL, PrivateRedis, private_redis, redis_prefix

__all__ = ["private_redis", "redis_prefix"]


@pytest.fixture
async def dispatcher(redis_prefix: tuple[Redis, str]) -> AsyncIterator[Dispatcher]:
    _, prefix = redis_prefix
    blocking = blocking_client(REDIS_URL, tls_verify=False)
    pooled = pooled_client(REDIS_URL, tls_verify=False, max_connections=4)
    dispatcher = Dispatcher(blocking, pooled, f"{prefix}wake:test")
    dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.aclose()
        await blocking.aclose()
        await pooled.aclose()


async def test_a_quiet_wait_longer_than_the_socket_timeout_is_one_blocking_read(
    private_redis: PrivateRedis,
) -> None:
    # redis-py cuts socket reads at 5 s by default (and retries): a quiet wait must be one
    # blocking read, neither cut nor repeated. On a Redis of its own, so its count is exact.
    blocking = blocking_client(private_redis.url, tls_verify=False)
    pooled = pooled_client(private_redis.url, tls_verify=False, max_connections=4)
    dispatcher = Dispatcher(blocking, pooled, "wake:test")
    dispatcher.start()
    try:
        assert await dispatcher.wait("quiet", "0", SOCKET_TIMEOUT + 1) is False
        stats = await pooled.info("commandstats")
    finally:
        await dispatcher.aclose()
        await blocking.aclose()
        await pooled.aclose()
    assert stats["cmdstat_xread"]["calls"] == 1


async def test_a_reader_joining_a_blocked_read_is_woken_by_its_own_stream(
    dispatcher: Dispatcher, redis_prefix: tuple[Redis, str]
) -> None:
    redis, prefix = redis_prefix
    first = asyncio.create_task(dispatcher.wait(f"{prefix}one", "0", 20))
    async with asyncio.timeout(10):  # a safety deadline: the blocking read starts at once
        await dispatcher.reading.wait()
    # The dispatcher is blocked on stream one; a reader of stream two joins, then it grows.
    second = asyncio.create_task(dispatcher.wait(f"{prefix}two", "0", 20))
    await asyncio.sleep(0)
    await redis.xadd(f"{prefix}two", {"e": "x"})
    assert await second is True
    assert not first.done()  # stream one did not grow
    await redis.xadd(f"{prefix}one", {"e": "y"})
    assert await first is True


async def test_readers_at_different_positions_wake_only_for_entries_after_theirs(
    dispatcher: Dispatcher, redis_prefix: tuple[Redis, str]
) -> None:
    redis, prefix = redis_prefix
    key = f"{prefix}log"
    first_id = (await redis.xadd(key, {"e": "1"})).decode()
    behind = asyncio.create_task(dispatcher.wait(key, "0", 20))
    assert await behind is True  # an entry after "0" is already there
    level = asyncio.create_task(dispatcher.wait(key, first_id, 20))
    await asyncio.sleep(0)
    assert not level.done()
    await redis.xadd(key, {"e": "2"})
    assert await level is True
