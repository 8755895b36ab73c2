"""The real Redis the tests share (127.0.0.1:6379, or TEST_REDIS_URL): every test gets its own key
prefix and deletes its keys afterwards."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_KEY = "test-state-encryption-key-0123456789abcdef"


def new_prefix() -> str:
    return f"test:{secrets.token_hex(6)}:"


async def delete_prefix(redis: Redis, prefix: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    if keys:
        await redis.delete(*keys)


async def dump(redis: Redis, prefix: str) -> bytes:
    """Every key and value under the prefix, as a dump would show them."""
    out = b""
    async for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        kind = (await redis.type(key)).decode()
        out += key + b"\n"
        if kind == "string":
            out += await redis.get(key) or b""
        elif kind == "hash":
            out += repr(await redis.hgetall(key)).encode()
        elif kind == "set":
            out += repr(await redis.smembers(key)).encode()
        elif kind == "stream":
            out += repr(await redis.xrange(key)).encode()
        out += b"\n"
    return out


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[Redis, str]]:
    redis = Redis.from_url(REDIS_URL)
    prefix = new_prefix()
    try:
        yield redis, prefix
    finally:
        await delete_prefix(redis, prefix)
        await redis.aclose()
