"""The abuse limits' rules and their counters, in memory and in Redis (same contract), on a clock
the test moves."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from starlette.requests import Request

from app.config import ConfigError, load_settings
from app.limits import (
    PRUNE_AT,
    Counters,
    LimitReached,
    Limits,
    LimitSettings,
    MemoryCounters,
    Rate,
    client_address,
)
from app.state.counters import RedisCounters
from tests.redis_support import redis_prefix

__all__ = ["redis_prefix"]

T0 = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def counters(
    request: pytest.FixtureRequest, redis_prefix: tuple[Redis, str]
) -> AsyncIterator[Counters]:
    if request.param == "memory":
        yield MemoryCounters()
    else:
        redis, prefix = redis_prefix
        yield RedisCounters(redis, prefix)


def rate(text: str) -> Rate:
    parsed = Rate.parse(text)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("text", "count", "seconds", "described"),
    [
        ("10/10m", 10, 600, "10 per 10 minutes"),
        ("30/h", 30, 3600, "30 per hour"),
        (" 5 / 30s ", 5, 30, "5 per 30 seconds"),
        ("1/d", 1, 86400, "1 per day"),
    ],
)
def test_rates_read_as_calls_per_period(
    text: str, count: int, seconds: float, described: str
) -> None:
    assert rate(text) == Rate(count, seconds, described)


def test_off_is_no_limit_and_malformed_rates_are_refused_naming_the_variable() -> None:
    assert Rate.parse("OFF") is None
    for bad in ["10", "10/", "0/m", "10/0m", "-1/m", "10/10x", "ten/m", "10 per minute"]:
        with pytest.raises(ValueError, match="rate such as"):
            Rate.parse(bad)
    with pytest.raises(ConfigError, match=r"RATE_LIMIT_PER_IP: .*rate such as"):
        load_settings(_env_file=None, rate_limit_per_ip="100")


async def test_a_rate_allows_its_count_at_once_then_one_per_interval(counters: Counters) -> None:
    per_minute = rate("3/m")
    assert [await counters.take("k", per_minute, T0) for _ in range(3)] == [0, 0, 0]
    assert await counters.take("k", per_minute, T0) == pytest.approx(20)
    assert await counters.take("k", per_minute, T0 + 5) == pytest.approx(15)  # refusals are free
    assert await counters.take("other", per_minute, T0) == 0  # each key its own budget
    assert await counters.take("k", per_minute, T0 + 20) == 0
    assert await counters.take("k", per_minute, T0 + 20) == pytest.approx(20)
    # A full minute later the whole budget is back.
    assert [await counters.take("k", per_minute, T0 + 100) for _ in range(3)] == [0, 0, 0]
    assert await counters.take("k", per_minute, T0 + 100) > 0


async def test_a_capped_set_refuses_past_its_cap_until_one_goes_or_expires(
    counters: Counters,
) -> None:
    assert await counters.hold("s", "a", T0 + 100, 2, T0)
    assert await counters.hold("s", "b", T0 + 50, 2, T0)
    assert not await counters.hold("s", "c", T0 + 100, 2, T0)
    assert await counters.hold("s", "a", T0 + 200, 2, T0)  # a member held already extends
    assert await counters.hold("t", "c", T0 + 100, 2, T0)  # each scope its own cap
    await counters.let_go("s", ["a", "unknown"])
    assert await counters.hold("s", "c", T0 + 100, 2, T0)
    assert not await counters.hold("s", "d", T0 + 100, 2, T0 + 49)
    assert await counters.hold("s", "d", T0 + 100, 2, T0 + 50)  # "b" expired


async def test_redis_keys_expire_with_what_they_count(redis_prefix: tuple[Redis, str]) -> None:
    redis, prefix = redis_prefix
    counters = RedisCounters(redis, prefix)
    now = time.time()  # Redis expires keys on its own clock
    await counters.take("k", rate("2/m"), now)
    await counters.hold("s", "a", now + 100, 5, now)
    await counters.hold("s", "b", now + 300, 5, now)
    assert 0 < await redis.pttl(f"{prefix}limit:k") <= 30_000
    assert 299_000 < await redis.pttl(f"{prefix}limit:s") <= 300_000


def request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def test_the_client_address_is_the_peer_unless_proxies_are_trusted() -> None:
    spoofed = request("10.0.0.9", "6.6.6.6, 1.2.3.4")
    assert client_address(spoofed, 0) == "10.0.0.9"
    # Heroku's router appends the address it saw: the last entry; the client's own are ignored.
    assert client_address(spoofed, 1) == "1.2.3.4"
    assert client_address(request("10.0.0.9", "6.6.6.6", "1.2.3.4, 5.5.5.5"), 2) == "1.2.3.4"
    # Fewer entries than trusted proxies: the header did not come through them.
    assert client_address(request("10.0.0.9", "1.2.3.4"), 2) == "10.0.0.9"
    assert client_address(request("10.0.0.9"), 1) == "10.0.0.9"
    assert client_address(None, 1) is None


def limits(clock: Clock, **overrides: object) -> Limits:
    values: dict[str, object] = {
        "per_user": rate("2/10m"),
        "per_ip": rate("3/h"),
        "open_per_user": 2,
        "max_sessions": 2,
        **overrides,
    }
    return Limits(MemoryCounters(), LimitSettings(**values), clock)  # type: ignore[arg-type]


async def test_a_user_is_limited_per_user_and_a_call_without_one_per_address() -> None:
    clock = Clock()
    rules = limits(clock)
    peer = request("1.2.3.4")
    for _ in range(2):
        await rules.admit("generate_guest_access_token", "user-a", peer)
    with pytest.raises(LimitReached) as refused:
        await rules.admit("generate_guest_access_token", "user-a", peer)
    assert str(refused.value) == (
        "generate_guest_access_token is limited to 2 per 10 minutes for each user "
        "(RATE_LIMIT_PER_USER); try again in 5 minutes."
    )
    assert refused.value.limit == "RATE_LIMIT_PER_USER"
    await rules.admit("create_conversation", "user-a", peer)  # another tool, its own budget
    await rules.admit("generate_guest_access_token", "user-b", peer)  # another user
    # Without a user: the address's budget, untouched by the users' calls above.
    for _ in range(3):
        await rules.admit("generate_guest_access_token", None, peer)
    with pytest.raises(LimitReached, match=re.escape("3 per hour for each address")) as by_ip:
        await rules.admit("generate_guest_access_token", None, peer)
    assert "(RATE_LIMIT_PER_IP); try again in 20 minutes." in str(by_ip.value)
    await rules.admit("generate_guest_access_token", None, request("1.2.3.5"))
    clock.now += 299
    with pytest.raises(LimitReached, match="try again in 1 s"):
        await rules.admit("generate_guest_access_token", "user-a", peer)
    clock.now += 1
    await rules.admit("generate_guest_access_token", "user-a", peer)
    # stdio: no request, no user: the one local user is not limited.
    for _ in range(10):
        await rules.admit("generate_guest_access_token", None, None)


async def test_off_turns_a_rate_off() -> None:
    rules = limits(Clock(), per_user=None, per_ip=None)
    for _ in range(50):
        await rules.admit("create_conversation", "user-a", request("1.2.3.4"))
        await rules.admit("create_conversation", None, request("1.2.3.4"))


async def test_open_sessions_and_conversations_are_capped_and_freed() -> None:
    clock = Clock()
    rules = limits(clock)
    await rules.open_session("h1", T0 + 100)
    await rules.open_session("h2", T0 + 1000)
    with pytest.raises(LimitReached, match=r"limit of 2 concurrent chats \(MAX_SESSIONS\)"):
        await rules.open_session("h3", T0 + 100)
    await rules.session_over("h2")
    await rules.open_session("h3", T0 + 100)
    clock.now = T0 + 100  # h1 and h3 expired
    await rules.open_session("h4", T0 + 200)
    await rules.open_session("h5", T0 + 200)

    # A user's open conversations count across their sessions; without a user, per session.
    await rules.open_conversation("user-a", "h4", "C1", T0 + 500)
    await rules.open_conversation("user-a", "h5", "C2", T0 + 500)
    with pytest.raises(LimitReached) as refused:
        await rules.open_conversation("user-a", "h5", "C3", T0 + 500)
    assert str(refused.value) == (
        "This user already has 2 open conversations (MAX_OPEN_CONVERSATIONS_PER_USER); close "
        "one with close_conversation, or wait until one ends, before opening another."
    )
    await rules.open_conversation("user-b", "h6", "C3", T0 + 500)
    await rules.conversations_over("user-a", "h4", ["c1"])  # ids in any letter case
    await rules.open_conversation("user-a", "h5", "C3", T0 + 500)
    await rules.open_conversation(None, "h7", "C4", T0 + 500)
    await rules.open_conversation(None, "h7", "C5", T0 + 500)
    with pytest.raises(LimitReached, match="This session already has 2 open conversations"):
        await rules.open_conversation(None, "h7", "C6", T0 + 500)
    await rules.open_conversation(None, "h8", "C6", T0 + 500)


async def test_memory_counters_forget_scopes_that_expired_and_keep_live_ones() -> None:
    counters = MemoryCounters()
    for n in range(PRUNE_AT):
        await counters.hold(f"gone-{n}", "m", T0 + 1, 1, T0)
    assert await counters.hold("live", "m", T0 + 100, 1, T0)
    # Later, past the sweep threshold: the expired users' scopes go, the live one still caps.
    assert not await counters.hold("live", "other", T0 + 100, 1, T0 + 50)
    assert len(counters._held) <= 2
    assert await counters.hold("gone-1", "m", T0 + 100, 1, T0 + 50)
