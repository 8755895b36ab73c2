"""The real Redis the tests share (127.0.0.1:6379, or TEST_REDIS_URL): every test gets its own key
prefix and deletes its keys afterwards."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.servers import free_port

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


@dataclass
class PrivateRedis:
    """A redis-server of the test's own, on its own port, that the test can stop and start
    again. It keeps an append-only file, as Heroku Key-Value Store keeps its data over a
    restart."""

    directory: Path
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
            "--save", "",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        seen = b""
        async with asyncio.timeout(30):  # a safety deadline: readiness is a line it prints
            while b"Ready to accept connections" not in seen:
                line = await self.proc.stdout.readline()
                assert line, f"redis-server exited: {seen.decode()}"
                seen += line
        asyncio.get_running_loop().create_task(self._drain(self.proc.stdout))

    @staticmethod
    async def _drain(stdout: asyncio.StreamReader) -> None:
        while await stdout.readline():
            pass

    async def stop(self) -> None:
        """SIGTERM: Redis syncs its file and exits; clients get connection errors."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
