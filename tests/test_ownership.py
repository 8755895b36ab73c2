"""Which process holds a session's event stream, on the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.state.ownership import Ownership
from tests.redis_support import redis_prefix

__all__ = ["redis_prefix"]


@pytest.fixture
async def two(redis_prefix: tuple[Redis, str]) -> AsyncIterator[tuple[Ownership, Ownership]]:
    """Two processes' ownerships, beating; stopped (again) at the end."""
    redis, prefix = redis_prefix
    a, b = Ownership(redis, prefix), Ownership(redis, prefix)
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


async def test_one_holder_until_it_dies_then_anyone_may_claim(
    two: tuple[Ownership, Ownership],
) -> None:
    a, b = two
    assert await a.claim("s1", ttl=60) == 1
    assert await a.claim("s1", ttl=60) == 1  # holding it again is fine
    assert await b.claim("s1", ttl=60) == 0
    assert await b.free(["s1", "s2"]) == ["s2"]
    assert await a.lost(["s1"]) == []
    # a dies: its heartbeat is gone (as when it expires), so s1 is free and b takes it.
    await a.stop()
    assert await b.free(["s1"]) == ["s1"]
    assert await b.claim("s1", ttl=60) == 1
    assert await a.lost(["s1"]) == ["s1"]  # were a only stalled, it would learn it lost s1


async def test_a_closed_chats_session_can_never_be_claimed_again(
    two: tuple[Ownership, Ownership],
) -> None:
    a, b = two
    assert await a.claim("s1", ttl=60) == 1
    await b.end("s1", ttl=60)
    assert await a.lost(["s1"]) == ["s1"]  # the holder stops at its next scan
    assert await b.free(["s1"]) == []  # nobody takes it over
    await a.stop()
    assert await b.claim("s1", ttl=60) == -1
    await b.mark_broken("s2", ttl=60)
    assert await b.claim("s2", ttl=60) == -2
    assert await b.free(["s1", "s2"]) == []
    assert await b.release(["s1"]) == 0


async def test_release_lets_go_of_only_what_is_ours(two: tuple[Ownership, Ownership]) -> None:
    a, b = two
    assert await a.claim("s1", ttl=60) == 1 and await b.claim("s2", ttl=60) == 1
    assert await a.release(["s1", "s2"]) == 1
    assert await b.claim("s1", ttl=60) == 1
    assert await a.claim("s2", ttl=60) == 0


async def test_a_lapsed_heartbeat_lets_go_of_everything_before_it_beats_again(
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    a, b = Ownership(redis, prefix), Ownership(redis, prefix)
    let_go: list[list[str]] = []

    async def on_lapsed() -> None:
        let_go.append(await a.lost(["s1", "s2"]))
        await a.release(["s1", "s2"])

    await a.start(on_lapsed=on_lapsed)
    await b.start()
    try:
        assert await a.claim("s1", ttl=60) == 1 and await a.claim("s2", ttl=60) == 1
        await a.beat()
        assert let_go == []  # a live heartbeat is just renewed
        # a stalls past its TTL (its heartbeat expires) and b takes s1 meanwhile.
        await redis.delete(a.heartbeat_key)
        assert await b.claim("s1", ttl=60) == 1
        await a.beat()
        assert let_go == [["s1"]]  # s1 was taken; s2 was still a's on record...
        assert await b.free(["s1", "s2"]) == ["s2"]  # ...and is now free, not held by nobody
        assert await redis.exists(a.heartbeat_key)  # a beats again afterwards
    finally:
        await a.stop()
        await b.stop()
