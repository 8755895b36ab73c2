"""The control API's long-poll: `GET /control/conversations?since=V&waitSeconds=S`.

Over a real loopback socket (tests/servers.py): every request really suspends, so the server runs
while a test re-checks a condition, and a client can really go away. Real sockets run on real time,
so nothing here measures it: what answered a long-poll is shown by order (it was parked before the
change; an earlier poll with the same wait is still parked) and by what its body carries.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.console.conftest import DEADLINE, Site, agent_messages, running_site

# The longest wait the API accepts, and longer than any safety DEADLINE here: a long-poll that
# answers within DEADLINE did not run out its wait.
LONG_WAIT = 25.0


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


async def parked_poll(site: Site, since: int) -> asyncio.Task[dict[str, Any]]:
    """A long-poll for `since` with LONG_WAIT, once the server holds it (and only it)."""
    poll = asyncio.create_task(site.snapshot(since=since, wait=LONG_WAIT))
    await parked(site)
    assert not poll.done()
    return poll


async def answered_while_an_earlier_poll_waits(site: Site, since: int) -> dict[str, Any]:
    """The answer to a long-poll for `since`, asked while an up-to-date long-poll with the same
    wait, parked first, keeps waiting. The witness proves the answer came at once: nothing changed
    (a change would have woken it too) and no wait ran out (its own would have run out first)."""
    version = (await site.snapshot())["version"]
    witness = await parked_poll(site, version)
    async with asyncio.timeout(DEADLINE):
        body = await site.snapshot(since=since, wait=LONG_WAIT)
    assert not witness.done()
    assert (await site.stats())["openLongPolls"] == 1
    witness.cancel()
    await asyncio.gather(witness, return_exceptions=True)
    return body


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
    body = await answered_while_an_earlier_poll_waits(sim, since=version - 1)
    assert body["version"] == version


async def test_long_poll_wakes_when_the_agent_writes(sim: Site) -> None:
    guest = await sim.waiting_guest()
    response = await sim.control(
        f"conversations/{guest.conversation_id}/agent/join", {"name": "Jane Agent"}
    )
    assert response.status_code == 200, response.text
    version = (await sim.snapshot())["version"]

    poll = await parked_poll(sim, version)
    response = await sim.control(
        f"conversations/{guest.conversation_id}/agent/message", {"text": "Hello, I'm Jane."}
    )
    assert response.status_code == 200, response.text

    body = await asyncio.wait_for(poll, DEADLINE)  # well before its LONG_WAIT: the change woke it
    assert body["version"] > version
    [conv] = body["conversations"]
    assert len(agent_messages(conv, "Hello, I'm Jane.")) == 1
    assert (await sim.stats())["openLongPolls"] == 0


async def test_long_poll_wakes_on_a_new_conversation_before_any_event(sim: Site) -> None:
    async with running_site(mounted=False, actor_delay=30.0) as site:
        version = (await site.snapshot())["version"]
        poll = await parked_poll(site, version)
        guest = await site.start()  # the bot would greet only after 30 s

        body = await asyncio.wait_for(poll, DEADLINE)  # well before its LONG_WAIT
        assert body["version"] > version
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
    poll = await parked_poll(sim, version)
    response = await sim.http.post("control/reset")
    assert response.status_code == 204

    body = await asyncio.wait_for(poll, DEADLINE)
    assert body["version"] > version
    assert body["conversations"] == []


async def test_long_poll_returns_the_same_version_when_nothing_happens(sim: Site) -> None:
    await greeted(sim)
    before = await sim.snapshot()
    poll = asyncio.create_task(sim.snapshot(since=before["version"], wait=1.0))
    await parked(sim)  # it waited rather than answering at once ...

    body = await asyncio.wait_for(poll, DEADLINE)  # ... and then answered on its own
    assert body["version"] == before["version"]
    assert body["conversations"] == before["conversations"]
    assert (await sim.stats())["openLongPolls"] == 0


async def test_long_poll_with_a_version_from_another_run_answers_at_once(sim: Site) -> None:
    version = (await sim.snapshot())["version"]
    body = await answered_while_an_earlier_poll_waits(sim, since=version + 1000)
    assert body["version"] == version


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
    witness = await parked_poll(sim, version)
    async with httpx.AsyncClient(base_url=sim.root + "/", timeout=30) as leaving:
        poll = asyncio.create_task(
            leaving.get(
                "control/conversations", params={"since": version, "waitSeconds": LONG_WAIT}
            )
        )
        await parked(sim, 2)
        poll.cancel()  # drops the connection mid-request
        with pytest.raises(asyncio.CancelledError):
            await poll
    # The server let go of the poll whose client left, while the witness, parked first with the
    # same wait and still connected, keeps waiting: nothing changed and no wait ran out.
    await parked(sim, 1)
    assert not witness.done()
    witness.cancel()
    await asyncio.gather(witness, return_exceptions=True)
