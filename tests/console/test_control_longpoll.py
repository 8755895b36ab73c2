"""The control API's long-poll: `GET /control/conversations?since=V&waitSeconds=S`.

Over a real loopback socket (tests/servers.py): every request really suspends, so the server runs
while a test re-checks a condition, and a client can really go away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.console.conftest import DEADLINE, Site, agent_messages, running_site

LONG_WAIT = 10.0  # a deadline the prompt answers must come well before


@pytest.fixture
async def sim() -> AsyncIterator[Site]:
    async with running_site(mounted=False) as site:
        yield site


async def until(check: Callable[[], Awaitable[bool]], deadline: float = DEADLINE) -> None:
    """Re-check a server-side condition through socket requests (each one lets the server run)."""
    async with asyncio.timeout(deadline):
        while not await check():
            pass


async def parked(site: Site, count: int = 1) -> None:
    """Until `count` long-polls are waiting in the server."""

    async def check() -> bool:
        return bool((await site.stats())["openLongPolls"] == count)

    await until(check)


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


async def test_every_listing_carries_the_org_version_and_keeps_its_shape(sim: Site) -> None:
    empty = await sim.snapshot()
    assert set(empty) == {"version", "conversations"}
    assert empty["conversations"] == []
    assert isinstance(empty["version"], int)

    guest = await sim.waiting_guest({"_firstName": "Ana"})
    body = await sim.snapshot()
    assert body["version"] > empty["version"]
    [conv] = body["conversations"]
    assert conv["conversationId"] == guest.conversation_id
    assert conv["routingAttributes"] == {"_firstName": "Ana"}
    assert conv["queuePosition"] == 1


async def test_long_poll_answers_at_once_when_the_caller_is_behind(sim: Site) -> None:
    await sim.start()
    version = (await sim.snapshot())["version"]
    assert version > 0
    body, elapsed = await timed(sim.snapshot(since=version - 1, wait=LONG_WAIT))
    assert body["version"] == version
    assert elapsed < 1.0


async def test_long_poll_wakes_promptly_when_the_agent_writes(sim: Site) -> None:
    guest = await sim.waiting_guest()
    response = await sim.control(
        f"conversations/{guest.conversation_id}/agent/join", {"name": "Jane Agent"}
    )
    assert response.status_code == 200, response.text
    version = (await sim.snapshot())["version"]

    poll = asyncio.create_task(timed(sim.snapshot(since=version, wait=LONG_WAIT)))
    await parked(sim)
    assert not poll.done()
    response = await sim.control(
        f"conversations/{guest.conversation_id}/agent/message", {"text": "Hello, I'm Jane."}
    )
    assert response.status_code == 200, response.text

    body, elapsed = await asyncio.wait_for(poll, DEADLINE)
    assert elapsed < LONG_WAIT / 4, "the long-poll did not wake on the change"
    assert body["version"] > version
    [conv] = body["conversations"]
    assert len(agent_messages(conv, "Hello, I'm Jane.")) == 1
    assert (await sim.stats())["openLongPolls"] == 0


async def test_long_poll_wakes_on_a_new_conversation_before_any_event(sim: Site) -> None:
    async with running_site(mounted=False, actor_delay=30.0) as site:
        version = (await site.snapshot())["version"]
        poll = asyncio.create_task(timed(site.snapshot(since=version, wait=LONG_WAIT)))
        await parked(site)
        guest = await site.start()  # the bot would greet only after 30 s

        body, elapsed = await asyncio.wait_for(poll, DEADLINE)
        assert elapsed < LONG_WAIT / 4
        [conv] = body["conversations"]
        assert conv["conversationId"] == guest.conversation_id
        assert conv["entries"] == []
        site.org.reset()  # cancels the pending bot task


async def greeted(site: Site) -> None:
    """A new conversation once the bot greeted: nothing more happens on its own."""
    guest = await site.start()
    await site.until(guest, lambda c: any(e["entryType"] == "Message" for e in c["entries"]))


async def test_long_poll_after_a_reset_sees_a_higher_version(sim: Site) -> None:
    await greeted(sim)
    version = (await sim.snapshot())["version"]
    poll = asyncio.create_task(sim.snapshot(since=version, wait=LONG_WAIT))
    await parked(sim)
    response = await sim.http.post("control/reset")
    assert response.status_code == 204

    body = await asyncio.wait_for(poll, DEADLINE)
    assert body["version"] > version
    assert body["conversations"] == []


async def test_long_poll_returns_the_same_version_when_nothing_happens(sim: Site) -> None:
    await greeted(sim)
    before = await sim.snapshot()
    body, elapsed = await timed(sim.snapshot(since=before["version"], wait=0.3))
    assert body["version"] == before["version"]
    assert body["conversations"] == before["conversations"]
    assert 0.25 <= elapsed < 5.0


async def test_long_poll_with_a_version_from_another_run_answers_at_once(sim: Site) -> None:
    version = (await sim.snapshot())["version"]
    body, elapsed = await timed(sim.snapshot(since=version + 1000, wait=LONG_WAIT))
    assert body["version"] == version
    assert elapsed < 1.0


async def test_since_without_wait_seconds_answers_at_once(sim: Site) -> None:
    version = (await sim.snapshot())["version"]
    response = await sim.http.get("control/conversations", params={"since": version})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == version


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"since": "abc"}, "since"),
        ({"since": "-1"}, "since"),
        ({"since": "1.5"}, "since"),
        ({"since": "1", "waitSeconds": "soon"}, "waitSeconds"),
        ({"since": "1", "waitSeconds": "-1"}, "waitSeconds"),
        ({"since": "1", "waitSeconds": "25.5"}, "waitSeconds"),
        ({"since": "1", "waitSeconds": "nan"}, "waitSeconds"),
        ({"waitSeconds": "inf"}, "waitSeconds"),
    ],
)
async def test_bad_long_poll_params_are_rejected_naming_the_param(
    sim: Site, params: dict[str, str], named: str
) -> None:
    response = await sim.http.get("control/conversations", params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["errorCode"] == "BAD_REQUEST"
    assert f'"{named}"' in body["message"], body


async def test_a_long_poll_whose_client_goes_away_ends_at_once(sim: Site) -> None:
    version = (await sim.snapshot())["version"]
    async with httpx.AsyncClient(base_url=sim.root + "/", timeout=30) as leaving:
        poll = asyncio.create_task(
            leaving.get("control/conversations", params={"since": version, "waitSeconds": 20})
        )
        await parked(sim)
        poll.cancel()  # drops the connection mid-request
        with pytest.raises(asyncio.CancelledError):
            await poll
    started = time.monotonic()
    await parked(sim, 0)
    assert time.monotonic() - started < 5.0, "the server kept waiting for a client that left"
