"""Two real server processes (`python -m app serve`) share one Redis and the simulator. Calls
alternate between them; the one holding the Salesforce event stream is killed with SIGKILL
mid-chat while the agent keeps writing, and the other delivers every message exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from mcp.client import Client
from redis.asyncio import Redis

from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from app.state.sealing import Sealer
from app.store.redis import RedisSessionStore
from tests.mcp.conftest import call
from tests.mcp.test_handoff_flow import has, messages
from tests.mcp.test_shared_state import RoundRobin, alternating_handoff, read_until, start_chat
from tests.redis_support import REDIS_URL, TEST_KEY, dump, redis_prefix
from tests.servers import free_port, serve

__all__ = ["redis_prefix"]

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Process:
    port: int
    proc: asyncio.subprocess.Process
    output: bytearray = field(default_factory=bytearray)
    reader: asyncio.Task[None] | None = None
    grew: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for_output(self, text: bytes, count: int = 1) -> None:
        """Until `text` appears `count` times in the output (a safety deadline bounds it)."""
        async with asyncio.timeout(60), self.grew:
            await self.grew.wait_for(lambda: self.output.count(text) >= count)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    async def event_streams(self) -> int:
        async with httpx.AsyncClient() as http:
            health = await http.get(f"http://127.0.0.1:{self.port}/health")
        return int(health.json()["eventStreams"])


@contextlib.asynccontextmanager
async def server_process(env: dict[str, str]) -> AsyncIterator[Process]:
    """`python -m app serve` on a free port; its output is kept (and drained, so it never
    blocks on a full pipe) until it exits."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port),
        cwd=ROOT, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    process = Process(port, proc)
    assert proc.stdout is not None
    stdout = proc.stdout
    ready = asyncio.Event()

    async def drain() -> None:
        while line := await stdout.readline():
            process.output += line
            async with process.grew:
                process.grew.notify_all()
            if b"serving MCP" in line:
                ready.set()

    process.reader = asyncio.create_task(drain())
    try:
        async with asyncio.timeout(120):  # a safety deadline: start-up is an event
            waiting = asyncio.create_task(ready.wait())
            await asyncio.wait({waiting, process.reader}, return_when=asyncio.FIRST_COMPLETED)
            assert ready.is_set(), f"exited: {process.output.decode()}"
        yield process
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
        await process.reader


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    """The simulator on a loopback port, and a client of its control API."""
    async with (
        serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url,
        httpx.AsyncClient(base_url=sim_url) as control,
    ):
        yield sim_url, control


def shared_env(sim_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {
        "MIAW_SCRT_URL": sim_url,
        "MIAW_ORG_ID": DEFAULT_ORG_ID,
        "MIAW_ES_DEVELOPER_NAME": DEFAULT_DEPLOYMENT,
        "REDIS_URL": REDIS_URL,
        "STATE_ENCRYPTION_KEY": TEST_KEY,
        "REDIS_KEY_PREFIX": prefix,
        "POLL_INTERVAL_SECONDS": "0.2",
        "LOG_FORMAT": "json",
        **extra,
    }


async def test_a_whole_handoff_across_two_processes_each_call_on_the_other(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    async with contextlib.AsyncExitStack() as stack:
        sim_url, control = await stack.enter_async_context(simulator())
        procs = [
            await stack.enter_async_context(server_process(shared_env(sim_url, prefix)))
            for _ in range(2)
        ]

        async def agent(cid: str, action: str, body: Any) -> None:
            response = await control.post(f"/control/conversations/{cid}/agent/{action}", json=body)
            assert response.status_code == 200, response.text

        await alternating_handoff([p.url for p in procs], agent)
        assert sorted([await p.event_streams() for p in procs]) == [0, 1]
        requests = (await control.get("/control/stats")).json()["requests"]
        assert sum(n for k, n in requests.items() if k.startswith("GET /eventrouter")) == 1


async def test_two_processes_and_the_stream_holder_killed_mid_chat(
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    async with contextlib.AsyncExitStack() as stack:
        sim_url, control = await stack.enter_async_context(simulator())
        env = shared_env(sim_url, prefix, LOG_LEVEL="DEBUG")
        procs = [await stack.enter_async_context(server_process(env)) for _ in range(2)]
        clients = [await stack.enter_async_context(Client(p.url)) for p in procs]

        async def agent(action: str, body: Any = None) -> None:
            response = await control.post(f"/control/conversations/{cid}/agent/{action}", json=body)
            assert response.status_code == 200, response.text

        tool = RoundRobin(clients)
        ids = await start_chat(tool)
        cid = ids["conversationId"]
        model: list[dict[str, Any]] = []
        await read_until(tool, ids, lambda e, _: bool(messages(e, "Chatbot")), model)
        await tool("send_message", {**ids, "text": "I need a human, please"})
        await read_until(tool, ids, lambda e, _: has(e, "queue_position"), model)
        await agent("join", {"name": "Jane Agent"})
        await read_until(tool, ids, lambda _, i: i["isLiveAgent"], model)
        await agent("message", {"text": "agent says 1"})
        await read_until(tool, ids, lambda e, _: "agent says 1" in messages(e, "Agent"), model)

        streams = [await p.event_streams() for p in procs]
        assert sorted(streams) == [0, 1]
        holder = streams.index(1)
        survivor = procs[1 - holder]
        only_survivor = RoundRobin([clients[1 - holder]])

        # Kill the holder; the agent keeps writing. The survivor's reader is waiting meanwhile.
        procs[holder].proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await procs[holder].proc.wait()
        await agent("message", {"text": "agent says 2"})
        await read_until(
            only_survivor, ids, lambda e, _: "agent says 2" in messages(e, "Agent"), model
        )
        takeover = time.monotonic() - killed_at
        # A measurement, not a bound (the README quotes it; bench/ has the benchmark).
        print(f"\nkill → next agent message delivered by the other process: {takeover:.2f} s")
        for n in (3, 4, 5):
            await agent("message", {"text": f"agent says {n}"})
        await only_survivor("send_message", {**ids, "text": "still here"})
        await agent("end")
        await read_until(only_survivor, ids, lambda _, i: i["conversationEnded"], model)
        assert await survivor.event_streams() == 1

        # The widget, reading from the start with its own cursor on the survivor.
        widget: list[dict[str, Any]] = []
        await read_until(
            only_survivor, {**ids, "cursor": "0"}, lambda _, i: i["conversationEnded"], widget
        )
        record_token = await _token_of(redis, prefix, ids["sessionId"])
        state_dump = await dump(redis, prefix)

    agent_says = [f"agent says {n}" for n in range(1, 6)]
    for seen in (model, widget):
        assert messages(seen, "Agent") == agent_says
        entry_ids = [e["id"] for e in seen]
        assert len(entry_ids) == len(set(entry_ids)), "an entry was delivered twice"
    assert messages(widget, "EndUser") == ["I need a human, please", "still here"]
    # No Salesforce token in clear text: not in Redis, not in either process's DEBUG log.
    logs = b"".join(bytes(p.output) for p in procs)
    assert b"session.started" in logs  # the logs were captured
    for haystack in (state_dump, logs):
        assert record_token.encode() not in haystack
        assert ids["sessionId"].encode() not in haystack


async def _token_of(redis: Redis, prefix: str, handle: str) -> str:
    record = await RedisSessionStore(redis, Sealer(TEST_KEY), prefix).get(handle)
    assert record is not None
    return record.access_token.get_secret_value()


async def test_web_concurrency_runs_workers_that_share_the_chat(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    async with contextlib.AsyncExitStack() as stack:
        sim_url, _ = await stack.enter_async_context(simulator())
        env = shared_env(sim_url, prefix, WEB_CONCURRENCY="2")
        server = await stack.enter_async_context(server_process(env))
        await server.wait_for_output(b'"state.started"', count=2)  # both workers are up
        health_url = server.url.removesuffix("/mcp") + "/health"
        processes: set[str] = set()
        for _ in range(200):  # new connections until both workers have answered
            async with httpx.AsyncClient() as http:
                body = (await http.get(health_url)).json()
            assert body["state"] == "redis"
            processes.add(body["process"])
            if len(processes) == 2:
                break
        assert len(processes) == 2, "only one worker answered"
        # A chat works whichever worker each call reaches (each call a new connection).
        seen: list[dict[str, Any]] = []

        async def fresh_connection(name: str, args: dict[str, Any]) -> dict[str, Any]:
            async with Client(server.url) as client:
                return await call(client, name, args)

        ids = await start_chat(fresh_connection)
        await read_until(fresh_connection, ids, lambda e, _: bool(messages(e, "Chatbot")), seen)
    assert messages(seen, "Chatbot") == ["Hi, I'm Agentforce. How can I help you today?"]
