"""The SessionStore contract, run against every implementation (memory, and Redis with sealing)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from redis.asyncio import Redis

from app.state.sealing import Sealer, SealingError
from app.store import (
    ConversationState,
    MemorySessionStore,
    SessionRecord,
    SessionStore,
)
from app.store.redis import RedisSessionStore
from tests.redis_support import TEST_KEY, dump, redis_prefix

__all__ = ["redis_prefix"]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def record(handle: str, clock: Clock, lifetime: float = 1000.0) -> SessionRecord:
    return SessionRecord(
        handle=handle,
        owner="user-" + handle,
        access_token=SecretStr("jwt-" + handle),
        created_at=clock.now,
        expires_at=clock.now + lifetime,
    )


StoreFactory = Callable[[Clock], SessionStore]


@pytest.fixture(params=["memory", "redis"])
async def factory(
    request: pytest.FixtureRequest, redis_prefix: tuple[Redis, str]
) -> AsyncIterator[StoreFactory]:
    redis, prefix = redis_prefix
    if request.param == "memory":
        yield lambda clock: MemorySessionStore(clock=clock)
    else:
        yield lambda clock: RedisSessionStore(redis, Sealer(TEST_KEY), prefix, clock=clock)


async def test_put_then_get_returns_an_equal_independent_copy(factory: StoreFactory) -> None:
    clock = Clock()
    store = factory(clock)
    original = record("h1", clock)
    original.conversations["c1"] = ConversationState(conversation_id="c1", cursor="3")
    await store.put(original)
    loaded = await store.get("h1")
    assert loaded == original
    assert loaded is not None
    assert loaded.access_token.get_secret_value() == "jwt-h1"
    loaded.conversations["c1"].cursor = "99"
    again = await store.get("h1")
    assert again is not None and again.conversations["c1"].cursor == "3"


async def test_expired_records_are_gone(factory: StoreFactory) -> None:
    clock = Clock()
    store = factory(clock)
    await store.put(record("h1", clock, lifetime=500))
    clock.now += 499
    assert await store.get("h1") is not None
    clock.now += 1
    assert await store.get("h1") is None


async def test_delete_forgets(factory: StoreFactory) -> None:
    clock = Clock()
    store = factory(clock)
    await store.put(record("h1", clock))
    await store.put(record("h2", clock))
    await store.delete("h1")
    assert await store.get("h1") is None
    assert await store.get("h2") is not None


async def test_unknown_handles_are_none(factory: StoreFactory) -> None:
    clock = Clock()
    store = factory(clock)
    await store.put(record("h1", clock))
    assert await store.get("h2") is None
    assert await store.get("") is None


def test_token_is_not_in_the_records_repr_nor_its_plain_json() -> None:
    rec = record("h1", Clock())
    assert "jwt-h1" not in repr(rec)
    assert "jwt-h1" not in rec.model_dump_json()


async def test_redis_keeps_nothing_readable(redis_prefix: tuple[Redis, str]) -> None:
    redis, prefix = redis_prefix
    clock = Clock()
    store = RedisSessionStore(redis, Sealer(TEST_KEY), prefix, clock=clock)
    rec = record("handle-abcdef", clock)
    rec.conversations["c1"] = ConversationState(
        conversation_id="c1", routing_attributes={"email": "ada@example.com"}
    )
    await store.put(rec)
    raw = await dump(redis, prefix)
    assert raw.count(b"\n") >= 2  # the record is there...
    for secret in (b"jwt-handle-abcdef", b"handle-abcdef", b"user-handle", b"ada@example.com"):
        assert secret not in raw  # ...but none of it is readable


async def test_redis_records_expire_in_redis_too(redis_prefix: tuple[Redis, str]) -> None:
    redis, prefix = redis_prefix
    clock = Clock()
    store = RedisSessionStore(redis, Sealer(TEST_KEY), prefix, clock=clock)
    await store.put(record("h1", clock, lifetime=100))
    keys = [k async for k in redis.scan_iter(match=f"{prefix}*")]
    assert len(keys) == 1
    ttl_ms = await redis.pttl(keys[0])
    assert 90_000 < ttl_ms <= 100_000


async def test_a_rotated_key_still_opens_old_records(redis_prefix: tuple[Redis, str]) -> None:
    redis, prefix = redis_prefix
    clock = Clock()
    old_key = Fernet.generate_key().decode()
    await RedisSessionStore(redis, Sealer(old_key), prefix, clock=clock).put(record("h1", clock))
    rotated = RedisSessionStore(redis, Sealer(f"{TEST_KEY},{old_key}"), prefix, clock=clock)
    loaded = await rotated.get("h1")
    assert loaded is not None and loaded.access_token.get_secret_value() == "jwt-h1"
    with pytest.raises(SealingError, match="STATE_ENCRYPTION_KEY"):
        await RedisSessionStore(redis, Sealer(TEST_KEY), prefix, clock=clock).get("h1")


async def test_concurrent_updates_are_all_kept(
    factory: StoreFactory, redis_prefix: tuple[Redis, str]
) -> None:
    """Fifty updates at once, through two store objects (two processes, with Redis): none is
    lost, as none would be if each call read, changed and wrote the record."""
    clock = Clock()
    stores = [factory(clock), factory(clock)]
    if isinstance(stores[0], MemorySessionStore):
        stores = [stores[0], stores[0]]  # memory is one process's
    await stores[0].put(record("h1", clock))

    def adding(n: int) -> Callable[[SessionRecord], bool]:
        def add(fresh: SessionRecord) -> bool:
            fresh.conversations[f"c{n}"] = ConversationState(conversation_id=f"c{n}")
            return True

        return add

    results = await asyncio.gather(*(stores[n % 2].update("h1", adding(n)) for n in range(50)))
    assert all(r is not None for r in results)
    final = await stores[1].get("h1")
    assert final is not None and set(final.conversations) == {f"c{n}" for n in range(50)}


async def test_an_update_that_changes_nothing_writes_nothing(factory: StoreFactory) -> None:
    clock = Clock()
    store = factory(clock)
    assert await store.update("h1", lambda r: True) is None  # unknown: nothing to change
    await store.put(record("h1", clock))
    seen = await store.update("h1", lambda r: setattr(r, "closed", True) or False)
    assert seen is not None and seen.closed  # the change was made on the copy...
    stored = await store.get("h1")
    assert stored is not None and not stored.closed  # ...but not stored
