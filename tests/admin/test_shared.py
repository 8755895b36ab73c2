"""The operator page of processes sharing Redis: a session signed in on one process is accepted
by the others (the cookie is signed, not kept), the sign-in budget is one across them (the
limits' counters in Redis), and each page names the process whose board it shows."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests.admin.conftest import PASSWORD, admin_app, client_for, sign_in
from tests.redis_support import REDIS_URL, TEST_KEY, redis_prefix

__all__ = ["redis_prefix"]


@pytest.fixture
async def processes(redis_prefix: tuple[Redis, str]) -> AsyncIterator[list[Starlette]]:
    _, prefix = redis_prefix
    apps = [
        admin_app(redis_url=REDIS_URL, state_encryption_key=TEST_KEY, redis_key_prefix=prefix)
        for _ in range(2)
    ]
    yield apps
    for app in apps:
        with contextlib.suppress(Exception):
            await app.state.runtime.redis.aclose()


async def test_a_session_from_one_process_is_good_on_another(processes: list[Starlette]) -> None:
    first, second = processes
    async with client_for(first) as one, client_for(second) as other:
        assert (await sign_in(one)).status_code == 303
        assert (await other.get("/admin/api/state")).status_code == 401
        other.cookies.set("miaw-admin", one.cookies["miaw-admin"])
        states = [(await c.get("/admin/api/state")).json() for c in (one, other)]
    assert states[0]["process"] and states[1]["process"]
    assert states[0]["process"] != states[1]["process"]
    assert states[1]["health"]["stateStore"] == "redis"


async def test_the_sign_in_budget_holds_across_processes(processes: list[Starlette]) -> None:
    first, second = processes
    async with client_for(first) as one, client_for(second) as other:
        for _ in range(10):
            assert (await sign_in(one, "a wrong password, again")).status_code == 401
        assert (await sign_in(other, PASSWORD)).status_code == 429
