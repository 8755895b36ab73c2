"""The SessionStore contract, run against every implementation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr

from app.store import ConversationState, MemorySessionStore, SessionRecord, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(handle: str, expires_at: float = 2000.0) -> SessionRecord:
    return SessionRecord(
        handle=handle,
        access_token=SecretStr("jwt-" + handle),
        created_at=1000.0,
        expires_at=expires_at,
    )


StoreFactory = Callable[[int, Clock], SessionStore]


@pytest.fixture(params=["memory"])
def factory(request: pytest.FixtureRequest) -> StoreFactory:
    assert request.param == "memory"
    return lambda cap, clock: MemorySessionStore(cap, clock=clock)


async def test_put_then_get_returns_an_equal_independent_copy(factory: StoreFactory) -> None:
    store = factory(10, Clock())
    original = record("h1")
    original.conversations["c1"] = ConversationState(conversation_id="c1", cursor=3)
    await store.put(original)
    loaded = await store.get("h1")
    assert loaded == original
    assert loaded is not None
    loaded.conversations["c1"].cursor = 99
    again = await store.get("h1")
    assert again is not None and again.conversations["c1"].cursor == 3


async def test_expired_records_are_gone(factory: StoreFactory) -> None:
    clock = Clock()
    store = factory(10, clock)
    await store.put(record("h1", expires_at=1500.0))
    clock.now = 1500.0
    assert await store.get("h1") is None


async def test_size_cap_evicts_the_oldest(factory: StoreFactory) -> None:
    store = factory(2, Clock())
    for handle in ("a", "b", "c"):
        await store.put(record(handle))
    assert await store.get("a") is None
    assert await store.get("b") is not None and await store.get("c") is not None


async def test_delete_forgets(factory: StoreFactory) -> None:
    store = factory(10, Clock())
    await store.put(record("h1"))
    await store.delete("h1")
    assert await store.get("h1") is None


def test_token_is_not_in_the_records_repr() -> None:
    assert "jwt-h1" not in repr(record("h1"))
