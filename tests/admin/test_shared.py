"""The operator page of processes sharing Redis: a session signed in on one process is accepted
by the others (the cookie is signed, not kept) and a signed-out one by none, even after a
restart (revocations in Redis); the sign-in budget is one across them (the limits' counters in
Redis); each page names the process whose board it shows; while Redis is down nobody gets in."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from starlette.applications import Starlette

from tests.admin.conftest import LOCAL, PASSWORD, admin_app, client_for, csrf_of, sign_in
from tests.redis_support import (
    REDIS_URL,
    TEST_KEY,
    PrivateRedis,
    new_prefix,
    private_redis,
    redis_prefix,
)

__all__ = ["private_redis", "redis_prefix"]


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


def process_on(prefix: str, redis_url: str = REDIS_URL) -> Starlette:
    return admin_app(redis_url=redis_url, state_encryption_key=TEST_KEY, redis_key_prefix=prefix)


async def test_signing_out_ends_the_session_on_every_process_and_after_a_restart(
    processes: list[Starlette], redis_prefix: tuple[Redis, str]
) -> None:
    first, second = processes
    async with client_for(first) as browser, client_for(second) as copy:
        assert (await sign_in(browser)).status_code == 303
        cookie = browser.cookies["miaw-admin"]
        copy.cookies.set("miaw-admin", cookie)  # a copy of the cookie, used on another process
        assert (await copy.get("/admin/api/state")).status_code == 200
        page = await browser.get("/admin")
        out = await browser.post("/admin/signout", data={"csrf": csrf_of(page.text)})
        assert out.status_code == 303
        assert (await copy.get("/admin/api/state")).status_code == 401
    restarted = process_on(redis_prefix[1])
    try:
        async with client_for(restarted) as later:
            later.cookies.set("miaw-admin", cookie)
            assert (await later.get("/admin/api/state")).status_code == 401
            assert (await later.get("/admin")).headers["location"] == "/admin/signin"
    finally:
        await restarted.state.runtime.redis.aclose()


async def test_a_deployment_with_another_key_does_not_take_this_ones_cookie(
    processes: list[Starlette],
) -> None:
    other = admin_app(
        redis_url=REDIS_URL,
        state_encryption_key=TEST_KEY + "-another-deployment",
        redis_key_prefix=f"test:{secrets.token_hex(6)}:",
    )
    try:
        async with client_for(processes[0]) as one, client_for(other) as elsewhere:
            assert (await sign_in(one)).status_code == 303  # the same password
            elsewhere.cookies.set("miaw-admin", one.cookies["miaw-admin"])
            assert (await elsewhere.get("/admin/api/state")).status_code == 401
    finally:
        await other.state.runtime.redis.aclose()


async def test_while_redis_is_down_nobody_gets_in_and_the_page_says_why(
    private_redis: PrivateRedis,
) -> None:
    app = process_on(new_prefix(), private_redis.url)
    try:
        async with client_for(app) as browser, client_for(app) as newcomer:
            assert (await sign_in(browser)).status_code == 303
            form = await newcomer.get("/admin/signin")  # (a form needs nothing of Redis)
            await private_redis.stop()
            signing_in = await newcomer.post(
                "/admin/signin",
                data={"password": PASSWORD, "csrf": csrf_of(form.text)},
                headers={"Origin": LOCAL},
            )
            state = await browser.get("/admin/api/state")
            page = await browser.get("/admin")
    finally:
        await app.state.runtime.redis.aclose()
    assert signing_in.status_code == 503 and "Redis" in signing_in.text
    assert not any(c.startswith("miaw-admin=") for c in signing_in.headers.get_list("set-cookie"))
    assert state.status_code == 503 and "does not answer" in state.json()["error"]
    assert page.status_code == 503 and "try again shortly" in page.text
