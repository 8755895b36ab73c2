"""Shared state on Redis: two servers (separate runtimes, each its own process id, connections and
event-stream ownership) share one Redis and the simulator; every call goes to the other server in
turn, as Heroku's router would send them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from mcp.client import Client
from redis.asyncio import Redis
from starlette.applications import Starlette

from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from app.tools import STATE_UNAVAILABLE
from tests.mcp.conftest import ToolFailed, call, settings_for
from tests.mcp.test_handoff_flow import has, messages
from tests.redis_support import (
    REDIS_URL,
    TEST_KEY,
    PrivateRedis,
    dump,
    private_redis,
    redis_prefix,
)
from tests.servers import serve

__all__ = ["private_redis", "redis_prefix"]


@dataclass
class Server:
    app: Starlette
    url: str
    """The MCP endpoint."""
    running: contextlib.AbstractAsyncContextManager[str]

    @property
    def event_streams(self) -> int:
        return int(self.app.state.runtime.delivery.feed_count)

    async def stop(self) -> None:
        """As on SIGTERM: requests drain, the lifespan hands the streams over."""
        await self.running.__aexit__(None, None, None)


@dataclass
class SharedStack:
    sim_url: str
    control: httpx.AsyncClient
    prefix: str
    redis: Redis
    servers: list[Server] = field(default_factory=list)

    async def start_server(self, **overrides: Any) -> Server:
        app = build_app(
            settings_for(
                self.sim_url,
                **{"redis_url": REDIS_URL, **overrides},
                state_encryption_key=TEST_KEY,
                redis_key_prefix=self.prefix,
                log_level="DEBUG",
            )
        )
        running = serve(app, lifespan="on")
        url = await running.__aenter__()
        server = Server(app, url + "/mcp", running)
        self.servers.append(server)
        return server

    async def agent(self, conversation_id: str, action: str, body: Any = None) -> Any:
        response = await self.control.post(
            f"/control/conversations/{conversation_id}/agent/{action}", json=body
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def stream_opens(self) -> int:
        """How often Salesforce's event stream was opened (by anyone)."""
        requests = (await self.control.get("/control/stats")).json()["requests"]
        return sum(n for key, n in requests.items() if key.startswith("GET /eventrouter"))

    def event_streams(self) -> int:
        return sum(server.event_streams for server in self.servers)


@pytest.fixture
async def shared(redis_prefix: tuple[Redis, str]) -> AsyncIterator[SharedStack]:
    redis, prefix = redis_prefix
    async with contextlib.AsyncExitStack() as exits:
        sim_url = await exits.enter_async_context(
            serve(build_simulator(SimulatorOptions(rate_limits=False)))
        )
        control = await exits.enter_async_context(httpx.AsyncClient(base_url=sim_url))
        stack = SharedStack(sim_url, control, prefix, redis)
        try:
            yield stack
        finally:
            for server in stack.servers:
                with contextlib.suppress(Exception):
                    await server.stop()


class RoundRobin:
    """MCP clients of several servers; each call goes to the next one."""

    def __init__(self, clients: list[Client]) -> None:
        self._next = itertools.cycle(clients)

    async def __call__(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        return await call(next(self._next), name, args)


async def read_until(
    tool: Callable[..., Any],
    args: dict[str, Any],
    done: Callable[[list[dict[str, Any]], dict[str, Any]], bool],
    seen: list[dict[str, Any]],
) -> dict[str, Any]:
    """Read (the session's own cursor unless `args` has one) until `done`; returns the last page."""
    for _ in range(40):  # bounds a failing test; each read waits for an event
        page = await tool("list_conversation_entries", {**args, "waitSeconds": 5})
        seen.extend(page["entries"])
        if "cursor" in args:
            args["cursor"] = page["cursor"]
        if done(seen, page["roleInfo"]):
            return dict(page)
    raise AssertionError(f"never happened; saw {seen}")


Agent = Callable[[str, str, Any], Awaitable[Any]]


async def alternating_handoff(urls: list[str], agent: Agent) -> int:
    """A whole handoff with each call on the next server in turn: bot, transfer, an agent's
    burst, user replies (one keyed), widget reads with their own cursor, the agent ends. Checks
    every bot and agent message arrives once, in order, for the model and the widget."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url)) for url in urls]
        tool = RoundRobin(clients)
        ids = await start_chat(tool)
        cid = ids["conversationId"]
        model: list[dict[str, Any]] = []
        widget: list[dict[str, Any]] = []
        widget_args: dict[str, Any] = {**ids, "cursor": "0"}

        await read_until(tool, ids, lambda e, _: bool(messages(e, "Chatbot")), model)
        await tool("send_message", {**ids, "text": "I need a human, please"})
        await read_until(tool, ids, lambda e, _: has(e, "queue_position"), model)
        await agent(cid, "join", {"name": "Jane Agent"})
        await read_until(tool, ids, lambda _, i: i["isLiveAgent"], model)
        # The widget takes over with its own cursor, from the start, on alternating servers.
        for n in (1, 2, 3):
            await agent(cid, "message", {"text": f"agent says {n}"})
        await read_until(
            tool, widget_args, lambda e, _: "agent says 3" in messages(e, "Agent"), widget
        )
        await tool("send_message", {**ids, "text": "thanks, that helps", "clientMessageId": "m-1"})
        await agent(cid, "message", {"text": "agent says 4"})
        await read_until(
            tool, widget_args, lambda e, _: "agent says 4" in messages(e, "Agent"), widget
        )
        await agent(cid, "end", None)
        info = await read_until(tool, widget_args, lambda _, i: i["conversationEnded"], widget)
        assert info["roleInfo"]["endedByAgent"]

    for seen in (model, widget):
        ids_seen = [e["id"] for e in seen]
        assert len(ids_seen) == len(set(ids_seen)), "an entry was delivered twice"
        timestamps = [e["timestamp"] for e in seen]
        assert timestamps == sorted(timestamps)
    assert messages(model, "Chatbot") == [
        "Hi, I'm Agentforce. How can I help you today?",
        "Sure. I'm transferring you to a human agent now.",
    ]
    assert messages(widget, "Chatbot") == messages(model, "Chatbot")
    assert messages(widget, "Agent") == [f"agent says {n}" for n in (1, 2, 3, 4)]
    assert messages(widget, "EndUser") == ["I need a human, please", "thanks, that helps"]


async def test_a_whole_handoff_with_every_call_on_the_other_server(shared: SharedStack) -> None:
    await shared.start_server()
    await shared.start_server()
    await alternating_handoff([server.url for server in shared.servers], shared.agent)
    # Exactly one Salesforce event stream for the session, across both servers: opened once,
    # never fought over.
    assert shared.event_streams() == 1
    assert await shared.stream_opens() == 1


async def start_chat(tool: Callable[..., Any]) -> dict[str, str]:
    session = await tool("generate_guest_access_token", {})
    created = await tool("create_conversation", {"sessionId": session["sessionId"]})
    return {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}


async def test_a_restarted_server_continues_the_same_chat_and_cursor(shared: SharedStack) -> None:
    first = await shared.start_server()
    seen: list[dict[str, Any]] = []
    async with Client(first.url) as client:
        tool = RoundRobin([client])
        ids = await start_chat(tool)
        await read_until(tool, ids, lambda e, _: bool(messages(e, "Chatbot")), seen)
        await tool("send_message", {**ids, "text": "a person, please"})
        await read_until(tool, ids, lambda e, _: has(e, "queue_position"), seen)
        await shared.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
        page = await read_until(tool, ids, lambda _, i: i["isLiveAgent"], seen)
    widget_args: dict[str, Any] = {**ids, "cursor": page["cursor"]}
    await first.stop()
    # While no server runs, the agent writes; then a new server starts with nothing in memory.
    await shared.agent(ids["conversationId"], "message", {"text": "while you were away"})
    second = await shared.start_server()
    async with Client(second.url) as client:
        tool = RoundRobin([client])
        model: list[dict[str, Any]] = []
        widget: list[dict[str, Any]] = []
        await read_until(tool, ids, lambda e, _: bool(messages(e, "Agent")), model)
        await read_until(tool, widget_args, lambda e, _: bool(messages(e, "Agent")), widget)
        await shared.agent(ids["conversationId"], "message", {"text": "and now"})
        await read_until(tool, ids, lambda e, _: "and now" in messages(e, "Agent"), model)
    # The same sessionId works, and both cursors continue exactly where they stopped.
    assert messages(model, "Agent") == ["while you were away", "and now"]
    assert [e["kind"] for e in widget] == ["message"]
    assert messages(widget, "Agent") == ["while you were away"]
    assert shared.event_streams() == 1


async def test_redis_holds_no_token_handle_or_message_in_clear(shared: SharedStack) -> None:
    server = await shared.start_server()
    async with Client(server.url) as client:
        tool = RoundRobin([client])
        ids = await start_chat(tool)
        seen: list[dict[str, Any]] = []
        await read_until(tool, ids, lambda e, _: bool(messages(e, "Chatbot")), seen)
        await tool("send_message", {**ids, "text": "my secret order number 5551234"})
        await read_until(tool, ids, lambda e, _: bool(messages(e, "EndUser")), seen)
        record = await server.app.state.runtime.store.get(ids["sessionId"])
        token = record.access_token.get_secret_value()
    raw = await dump(shared.redis, shared.prefix)
    assert b":log:" in raw and b":session:" in raw  # the chat is in Redis...
    for secret in (token, ids["sessionId"], "5551234", "Agentforce"):
        assert secret.encode() not in raw  # ...sealed


@pytest.mark.parametrize("outage", [0.0, 3.0], ids=["a moment", "3 s, past the heartbeat"])
async def test_redis_down_and_back_clear_errors_health_and_nothing_lost(
    shared: SharedStack, private_redis: PrivateRedis, outage: float
) -> None:
    server = await shared.start_server(redis_url=private_redis.url)
    other = await shared.start_server(redis_url=private_redis.url)
    health_url = server.url.removesuffix("/mcp") + "/health"
    async with (
        Client(server.url) as client,
        Client(other.url) as other_client,
        httpx.AsyncClient() as http,
    ):
        tool = RoundRobin([client])
        ids = await start_chat(tool)
        cid = ids["conversationId"]
        seen: list[dict[str, Any]] = []
        await read_until(tool, ids, lambda e, _: bool(messages(e, "Chatbot")), seen)
        await tool("send_message", {**ids, "text": "a person, please"})
        await read_until(tool, ids, lambda e, _: has(e, "queue_position"), seen)
        await shared.agent(cid, "join", {"name": "Jane Agent"})
        await shared.agent(cid, "message", {"text": "before"})
        await read_until(tool, ids, lambda e, _: "before" in messages(e, "Agent"), seen)
        assert (await http.get(health_url)).status_code == 200

        await private_redis.stop()
        loop = asyncio.get_running_loop()
        down_at = loop.time()
        await shared.agent(cid, "message", {"text": "during"})  # Salesforce goes on meanwhile
        # Redis stays down for `outage` seconds; every call meanwhile is the same clear error.
        failures = 0
        while failures == 0 or loop.time() - down_at < outage:
            with pytest.raises(ToolFailed) as failed:
                await tool("list_conversation_entries", {**ids, "waitSeconds": 1})
            assert str(failed.value).endswith(STATE_UNAVAILABLE)
            health = await http.get(health_url)
            assert health.status_code == 503
            assert "Redis" in health.json()["problem"]
            failures += 1

        await private_redis.start()
        if outage >= 3.0:
            # Past its TTL, the holder's heartbeat expired in Redis meanwhile: it no longer holds
            # the session on record. The calls now go to the other server, which never did.
            tool = RoundRobin([other_client])
        assert (await http.get(health_url)).status_code == 200
        await shared.agent(cid, "message", {"text": "after"})
        await read_until(tool, ids, lambda e, _: "after" in messages(e, "Agent"), seen)
    assert messages(seen, "Agent") == ["before", "during", "after"]
    entry_ids = [e["id"] for e in seen]
    assert len(entry_ids) == len(set(entry_ids))


async def test_closing_on_one_server_stops_the_stream_the_other_holds(
    shared: SharedStack,
) -> None:
    holder = await shared.start_server()
    other = await shared.start_server()
    async with Client(holder.url) as a, Client(other.url) as b:
        ids = await start_chat(RoundRobin([a]))  # the holder opens the stream
        seen: list[dict[str, Any]] = []
        await read_until(RoundRobin([a]), ids, lambda e, _: bool(messages(e, "Chatbot")), seen)
        assert (holder.event_streams, other.event_streams) == (1, 0)
        closed = await call(b, "close_conversation", ids)
        assert closed["closed"] and closed["conversationClosed"], closed
        await holder.app.state.runtime.delivery.scan()  # its next scan, a second later
        assert holder.event_streams == 0
        # Nobody opens it again: the closed chat is refused on both servers.
        for client in (a, b):
            with pytest.raises(ToolFailed, match="This chat was closed"):
                await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        await other.app.state.runtime.delivery.scan()
        assert shared.event_streams() == 0
    assert await shared.stream_opens() == 1


async def test_a_stream_salesforce_refuses_for_good_is_reported_on_every_server(
    shared: SharedStack,
) -> None:
    holder = await shared.start_server()
    other = await shared.start_server()
    async with Client(holder.url) as a, Client(other.url) as b:
        ids = await start_chat(RoundRobin([a]))
        seen: list[dict[str, Any]] = []
        await read_until(RoundRobin([a]), ids, lambda e, _: bool(messages(e, "Chatbot")), seen)
        # The guest's token expires: Salesforce cuts the stream and refuses to reopen it (401).
        assert (await shared.control.post("/control/tokens/expire")).json()["expired"] >= 1
        failure = ""
        for _ in range(30):  # reads on the other server until the holder has said so
            try:
                await call(b, "list_conversation_entries", {**ids, "waitSeconds": 1})
            except ToolFailed as exc:
                failure = str(exc)
                break
        assert "Salesforce no longer accepts this chat session" in failure
        assert holder.event_streams == 0
        # Marked for the session's whole remaining life (an hour here), not a minute.
        owner_keys = [k async for k in shared.redis.scan_iter(match=f"{shared.prefix}own:*")]
        assert len(owner_keys) == 1
        assert await shared.redis.get(owner_keys[0]) == b"!broken"
        assert await shared.redis.pttl(owner_keys[0]) > 30 * 60 * 1000
        with pytest.raises(ToolFailed, match="no longer accepts this chat session"):
            await call(a, "list_conversation_entries", {**ids, "waitSeconds": 0})
    assert await shared.stream_opens() >= 2  # the holder tried to reopen it; nobody else did
