"""The delivery engine on its own, against the simulator."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from mcp.client import Client

from app.delivery import DeliveryEngine, DeliveryOptions, GuestFeed
from app.main import build_app
from app.scrt import ReconnectPolicy, RetryPolicy, ScrtClient, ScrtConfig, ScrtEvent
from app.scrt.events import parse_event
from app.scrt.sse import SseFrame
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.markers import not_under_mutmut
from tests.mcp.conftest import call, read_until, settings_for
from tests.servers import serve


@contextlib.asynccontextmanager
async def chat_read_once(
    event_hooks: dict[str, list[Any]],
) -> AsyncIterator[tuple[Client, dict[str, str], httpx.AsyncClient]]:
    """The app (its Salesforce client with `event_hooks`) and a simulator, and a chat whose
    first entries have been read: the MCP client, the chat's ids, the simulator's control API."""
    sim = build_simulator(SimulatorOptions(rate_limits=False))
    async with (
        serve(sim) as sim_url,
        httpx.AsyncClient(event_hooks=event_hooks) as http,
        httpx.AsyncClient(base_url=sim_url) as control,
    ):
        app = build_app(settings_for(sim_url), http=http)
        async with serve(app, lifespan="on") as base, Client(base + "/mcp") as client:
            session = await call(client, "generate_guest_access_token", {})
            created = await call(client, "create_conversation", session)
            ids = {**session, "conversationId": created["conversationId"]}
            await read_until(client, ids, lambda entries, _: bool(entries))
            yield client, ids, control


@contextlib.asynccontextmanager
async def engine_on_simulator(
    watch: Any, options: DeliveryOptions
) -> AsyncIterator[tuple[DeliveryEngine, GuestFeed, str, httpx.AsyncClient]]:
    """An engine with `options` (its Salesforce client trying each request once, every response
    shown to `watch`) on a simulator: a guest's feed, a conversation, the control API."""
    sim = build_simulator(SimulatorOptions(rate_limits=False))
    async with (
        serve(sim) as base,
        httpx.AsyncClient(event_hooks={"response": [watch]}) as http,
        httpx.AsyncClient(base_url=base) as control,
    ):
        config = ScrtConfig(
            scrt_url=base, org_id=DEFAULT_ORG_ID, es_developer_name=DEFAULT_DEPLOYMENT
        )
        client = ScrtClient(http, config, retry=RetryPolicy(max_attempts=1))
        engine = DeliveryEngine(client, options)
        token = await client.guest_token()
        feed = await engine.feed("h", token.bearer, token.last_event_id, time.time() + 600)
        yield engine, feed, await client.create_conversation(token), control


async def test_feeds_of_expired_sessions_are_closed_with_their_streams() -> None:
    sim = build_simulator(SimulatorOptions(rate_limits=False))
    async with serve(sim) as base, httpx.AsyncClient() as http:
        client = ScrtClient(
            http,
            ScrtConfig(scrt_url=base, org_id=DEFAULT_ORG_ID, es_developer_name=DEFAULT_DEPLOYMENT),
        )
        engine = DeliveryEngine(client, DeliveryOptions(poll_interval=0.1))
        old, new = await client.guest_token(), await client.guest_token()
        await engine.feed("old", old.bearer, old.last_event_id, expires_at=time.time() - 1)
        assert engine.feed_count == 1
        await engine.feed("new", new.bearer, new.last_event_id, expires_at=time.time() + 60)
        assert engine.feed_count == 1  # the expired one was closed on the way
        await engine.aclose()
        assert engine.feed_count == 0


async def test_after_the_stream_reopens_the_gap_is_fetched_without_waiting_for_a_reader() -> None:
    """docs/delivery.md, step 5: a catch-up fetches each unsynced conversation after a reopen, so
    a later read answers from a synced log."""
    entries_fetched = asyncio.Event()

    async def watch(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path.endswith("/entries"):
            entries_fetched.set()

    async with chat_read_once({"request": [watch]}) as (_, _, control):
        entries_fetched.clear()
        cut = await control.post("/control/faults", json={"cutStreams": True})
        assert cut.status_code == 200 and cut.json()["cut"] == 1
        async with asyncio.timeout(30):  # a safety deadline: the fetch is the event
            await entries_fetched.wait()


async def test_a_catch_up_that_fails_is_retried_until_it_gets_through() -> None:
    """A catch-up fetch that fails (Salesforce answers 503 to each of the client's 4 attempts) is
    tried again after a pause, without any reader asking, until the gap is fetched."""
    answered: list[int] = []
    fifth = asyncio.Event()

    async def watch(response: httpx.Response) -> None:
        if response.request.method == "GET" and response.request.url.path.endswith("/entries"):
            answered.append(response.status_code)
            if len(answered) == 5:
                fifth.set()

    async with chat_read_once({"response": [watch]}) as (_, _, control):
        answered.clear()
        fault = {
            "path": "/iamessage/api/v2/conversation/{conversationId}/entries",
            "status": 503,
            "count": 4,
        }
        assert (await control.post("/control/faults", json=fault)).status_code == 201
        cut = await control.post("/control/faults", json={"cutStreams": True})
        assert cut.status_code == 200 and cut.json()["cut"] == 1
        async with asyncio.timeout(30):  # a safety deadline: the fifth answer is the event
            await fifth.wait()
    assert answered == [503, 503, 503, 503, 200]


async def test_a_failed_first_fetch_is_not_repeated_before_every_read() -> None:
    """A conversation whose first fetch failed is retried with back-off (by the catch-up: once
    at once, then after its pauses), not by every read that follows: each such read used to
    wait for another failing fetch."""
    entries_requests: list[int] = []
    retried = asyncio.Event()

    async def watch(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/entries"):
            entries_requests.append(response.status_code)
            if len(entries_requests) == 2:
                retried.set()

    # A long back-off, so no retry falls inside the test whatever the machine's speed.
    slow = ReconnectPolicy(base_delay=600, max_delay=600)
    options = DeliveryOptions(poll_interval=0.05, catch_up_retry=slow)
    async with engine_on_simulator(watch, options) as (engine, feed, conversation_id, control):
        fault = {
            "path": "/iamessage/api/v2/conversation/{conversationId}/entries",
            "status": 503,
            "count": None,
        }
        assert (await control.post("/control/faults", json=fault)).status_code == 201
        await engine.read_feed(feed, conversation_id, 0, 0.2)  # its fetch fails
        async with asyncio.timeout(30):  # the catch-up's first retry is the event
            await retried.wait()
        for _ in range(3):
            await engine.read_feed(feed, conversation_id, 0, 0.2)
        await engine.aclose()
    assert entries_requests == [503, 503]


async def test_a_catch_up_sets_aside_a_conversation_salesforce_refuses_for_good() -> None:
    """A 404 during a catch-up is not asked again and again while the stream is up: the catch-up
    sets the conversation aside and the reader reports the refusal."""
    answered: list[int] = []
    first = asyncio.Event()

    async def watch(response: httpx.Response) -> None:
        if response.request.method == "GET" and response.request.url.path.endswith("/entries"):
            answered.append(response.status_code)
            first.set()

    async with chat_read_once({"response": [watch]}) as (client, ids, control):
        answered.clear()
        first.clear()
        fault = {
            "path": "/iamessage/api/v2/conversation/{conversationId}/entries",
            "status": 404,
            "count": None,
        }
        assert (await control.post("/control/faults", json=fault)).status_code == 201
        cut = await control.post("/control/faults", json={"cutStreams": True})
        assert cut.status_code == 200 and cut.json()["cut"] == 1
        async with asyncio.timeout(30):  # a safety deadline: the catch-up's 404 is the event
            await first.wait()
        read = await client.call_tool("list_conversation_entries", ids)
    assert read.is_error
    assert answered == [404, 404]  # the catch-up's one request, then the reader's


class OneEventStream:
    """An event stream that delivers one event, then waits (`waiting` set) for good."""

    def __init__(self, event: ScrtEvent) -> None:
        self._event: ScrtEvent | None = event
        self.waiting = asyncio.Event()

    def __aiter__(self) -> OneEventStream:
        return self

    async def __anext__(self) -> ScrtEvent:
        if self._event is not None:
            event, self._event = self._event, None
            return event
        self.waiting.set()
        await asyncio.Event().wait()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        pass


class OneEventClient:
    def __init__(self, stream: OneEventStream) -> None:
        self.stream = stream

    def event_stream(self, token: str, **_: Any) -> OneEventStream:
        return self.stream


@not_under_mutmut
async def test_a_feed_keeps_an_events_entry_not_the_event_while_it_waits() -> None:
    """Every guest session's feed waits on its stream most of its life: the last event (with its
    parsed JSON) is not held meanwhile; its entry is in the conversation's log."""
    data = (
        '{"conversationId": "c1", "conversationEntry": {"identifier": "e1", "entryType": '
        '"Message", "entryPayload": "{}", "sender": {"role": "Agent"}}}'
    )
    event = parse_event(SseFrame(event="CONVERSATION_MESSAGE", data=data))
    delivered = weakref.ref(event)
    stream = OneEventStream(event)
    del event
    feed = GuestFeed(OneEventClient(stream), "tok", None, DeliveryOptions())  # type: ignore[arg-type]
    try:
        async with asyncio.timeout(30):  # safety deadline
            await stream.waiting.wait()
        gc.collect()

        assert feed.log("c1").has("e1")
        assert delivered() is None
    finally:
        await feed.aclose()


@dataclass(frozen=True)
class CountedPauses(ReconnectPolicy):
    """A back-off that records which failure in a row each pause is for, and pauses not at all."""

    asked: list[int] = field(default_factory=list)

    def delay(self, failures: int) -> float:
        self.asked.append(failures)
        return 0.0


async def test_catch_up_pauses_follow_the_failures_in_a_row_and_start_over_after_a_success() -> (
    None
):
    """docs/delivery.md step 5: after each failed catch-up round a pause for the number of
    failures in a row (so it doubles), none after a round that got through, and the count starts
    over after a success. Each failed fetch also sets the readers' back-off by the same count."""
    fetched = asyncio.Event()

    async def watch(response: httpx.Response) -> None:
        if response.request.url.path.endswith("/entries") and response.status_code == 200:
            fetched.set()

    pauses = CountedPauses()
    options = DeliveryOptions(catch_up_retry=pauses)
    async with engine_on_simulator(watch, options) as (engine, feed, conversation_id, control):
        await engine.read_feed(feed, conversation_id, 0, 0)  # the log exists and is synced
        target = await feed.conversation(conversation_id)
        for n, failing in enumerate((3, 1)):
            # A message that reaches the log live: the stream is open, so the cut below hits it.
            said = f"still there? {n}"
            bot = await control.post(
                f"/control/conversations/{conversation_id}/bot/message", json={"text": said}
            )
            assert bot.status_code == 200
            async with asyncio.timeout(30):  # a safety deadline: the append is the event
                while not any(e.text == said for e in target.entries):
                    await target.wait_for_append(5.0)
            fetched.clear()
            fault = {
                "path": "/iamessage/api/v2/conversation/{conversationId}/entries",
                "status": 503,
                "count": failing,
            }
            assert (await control.post("/control/faults", json=fault)).status_code == 201
            cut = await control.post("/control/faults", json={"cutStreams": True})
            assert cut.status_code == 200 and cut.json()["cut"] == 1
            async with asyncio.timeout(30):  # a safety deadline: the fetch that gets through
                await fetched.wait()
        await engine.aclose()
    # (the readers' back-off, the catch-up's pause) per failed round: 1, 2, 3; then 1 again.
    assert pauses.asked == [1, 1, 2, 2, 3, 3, 1, 1]
