"""Exactly once under faults: messages lost, duplicated or reordered, each way, via the MCP server.

Reproduces the fault-injection audit: --conversations guests (default 20), each with its own MCP
client session, a conversation and a human agent (control API), then, with the faults armed only
after that set-up, --messages messages each way per conversation (default 30), paced about --pace
seconds apart (seeded jitter):
  - agent → user: the agent posts through the control API (never faulted); a reader per
    conversation calls list_conversation_entries with the cursor of its previous page, retrying a
    failed call with the same cursor;
  - user → agent: send_message, one message at a time, retried on a tool error like a model would
    (at most --attempts calls); when the tool's input schema has `clientMessageId`, each message
    gets one and its retries reuse it. The truth is the simulator's transcript
    (GET /control/conversations).
Per direction: delivered, lost, duplicated, and reordered pairs (two consecutive deliveries, first
occurrences, in the wrong order) with the number of conversations they are in; the max duration of
each tool.

Conditions (--condition N or its name; default all):
  1 replay-5xx20-cut10    simulator defaults (replay on), 20 % 5xx, every stream cut every 10 s
  2 noreplay-5xx20-cut10  replay off, 20 % 5xx, cuts every 10 s
  3 noreplay-5xx50-cut4   replay off, 50 % 5xx, cuts every 4 s
  4 slow-sends            10 % of sends answered by Salesforce only after 9 s (the message lands)
  5 slow-close            SCRT_RETRY_TOTAL_SECONDS=20, per-session pre-chat; Salesforce answers
                          a send after the agent ended the session (417 first) after 9 s each,
                          and both deletes of close_conversation after 25 s: tool durations
5xx means 503 on every SCRT REST request (token minting included) and SSE open, with the given
probability, drawn from the simulator's seeded random source (the seed is --seeds' value).

The simulator (app.simulator.build_simulator) and the MCP server (app.main.build_app) run in this
process on loopback ports, so numbers include their share of one event loop. Not part of the
pytest suite. About 1 to 1.5 minutes per seed for conditions 1-4, one minute for 5.

Usage: .venv/bin/python bench/faults.py [--condition 3] [--seeds 1 2 3] [--conversations 20]
       [--messages 30] [--pace 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn
from mcp.client import Client
from starlette.types import ASGIApp

import app as app_package
from app.config import Settings
from app.logs import configure_logging
from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID

HOST = "127.0.0.1"
SEND_TEMPLATE = "/iamessage/api/v2/conversation/{conversationId}/message"
CONV_TEMPLATE = "/iamessage/api/v2/conversation/{conversationId}"
READ_WAIT = 5.0  # waitSeconds of each reader call
DRAIN = 20.0  # seconds a reader goes on after its agent's last message, if messages are missing
RETRY_PAUSE = 0.5  # a model's pause before calling a failed tool again
CALL_DEADLINE = 90.0  # the bench gives up on one tool call after this (counted as a failure)
SLOW_SEND = 9.0
SLOW_DELETE = 25.0


class BenchError(RuntimeError):
    """The bench cannot go on; the message says why."""


@dataclass(frozen=True)
class Condition:
    number: int
    name: str
    title: str
    replay: bool = True
    fail_rate: float | None = None
    cut_every: float | None = None
    slow_sends: float | None = None
    """Fraction of sends answered after SLOW_SEND seconds."""


CONDITIONS = [
    Condition(1, "replay-5xx20-cut10", "replay on, 20 % 5xx, cuts every 10 s", True, 0.2, 10.0),
    Condition(2, "noreplay-5xx20-cut10", "replay off, 20 % 5xx, cuts every 10 s", False, 0.2, 10.0),
    Condition(3, "noreplay-5xx50-cut4", "replay off, 50 % 5xx, cuts every 4 s", False, 0.5, 4.0),
    Condition(4, "slow-sends", "10 % of sends answered after 9 s", slow_sends=0.1),
    Condition(5, "slow-close", "SCRT_RETRY_TOTAL_SECONDS=20, Salesforce answers slowly"),
]


# -- servers ------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, lifespan: Literal["auto", "on"]) -> AsyncIterator[str]:
    """Serve `app` on a loopback port bound before uvicorn starts; yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(1024)
    config = uvicorn.Config(app, log_level="error", lifespan=lifespan, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, timeout=15)
        sock.close()


@dataclass
class Stack:
    mcp_url: str
    control: httpx.AsyncClient

    async def control_call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.control.request(method, path, json=body)
        if not response.is_success:
            raise BenchError(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json() if response.content else None


@contextlib.asynccontextmanager
async def stack(sim_options: SimulatorOptions, **settings: Any) -> AsyncIterator[Stack]:
    async with serve(build_simulator(sim_options), "auto") as sim_url:
        values: dict[str, Any] = {
            "miaw_scrt_url": sim_url,
            "miaw_org_id": DEFAULT_ORG_ID,
            "miaw_es_developer_name": DEFAULT_DEPLOYMENT,
            "log_level": "ERROR",
            "log_format": "console",
            # Many chats from one address: the abuse limits are not what this bench measures.
            "rate_limit_per_ip": "off",
            **settings,
        }
        app = build_app(Settings(_env_file=None, **values))  # type: ignore[call-arg]
        async with (
            serve(app, "on") as mcp_base,
            httpx.AsyncClient(base_url=sim_url, timeout=30.0) as control,
        ):
            yield Stack(mcp_base + "/mcp", control)


# -- tool calls ---------------------------------------------------------------------------------


@dataclass
class ToolStats:
    max_seconds: dict[str, float] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def merge(self, other: ToolStats) -> None:
        for name, seconds in other.max_seconds.items():
            self.max_seconds[name] = max(self.max_seconds.get(name, 0.0), seconds)
        self.calls.update(other.calls)
        self.errors.update(other.errors)


@dataclass
class Outcome:
    ok: bool
    content: dict[str, Any]
    error: str
    seconds: float


async def call(client: Client, name: str, arguments: dict[str, Any], stats: ToolStats) -> Outcome:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(CALL_DEADLINE):
            result = await client.call_tool(name, arguments)
        ok = not result.is_error
        content = dict(result.structured_content or {}) if ok else {}
        error = "" if ok else (result.content[0].text if result.content else "tool error")  # type: ignore[union-attr]
    except TimeoutError:
        ok, content, error = False, {}, f"no answer within {CALL_DEADLINE:g} s"
    seconds = time.perf_counter() - started
    stats.calls[name] += 1
    stats.errors[name] += not ok
    stats.max_seconds[name] = max(stats.max_seconds.get(name, 0.0), seconds)
    return Outcome(ok, content, error, seconds)


async def must(client: Client, name: str, arguments: dict[str, Any], stats: ToolStats) -> Any:
    outcome = await call(client, name, arguments, stats)
    if not outcome.ok:
        raise BenchError(f"set-up: {name} failed: {outcome.error}")
    return outcome.content


# -- one conversation ---------------------------------------------------------------------------


@dataclass
class Chat:
    index: int
    client: Client
    session_id: str = ""
    conversation_id: str = ""
    cursor: str | None = None
    agent_seen: list[int] = field(default_factory=list)
    agent_done_at: float | None = None
    agent_done: asyncio.Event = field(default_factory=asyncio.Event)
    send_failures: int = 0
    messages_retried: int = 0
    gave_up: int = 0
    stats: ToolStats = field(default_factory=ToolStats)

    @property
    def ids(self) -> dict[str, str]:
        return {"sessionId": self.session_id, "conversationId": self.conversation_id}


async def read_page(chat: Chat, wait: float) -> list[dict[str, Any]] | None:
    args: dict[str, Any] = {**chat.ids, "waitSeconds": wait}
    if chat.cursor is not None:
        args["cursor"] = chat.cursor
    outcome = await call(chat.client, "list_conversation_entries", args, chat.stats)
    if not outcome.ok:
        return None
    chat.cursor = outcome.content["cursor"]
    entries: list[dict[str, Any]] = outcome.content["entries"]
    if outcome.content["roleInfo"].get("conversationEnded"):
        entries.append({"kind": "ended"})
    return entries


async def set_up(chat: Chat, bench: Stack) -> None:
    """Token → conversation → greeting → a human agent joins → every entry so far read."""
    chat.session_id = (await must(chat.client, "generate_guest_access_token", {}, chat.stats))[
        "sessionId"
    ]
    created = await must(
        chat.client, "create_conversation", {"sessionId": chat.session_id}, chat.stats
    )
    chat.conversation_id = created["conversationId"]
    await read_until(chat, lambda e: e.get("kind") == "message" and e.get("role") == "Chatbot")
    await bench.control_call(
        "POST",
        f"/control/conversations/{chat.conversation_id}/agent/join",
        {"name": f"Agent {chat.index}"},
    )
    await read_until(chat, lambda e: e.get("kind") == "joined" and e.get("role") == "Agent")
    while await read_page(chat, 0):
        pass


async def read_until(chat: Chat, wanted: Callable[[dict[str, Any]], bool]) -> None:
    async with asyncio.timeout(30):
        while True:
            page = await read_page(chat, READ_WAIT)
            if page is None:
                raise BenchError("set-up: list_conversation_entries failed")
            if any(wanted(e) for e in page):
                return


def number_in(text: str | None, prefix: str) -> int | None:
    if not text or not text.startswith(prefix):
        return None
    try:
        return int(text[len(prefix) :])
    except ValueError:
        return None


async def agent_sender(chat: Chat, bench: Stack, n: int, pace: float, rng: random.Random) -> None:
    path = f"/control/conversations/{chat.conversation_id}/agent/message"
    for k in range(n):
        await asyncio.sleep(pace * rng.uniform(0.5, 1.5))
        await bench.control_call("POST", path, {"text": f"agent {chat.index}.{k}"})
    chat.agent_done_at = asyncio.get_running_loop().time()
    chat.agent_done.set()


async def reader(chat: Chat, n: int) -> None:
    loop = asyncio.get_running_loop()
    prefix = f"agent {chat.index}."
    while True:
        if chat.agent_done_at is not None and (
            len(set(chat.agent_seen)) >= n or loop.time() > chat.agent_done_at + DRAIN
        ):
            return
        page = await read_page(chat, READ_WAIT)
        if page is None:
            await asyncio.sleep(RETRY_PAUSE)
            continue
        for entry in page:
            if entry.get("kind") == "message" and entry.get("role") == "Agent":
                k = number_in(entry.get("text"), prefix)
                if k is not None:
                    chat.agent_seen.append(k)


async def user_sender(
    chat: Chat, n: int, pace: float, rng: random.Random, attempts: int, keyed: bool
) -> None:
    for k in range(n):
        await asyncio.sleep(pace * rng.uniform(0.5, 1.5))
        args: dict[str, Any] = {**chat.ids, "text": f"user {chat.index}.{k}"}
        if keyed:
            args["clientMessageId"] = f"bench-{uuid.uuid4()}"
        for attempt in range(attempts):
            outcome = await call(chat.client, "send_message", args, chat.stats)
            if outcome.ok:
                break
            chat.send_failures += 1
            if attempt == 0:
                chat.messages_retried += 1
            await asyncio.sleep(RETRY_PAUSE)
        else:
            chat.gave_up += 1


# -- counting -----------------------------------------------------------------------------------


@dataclass
class Tally:
    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    reordered_conversations: int = 0
    affected_conversations: int = 0

    def add(self, sequence: list[int], n: int) -> None:
        counts = Counter(sequence)
        firsts = list(dict.fromkeys(sequence))
        lost = sum(1 for k in range(n) if k not in counts)
        duplicated = sum(c - 1 for c in counts.values())
        reordered = sum(1 for a, b in itertools.pairwise(firsts) if a > b)
        self.expected += n
        self.delivered += len(counts)
        self.lost += lost
        self.duplicated += duplicated
        self.reordered += reordered
        self.reordered_conversations += reordered > 0
        self.affected_conversations += bool(lost or duplicated or reordered)

    def merge(self, other: Tally) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def describe(self, conversations: int) -> str:
        return (
            f"{self.delivered}/{self.expected} delivered, lost {self.lost}, "
            f"duplicated {self.duplicated}, reordered pairs {self.reordered} "
            f"(in {self.reordered_conversations} of {conversations} conversations)"
        )


def user_texts(conversation: dict[str, Any]) -> list[str]:
    texts = []
    for entry in conversation["entries"]:
        if entry["entryType"] != "Message" or entry["sender"]["role"] != "EndUser":
            continue
        content = entry["entryPayload"]["abstractMessage"].get("staticContent") or {}
        texts.append(str(content.get("text", "")))
    return texts


@dataclass
class SeedResult:
    seed: int
    conversations: int
    attempts: int
    agent: Tally = field(default_factory=Tally)
    user: Tally = field(default_factory=Tally)
    stats: ToolStats = field(default_factory=ToolStats)
    send_failures: int = 0
    messages_retried: int = 0
    gave_up: int = 0
    cut_rounds: int = 0
    seconds: float = 0.0


async def tools_have_client_message_id(client: Client) -> bool:
    listed = await client.list_tools()
    for tool in listed.tools:
        if tool.name == "send_message":
            return "clientMessageId" in (tool.input_schema.get("properties") or {})
    raise BenchError("the server has no send_message tool")


async def arm(bench: Stack, condition: Condition, seed: int) -> None:
    await bench.control_call("POST", "/control/faults", {"seed": seed})
    if condition.fail_rate is not None:
        for path in ("/iamessage/*", "/eventrouter/*"):
            await bench.control_call(
                "POST",
                "/control/faults",
                {"path": path, "status": 503, "probability": condition.fail_rate, "count": None},
            )
    if condition.slow_sends is not None:
        await bench.control_call(
            "POST",
            "/control/faults",
            {
                "path": SEND_TEMPLATE,
                "method": "POST",
                "delay": SLOW_SEND,
                "probability": condition.slow_sends,
                "count": None,
            },
        )
    if condition.cut_every is not None:
        await bench.control_call(
            "POST", "/control/faults", {"cutStreamsEvery": condition.cut_every}
        )


async def open_chats(
    bench: Stack, exits: contextlib.AsyncExitStack, count: int
) -> tuple[list[Chat], bool]:
    clients = [await exits.enter_async_context(Client(bench.mcp_url)) for _ in range(count)]
    keyed = await tools_have_client_message_id(clients[0])
    chats = [Chat(i, client) for i, client in enumerate(clients)]
    await asyncio.gather(*(set_up(chat, bench) for chat in chats))
    return chats, keyed


async def run_traffic(condition: Condition, seed: int, args: argparse.Namespace) -> SeedResult:
    options = SimulatorOptions(rate_limits=False, replay=condition.replay)
    result = SeedResult(seed, args.conversations, args.attempts)
    rng = random.Random(seed)
    async with stack(options) as bench, contextlib.AsyncExitStack() as exits:
        chats, keyed = await open_chats(bench, exits, args.conversations)
        await arm(bench, condition, seed)
        started = time.perf_counter()
        jobs: list[Awaitable[None]] = []
        for chat in chats:
            jobs += [
                agent_sender(chat, bench, args.messages, args.pace, random.Random(rng.random())),
                reader(chat, args.messages),
                user_sender(
                    chat,
                    args.messages,
                    args.pace,
                    random.Random(rng.random()),
                    args.attempts,
                    keyed,
                ),
            ]
        await asyncio.gather(*jobs)
        result.seconds = time.perf_counter() - started
        stats = await bench.control_call("GET", "/control/stats")
        result.cut_rounds = stats.get("periodicCuts", {}).get("rounds", 0)
        await bench.control_call("DELETE", "/control/faults")
        if condition.slow_sends is not None:
            await asyncio.sleep(SLOW_SEND + 1)  # the last held sends land
        truth = await bench.control_call("GET", "/control/conversations")
        by_id = {c["conversationId"]: c for c in truth["conversations"]}
        for chat in chats:
            result.agent.add(chat.agent_seen, args.messages)
            prefix = f"user {chat.index}."
            landed = [number_in(t, prefix) for t in user_texts(by_id[chat.conversation_id])]
            result.user.add([k for k in landed if k is not None], args.messages)
            result.stats.merge(chat.stats)
            result.send_failures += chat.send_failures
            result.messages_retried += chat.messages_retried
            result.gave_up += chat.gave_up
    return result


def print_seed(result: SeedResult, label: str) -> None:
    tools = ", ".join(
        f"{name} {result.stats.max_seconds[name]:.1f} s"
        for name in ("send_message", "list_conversation_entries")
        if name in result.stats.max_seconds
    )
    print(f"  {label}:", flush=True)
    print(f"    agent → user: {result.agent.describe(result.conversations)}", flush=True)
    print(f"    user → agent: {result.user.describe(result.conversations)}", flush=True)
    print(
        f"    send_message: {result.stats.calls['send_message']} calls, "
        f"{result.send_failures} failed ({result.messages_retried} messages retried, "
        f"{result.gave_up} given up after {result.attempts} calls); reads failed "
        f"{result.stats.errors['list_conversation_entries']} of "
        f"{result.stats.calls['list_conversation_entries']}; periodic cut rounds "
        f"{result.cut_rounds}; max tool time: {tools}; {result.seconds:.0f} s",
        flush=True,
    )


async def traffic_condition(condition: Condition, args: argparse.Namespace) -> None:
    total = SeedResult(0, 0, args.attempts)
    for seed in args.seeds:
        result = await run_traffic(condition, seed, args)
        print_seed(result, f"seed {seed}")
        total.conversations += result.conversations
        total.agent.merge(result.agent)
        total.user.merge(result.user)
        total.stats.merge(result.stats)
        total.send_failures += result.send_failures
        total.messages_retried += result.messages_retried
        total.gave_up += result.gave_up
        total.cut_rounds += result.cut_rounds
        total.seconds += result.seconds
    if len(args.seeds) > 1:
        print_seed(total, f"all {len(args.seeds)} seeds")


# -- condition 5: slow answers and a long retry budget -----------------------------------------


async def send_after_417(chat: Chat, keyed: bool) -> Outcome:
    args: dict[str, Any] = {**chat.ids, "text": "are you still there?"}
    if keyed:
        args["clientMessageId"] = f"bench-{uuid.uuid4()}"
    return await call(chat.client, "send_message", args, chat.stats)


async def slow_condition(condition: Condition, args: argparse.Namespace) -> None:
    count = min(args.conversations, 5)
    for seed in args.seeds:
        options = SimulatorOptions(rate_limits=False, prechat_display_context="Session")
        async with (
            stack(options, scrt_retry_total_seconds=20) as bench,
            contextlib.AsyncExitStack() as exits,
        ):
            chats, keyed = await open_chats(bench, exits, count)
            await bench.control_call("POST", "/control/faults", {"seed": seed})
            for chat in chats:  # the agent ends the session: the next send gets 417 first
                await bench.control_call(
                    "POST", f"/control/conversations/{chat.conversation_id}/agent/end"
                )
            await bench.control_call(
                "POST",
                "/control/faults",
                {"path": SEND_TEMPLATE, "method": "POST", "delay": SLOW_SEND, "count": None},
            )

            sends = await asyncio.gather(*(send_after_417(chat, keyed) for chat in chats))
            await bench.control_call("DELETE", "/control/faults")
            await asyncio.sleep(SLOW_SEND + 1)  # sends held by the simulator land
            truth = await bench.control_call("GET", "/control/conversations")
            landed = sum(
                user_texts(c).count("are you still there?") for c in truth["conversations"]
            )
            for path in (CONV_TEMPLATE, CONV_TEMPLATE + "/session"):
                await bench.control_call(
                    "POST",
                    "/control/faults",
                    {"path": path, "method": "DELETE", "delay": SLOW_DELETE, "count": None},
                )
            closes = await asyncio.gather(
                *(call(chat.client, "close_conversation", chat.ids, chat.stats) for chat in chats)
            )
            await bench.control_call("DELETE", "/control/faults")
            await asyncio.sleep(SLOW_DELETE + 1)
            truth = await bench.control_call("GET", "/control/conversations")
            closed = sum(not c["open"] for c in truth["conversations"])
        print(f"  seed {seed}, {count} conversations:", flush=True)
        print(
            f"    send after the agent ended the session (417 first; each answer after "
            f"{SLOW_SEND:g} s): max {max(o.seconds for o in sends):.1f} s, min "
            f"{min(o.seconds for o in sends):.1f} s; {sum(not o.ok for o in sends)} failed; "
            f"{landed} landed for {count} sends"
            + (
                f"; first error: {next(o.error for o in sends if not o.ok)[:160]!r}"
                if any(not o.ok for o in sends)
                else ""
            ),
            flush=True,
        )
        print(
            f"    close_conversation (each delete answered after {SLOW_DELETE:g} s): max "
            f"{max(o.seconds for o in closes):.1f} s, min {min(o.seconds for o in closes):.1f} s; "
            f"{sum(not o.ok for o in closes)} failed; {closed} of {count} closed in the end"
            + (
                f"; first error: {next(o.error for o in closes if not o.ok)[:160]!r}"
                if any(not o.ok for o in closes)
                else ""
            ),
            flush=True,
        )


# -- main ---------------------------------------------------------------------------------------


def pick(raw: str) -> Condition:
    for condition in CONDITIONS:
        if raw in (str(condition.number), condition.name):
            return condition
    names = ", ".join(f"{c.number} ({c.name})" for c in CONDITIONS)
    raise argparse.ArgumentTypeError(f"unknown condition {raw!r}; one of {names}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--condition", type=pick, action="append", help="run only this (repeat)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--messages", type=int, default=30, help="per conversation, each way")
    parser.add_argument("--pace", type=float, default=1.0, help="mean seconds between messages")
    parser.add_argument("--attempts", type=int, default=5, help="send_message calls per message")
    args = parser.parse_args()
    if args.conversations < 1 or args.messages < 1 or args.attempts < 1:
        parser.error("--conversations, --messages and --attempts must be at least 1")
    if not args.pace > 0:
        parser.error("--pace must be above 0")
    return args


async def main(args: argparse.Namespace) -> None:
    configure_logging("ERROR", "console")
    where = Path(app_package.__file__ or "?").parent
    print(
        f"fault benchmark: app from {where}; {args.conversations} conversations x "
        f"{args.messages} messages each way, pace {args.pace:g} s, seeds {args.seeds}",
        flush=True,
    )
    for condition in args.condition or CONDITIONS:
        print(f"condition {condition.number} ({condition.name}): {condition.title}", flush=True)
        if condition.number == 5:
            await slow_condition(condition, args)
        else:
            await traffic_condition(condition, args)


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
