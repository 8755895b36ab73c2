"""Delivery latency and cost, in memory (1 process) and with Redis (2 processes), side by side.

Runs `miaw-mcp simulator --no-rate-limits` and MCP servers (`miaw-mcp serve`, pointed at it) as
subprocesses on free loopback ports, calls the tools with raw JSON-RPC POSTs to /mcp (the server is
stateless), and measures each mode of --mode (memory, redis or both, the default; a fresh
simulator for each):

  memory  one `serve` process keeping everything in memory;
  redis   two `serve` processes, A and B (two dynos), sharing one Redis (--redis-url, under a key
          prefix of its own, `bench:<random>:`, whose keys are deleted at the end) and the
          simulator. Each guest's tool calls go to A and B in turn (the first to a random one),
          as Heroku's router would spread them; exactly one of them holds each session's event
          stream (the one its create_conversation reached; its owner key in Redis says which),
          so about half the waiting reads wait on the process that does not hold it.

For each mode it prints:
  (a) latency from posting an agent message (control API) to the return of the
      list_conversation_entries call (waitSeconds 25, no cursor) that was already waiting for it,
      over --messages messages in one conversation: p50/p95/max, PASS/FAIL against p50 ≤ 30 ms
      and p95 ≤ 100 ms in memory, p50 ≤ 10 ms and p95 ≤ 50 ms with Redis; with Redis also apart
      for the reads waiting on the process holding the stream and on the other one;
  (b) SCRT REST requests per minute (every counted route but `GET /eventrouter/v1/sse`) while one
      conversation waits idle for --idle-seconds with its event stream up and
      list_conversation_entries called back to back; PASS/FAIL against ≤ 2 per minute with every
      call answered (a call that fails is counted and followed by the next, as a client retries);
  (c) --conversations guests, each with a conversation, an agent and a waiting
      list_conversation_entries call (with Redis: guest i's on process i mod 2); one agent message
      posted to each at once: p50/p95/max latency and the servers' RSS;
  (d) state per conversation once --waiting guests are set up (those of (c) and more; in memory
      mode --memory-waiting, default 900: one process cannot hold 1,000, as its Salesforce HTTP
      client pools 1,000 connections and each event stream keeps one, so near 1,000 streams its
      REST calls starve and guests fail to start): the servers' RSS growth per conversation,
      with Redis how many streams each process holds, MEMORY USAGE summed over every key under
      the prefix per conversation (by kind of key), and the growth of INFO used_memory per
      conversation (which counts anything else using that Redis too);
  (e) steady load: each of those guests keeps a list_conversation_entries call waiting (back to
      back, with Redis alternating between A and B; the first calls are staggered over 25 s so
      their renewals spread out) while agent messages arrive at --rate per second, spread over
      the conversations, for --steady-seconds: p50/p95/max latency, with Redis also apart per
      process as in (a); PASS/FAIL against p95 ≤ 250 ms with every message delivered; and the
      CPU use of each process (servers, simulator, a local Redis, the bench) while posting;
and at the end a summary of both modes side by side. Exit status 0 when every target passes, 1
when one fails, 2 when the bench could not run.

The bench's HTTP client is a minimal HTTP/1.1 keep-alive client on asyncio streams (per guest, one
connection to each server's /mcp and one to the control API), so the client's own CPU use, which
shares the cores with the servers, the simulator and Redis, stays small. Timestamps are taken just
before the request bytes are written and just after the response body is read.

Not part of the pytest suite. With the defaults it takes about 6 minutes on 2 idle cores: per mode
about 1 minute for (a), (c) and the servers' starts and stops, --idle-seconds, the set-up of the
(d) guests (under a minute per 1,000) and --steady-seconds plus 5 to 30 s.

Usage: .venv/bin/python bench/delivery.py [--mode both] [--messages 200] [--idle-seconds 60]
           [--conversations 200] [--waiting 1000] [--memory-waiting 900] [--rate 20]
           [--steady-seconds 30] [--redis-url redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.store.redis import handle_key

ORG = "00D000000000001EAA"
DEPLOYMENT = "Demo_Custom_Client"
HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
SSE_ROUTE = "GET /eventrouter/v1/sse"
WAIT = 25.0  # waitSeconds of every waiting list_conversation_entries call
SETTLE = 0.05  # seconds given to a waiting call to reach the server before the agent speaks
IDLE_REUSE = 2.0  # uvicorn closes keep-alive connections idle for 5 s; reconnect well before
REDIS_PROCESSES = 2
TARGETS_MS = {"memory": (30.0, 100.0), "redis": (10.0, 50.0)}  # (a): p50, p95
TARGET_IDLE_PER_MIN = 2.0
TARGET_STEADY_P95_MS = 250.0
ROUTER = random.Random(1)  # which server takes each guest's first call (reproducibly)

Entries = list[dict[str, Any]]


class BenchError(RuntimeError):
    """The bench cannot go on; the message says why."""


def free_ports(n: int) -> list[int]:
    """`n` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = int(s.getsockname()[1])
        if port not in ports:
            ports.append(port)
    return ports


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (NaN when it is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def kib(n: float) -> str:
    return f"{n / 1024:.1f} KiB"


# -- subprocess servers -------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: asyncio.subprocess.Process
    stderr: IO[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr_tail(self, limit: int = 3000) -> str:
        self.stderr.flush()
        self.stderr.seek(0, os.SEEK_END)
        size = self.stderr.tell()
        self.stderr.seek(max(0, size - limit))
        return self.stderr.read().decode(errors="replace").strip()

    def describe_exit(self) -> str | None:
        if self.proc.returncode is None:
            return None
        return f"{self.name} exited with code {self.proc.returncode}; stderr:\n{self.stderr_tail()}"


async def drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


@contextlib.asynccontextmanager
async def run_server(
    name: str,
    args: list[str],
    ready: bytes,
    env: dict[str, str],
    start_within: float = 30.0,
    cwd: Path = REPO,
) -> AsyncIterator[Server]:
    """Start `python -m app <args>` in `cwd` (whose app/ it runs: bench/scale.py's --before runs
    another checkout's); yield once it printed `ready`; terminate and wait on exit."""
    with tempfile.TemporaryFile() as errors:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "app",
            *args,
            stdout=subprocess.PIPE,
            stderr=errors,
            env=env,
            cwd=cwd,
        )
        server = Server(name, proc, errors)
        assert proc.stdout is not None
        drainer: asyncio.Task[None] | None = None
        try:
            try:
                async with asyncio.timeout(start_within):
                    while True:
                        line = await proc.stdout.readline()
                        if not line:
                            await proc.wait()
                            raise BenchError(f"{name} did not start: {server.describe_exit()}")
                        if ready in line:
                            break
            except TimeoutError:
                raise BenchError(
                    f"{name} did not print {ready.decode()!r} within {start_within:g} s; stderr:\n"
                    f"{server.stderr_tail()}"
                ) from None
            drainer = asyncio.create_task(drain(proc.stdout))
            yield server
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    # `serve` waits up to 20 s for requests still in flight.
                    await asyncio.wait_for(proc.wait(), 25)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            if drainer is not None:
                drainer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drainer


# -- a minimal HTTP/1.1 client --------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    sent_at: float
    """perf_counter() just before the request bytes were written"""
    received_at: float
    """perf_counter() just after the whole body was read"""

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """One keep-alive HTTP/1.1 connection, one request at a time; reopened when stale."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used_at = 0.0
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.close()
        self._reader, self._writer = await asyncio.open_connection(HOST, self.port)
        self._used_at = time.perf_counter()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None

    async def request(
        self, method: str, path: str, payload: Any = None, *, deadline: float = 30.0
    ) -> Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            "Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self._lock:
            try:
                async with asyncio.timeout(deadline):
                    stale = time.perf_counter() - self._used_at > IDLE_REUSE
                    if self._reader is None or self._reader.at_eof() or stale:
                        await self.open()
                    assert self._reader is not None and self._writer is not None
                    sent_at = time.perf_counter()
                    self._writer.write(head + body)
                    await self._writer.drain()
                    status, headers = await self._read_head(self._reader)
                    content = await self._read_body(self._reader, headers)
                    received_at = time.perf_counter()
            except BaseException:
                self.close()  # its state is unknown now
                raise
            self._used_at = received_at
            if headers.get("connection", "").lower() == "close":
                self.close()
        return Response(status, content, sent_at, received_at)

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            raise BenchError("the server closed the connection without answering") from exc
        status_line, *lines = raw.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            if line:
                key, _, value = line.partition(":")
                headers[key.strip().lower()] = value.strip()
        return int(status_line.split()[1]), headers

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(await reader.readexactly(size))
                await reader.readexactly(2)
        return await reader.readexactly(int(headers.get("content-length", "0")))


# -- guests --------------------------------------------------------------------------------------


class Page(NamedTuple):
    """What one list_conversation_entries call returned, when, and which process answered."""

    content: dict[str, Any]
    returned_at: float
    server: int


@dataclass
class Guest:
    """One chat: its own connection to each server's /mcp and one to the simulator's control API.

    Tool calls go to the servers in turn (Heroku's router spreads them likewise) unless told where,
    the first to a random one: the process a guest's create_conversation lands on holds its event
    stream, so the streams are spread over both as in use.
    """

    mcp: list[Connection]
    control: Connection
    session_id: str = ""
    conversation_id: str = ""
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    turns: itertools.count[int] = field(
        default_factory=lambda: itertools.count(ROUTER.randrange(2))
    )
    """the guest's calls go to server next(turns) mod servers: in turn, from a random one"""

    async def call(
        self, name: str, arguments: dict[str, Any], deadline: float = 30.0, on: int | None = None
    ) -> tuple[Response, int]:
        """The response and the index of the server that answered."""
        server = next(self.turns) % len(self.mcp) if on is None else on
        request = {
            "jsonrpc": "2.0",
            "id": next(self.ids),
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        }
        response = await self.mcp[server].request("POST", "/mcp", request, deadline=deadline)
        if response.status != 200:
            raise BenchError(f"{name}: HTTP {response.status}: {response.body[:500]!r}")
        return response, server

    async def tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        response, _ = await self.call(name, arguments)
        return structured(name, response)

    async def read(self, wait: float, on: int | None = None) -> Page:
        """One list_conversation_entries call (no cursor)."""
        arguments = {
            "sessionId": self.session_id,
            "conversationId": self.conversation_id,
            "waitSeconds": wait,
        }
        response, server = await self.call(
            "list_conversation_entries", arguments, deadline=wait + 15, on=on
        )
        return Page(structured("list_conversation_entries", response), response.received_at, server)

    async def read_until(
        self, done: Callable[[Entries, dict[str, Any]], bool], deadline: float = 20.0
    ) -> None:
        seen: Entries = []
        try:
            async with asyncio.timeout(deadline):
                while True:
                    page = await self.read(5.0)
                    seen += page.content["entries"]
                    if done(seen, page.content["roleInfo"]):
                        return
        except TimeoutError:
            kinds = [(e["kind"], e.get("role")) for e in seen]
            raise BenchError(f"gave up waiting after {deadline:g} s; saw {kinds}") from None

    async def agent(self, action: str, payload: Any) -> Response:
        path = f"/control/conversations/{self.conversation_id}/agent/{action}"
        response = await self.control.request("POST", path, payload)
        if response.status != 200:
            raise BenchError(f"control {action}: HTTP {response.status}: {response.body[:300]!r}")
        return response

    def close(self) -> None:
        for connection in self.mcp:
            connection.close()
        self.control.close()


def structured(name: str, response: Response) -> dict[str, Any]:
    message = response.json()
    if "error" in message:
        raise BenchError(f"{name}: JSON-RPC error {message['error']}")
    result = message["result"]
    if result.get("isError"):
        text = result["content"][0]["text"] if result.get("content") else "tool error"
        raise BenchError(f"{name}: tool error: {text}")
    content: dict[str, Any] = result["structuredContent"]
    return content


def agent_texts(entries: Entries) -> list[str]:
    return [e.get("text", "") for e in entries if e["kind"] == "message" and e["role"] == "Agent"]


async def start_guest(mcp_ports: list[int], sim_port: int, agent_name: str) -> Guest:
    """Token → conversation → bot greeting → ask for a human → agent joins → live agent."""
    guest = Guest([Connection(port) for port in mcp_ports], Connection(sim_port))
    try:
        guest.session_id = (await guest.tool("generate_guest_access_token", {}))["sessionId"]
        created = await guest.tool("create_conversation", {"sessionId": guest.session_id})
        guest.conversation_id = created["conversationId"]
        await guest.read_until(
            lambda seen, _: any(e["kind"] == "message" and e["role"] == "Chatbot" for e in seen)
        )
        ids = {"sessionId": guest.session_id, "conversationId": guest.conversation_id}
        await guest.tool("send_message", {**ids, "text": "I need a human, please"})
        await guest.read_until(lambda seen, _: any(e["kind"] == "queue_position" for e in seen))
        await guest.agent("join", {"name": agent_name})
        await guest.read_until(lambda _, info: bool(info["isLiveAgent"]))
        page = await guest.read(0)  # nothing may be left over for the measurements
        if page.content["entries"]:
            raise BenchError(f"unexpected entries after the join: {page.content['entries']}")
    except BaseException:
        guest.close()
        raise
    return guest


async def wait_for_message(guest: Guest, pending: asyncio.Task[Page], text: str) -> Page:
    """The waiting call's page if it brought `text`, else that of the later call that did."""
    async with asyncio.timeout(WAIT + 20):
        page = await pending
        while text not in agent_texts(page.content["entries"]):
            page = await guest.read(WAIT)
    return page


async def waiting_call(guest: Guest) -> asyncio.Task[Page]:
    """Start a list_conversation_entries call and give it time to park in the server."""
    pending = asyncio.create_task(guest.read(WAIT))
    await asyncio.sleep(SETTLE)
    return pending


# -- the servers of one mode ----------------------------------------------------------------------


@dataclass
class Cluster:
    """The MCP server processes of one mode, the simulator they share and, with Redis, the Redis."""

    mode: str
    sim: Server
    sim_port: int
    servers: list[Server]
    ports: list[int]
    process_ids: list[str] = field(default_factory=list)
    """each server's process id from /health (Redis mode)"""
    redis: Redis | None = None
    prefix: str = ""
    redis_pid: int | None = None
    """Redis's process id when it runs on this machine"""

    def name(self, index: int | None) -> str:
        if index is None:
            return "nobody"
        return chr(ord("A") + index) if len(self.servers) > 1 else "the server"

    def crashed(self) -> str | None:
        for server in [*self.servers, self.sim]:
            if (exit_ := server.describe_exit()) is not None:
                return exit_
        return None

    @property
    def pids(self) -> dict[str, int]:
        """Every process of the bench by name, for their CPU use."""
        several = len(self.servers) > 1
        pids = {
            f"server {self.name(i)}" if several else "server": server.pid
            for i, server in enumerate(self.servers)
        }
        pids["simulator"] = self.sim.pid
        if self.redis_pid:
            pids["Redis"] = self.redis_pid
        pids["bench"] = os.getpid()
        return pids

    def rss(self) -> list[float]:
        return [rss_mib(server.pid) for server in self.servers]

    async def health(self) -> list[dict[str, Any]]:
        bodies: list[dict[str, Any]] = []
        for port in self.ports:
            connection = Connection(port)
            try:
                response = await connection.request("GET", "/health")
            finally:
                connection.close()
            if response.status != 200:
                raise BenchError(f"GET /health on port {port}: HTTP {response.status}")
            bodies.append(response.json())
        return bodies

    async def event_streams(self) -> str:
        """How many event streams each process holds, e.g. "A 1, B 0"."""
        counts = [body["eventStreams"] for body in await self.health()]
        return ", ".join(f"{self.name(i)} {n}" for i, n in enumerate(counts))

    async def holders(self, guests: Sequence[Guest]) -> list[int | None]:
        """The index of the process holding each guest's event stream (its owner key)."""
        if self.redis is None:
            return [0] * len(guests)
        owners: list[Any] = []
        for chunk in chunks(guests, 500):
            owners += await self.redis.mget(
                [f"{self.prefix}own:{handle_key(guest.session_id)}" for guest in chunk]
            )
        found: list[int | None] = []
        for owner in owners:
            text = owner.decode() if isinstance(owner, bytes) else owner
            found.append(self.process_ids.index(text) if text in self.process_ids else None)
        return found


class Sample(NamedTuple):
    ms: float
    server: int
    """the process whose list_conversation_entries call returned the message"""
    holder: int | None
    """the process holding the conversation's event stream"""


def summary(values: list[float]) -> str:
    if not values:
        return "no samples"
    return (
        f"p50 {statistics.median(values):.1f} ms, p95 {pct(values, 0.95):.1f} ms, "
        f"max {max(values):.1f} ms"
    )


def by_holder(cluster: Cluster, samples: list[Sample]) -> str:
    """Redis mode: the latencies of reads on the holder of the stream and on the other process."""
    if cluster.redis is None:
        return ""
    here = [s.ms for s in samples if s.server == s.holder]
    other = [s.ms for s in samples if s.server != s.holder]
    return (
        f"\n    waiting on the process holding the stream: {len(here)} reads, {summary(here)}"
        f"\n    waiting on the other process: {len(other)} reads, "
        f"{summary(other)}"
    )


# -- the measurements ---------------------------------------------------------------------------


async def single_conversation_latency(guest: Guest, n: int, holder: int | None) -> list[Sample]:
    samples: list[Sample] = []
    for i in range(n):
        text = f"agent message {i}"
        pending = await waiting_call(guest)
        if pending.done():
            await pending  # an error surfaces here; entries would be a bench bug
            raise BenchError("list_conversation_entries returned before the agent spoke")
        try:
            posted = await guest.agent("message", {"text": text})
            page = await wait_for_message(guest, pending, text)
        finally:
            pending.cancel()
        samples.append(Sample((page.returned_at - posted.sent_at) * 1000, page.server, holder))
    return samples


@dataclass(frozen=True)
class IdleResult:
    seconds: float
    calls: int
    rest: dict[str, int]
    sse_opened: int
    open_streams: tuple[int, int]
    errors: list[str]
    """the waiting calls that failed (each was followed by the next one, as a client retries)"""

    @property
    def rest_per_minute(self) -> float:
        return sum(self.rest.values()) * 60 / self.seconds

    @property
    def ok(self) -> bool:
        return self.rest_per_minute <= TARGET_IDLE_PER_MIN and not self.errors


async def control_stats(control: Connection) -> dict[str, Any]:
    response = await control.request("GET", "/control/stats")
    if response.status != 200:
        raise BenchError(f"GET /control/stats: HTTP {response.status}")
    stats: dict[str, Any] = response.json()
    return stats


async def idle_cost(guest: Guest, control: Connection, seconds: float) -> IdleResult:
    before = await control_stats(control)
    started = time.perf_counter()
    calls = 0
    errors: list[str] = []
    while (remaining := seconds - (time.perf_counter() - started)) > 0.2:
        calls += 1
        try:
            page = await guest.read(min(WAIT, remaining))
        except BenchError as exc:  # a tool error: noted, and the next call follows
            errors.append(str(exc))
            continue
        if page.content["entries"]:
            raise BenchError(f"entries arrived while idle: {page.content['entries']}")
    elapsed = time.perf_counter() - started
    after = await control_stats(control)
    counts = {
        route: after["requests"].get(route, 0) - before["requests"].get(route, 0)
        for route in after["requests"]
    }
    rest = {route: n for route, n in counts.items() if n and route != SSE_ROUTE}
    opened = counts.get(SSE_ROUTE, 0)
    streams = (int(before["openSseStreams"]), int(after["openSseStreams"]))
    return IdleResult(elapsed, calls, rest, opened, streams, errors)


async def gather_limited(jobs: Sequence[Callable[[], Awaitable[Guest]]], limit: int) -> list[Guest]:
    """Run the jobs, `limit` at a time; on failure close every guest that did start."""
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Guest]]) -> Guest:
        async with semaphore:
            return await job()

    results = await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True)
    guests = [r for r in results if isinstance(r, Guest)]
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for guest in guests:
            guest.close()
        raise BenchError(f"{len(failures)} guest(s) failed to start; first: {failures[0]!r}")
    return guests


async def add_guests(cluster: Cluster, n: int, first: int, registry: list[Guest]) -> list[Guest]:
    """Start `n` guests, 20 at a time; `registry` gets them, for the caller to close."""
    jobs = [
        functools.partial(start_guest, cluster.ports, cluster.sim_port, f"Agent {first + i}")
        for i in range(n)
    ]
    guests = await gather_limited(jobs, limit=20)
    registry += guests
    return guests


@dataclass(frozen=True)
class BurstResult:
    samples: list[Sample]
    all_ms: float
    setup_s: float
    rss_before: list[float]
    rss_ready: list[float]
    rss_waiting: list[float]
    guests: list[Guest]


async def many_conversations(cluster: Cluster, n: int, registry: list[Guest]) -> BurstResult:
    """`registry` gets every guest started, for the caller to close."""
    rss_before = cluster.rss()
    started = time.perf_counter()
    guests = await add_guests(cluster, n, 0, registry)
    setup_s = time.perf_counter() - started
    rss_ready = cluster.rss()
    holders = await cluster.holders(guests)

    servers = len(cluster.ports)
    pendings = [asyncio.create_task(g.read(WAIT, on=i % servers)) for i, g in enumerate(guests)]
    try:
        await asyncio.sleep(max(1.0, n / 200))  # every call reaches the server and parks
        if any(p.done() for p in pendings):
            raise BenchError("a waiting list_conversation_entries call returned early")
        rss_waiting = cluster.rss()
        await asyncio.gather(*(guest.control.open() for guest in guests))

        async def deliver(i: int, guest: Guest) -> Sample:
            text = f"burst message {i}"
            posted = await guest.agent("message", {"text": text})
            page = await wait_for_message(guest, pendings[i], text)
            return Sample((page.returned_at - posted.sent_at) * 1000, page.server, holders[i])

        burst = time.perf_counter()
        samples = await asyncio.gather(*(deliver(i, g) for i, g in enumerate(guests)))
        all_ms = (time.perf_counter() - burst) * 1000
    finally:
        for pending in pendings:
            pending.cancel()
        await asyncio.gather(*pendings, return_exceptions=True)
    return BurstResult(list(samples), all_ms, setup_s, rss_before, rss_ready, rss_waiting, guests)


@dataclass(frozen=True)
class Footprint:
    """State per conversation once the guests of (d) and (e) are set up."""

    conversations: int
    setup_s: float
    rss_start: list[float]
    """each server's RSS just after it started"""
    rss: list[float]
    redis_keys: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Redis mode: kind of key (`log`, `session`, …) → (keys, bytes by MEMORY USAGE)"""
    used_memory_growth: int | None = None
    log_entries: int = 0
    """Redis mode: entries in the conversation logs"""

    @property
    def rss_per_conversation(self) -> float:
        return (sum(self.rss) - sum(self.rss_start)) * 1024 * 1024 / self.conversations

    @property
    def redis_bytes(self) -> int:
        return sum(size for _, size in self.redis_keys.values())


async def redis_usage(redis: Redis, prefix: str) -> dict[str, tuple[int, int]]:
    """Every key under the prefix, by kind: kind → (keys, bytes by `MEMORY USAGE … SAMPLES 0`)."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
    usage: dict[str, tuple[int, int]] = {}
    for chunk in chunks(keys, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.memory_usage(key, samples=0)
            sizes = await pipe.execute()
        for key, size in zip(chunk, sizes, strict=True):
            kind = key.decode()[len(prefix) :].split(":", 1)[0]
            count, total = usage.get(kind, (0, 0))
            usage[kind] = (count + 1, total + int(size or 0))
    return usage


async def journaled_entries(redis: Redis, prefix: str) -> int:
    """How many entries the conversation logs (`log:` streams) under the prefix hold."""
    keys = [key async for key in redis.scan_iter(match=f"{prefix}log:*", count=1000)]
    entries = 0
    for chunk in chunks(keys, 500):
        async with redis.pipeline(transaction=False) as pipe:
            for key in chunk:
                pipe.xlen(key)
            entries += sum(int(n) for n in await pipe.execute())
    return entries


async def local_redis_pid(redis: Redis) -> int | None:
    """Redis's process id if it runs on this machine."""
    pid = int((await redis.info("server"))["process_id"])
    return pid if is_redis(pid) else None


def is_redis(pid: int) -> bool:
    try:
        return b"redis" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


async def used_memory(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


@dataclass(frozen=True)
class SteadyResult:
    guests: int
    seconds: float
    samples: list[Sample]
    posted: int
    missing: int
    errors: list[str]
    lag_ms: float
    """how far behind its schedule the bench posted, at worst"""
    rss: list[float]
    cpu: dict[str, float]
    """process → its CPU use while the messages were posted, in % of one core"""

    @property
    def ok(self) -> bool:
        return (
            bool(self.samples)
            and self.missing == 0
            and pct([s.ms for s in self.samples], 0.95) <= TARGET_STEADY_P95_MS
        )


@dataclass
class Arrivals:
    """Which list_conversation_entries call brought each agent message; set `all_in` once every
    message posted has come."""

    pages: dict[str, Page] = field(default_factory=dict)
    awaited: set[str] = field(default_factory=set)
    posting: bool = True
    all_in: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, text: str, page: Page) -> None:
        self.pages.setdefault(text, page)
        self.awaited.discard(text)
        self._check()

    def posted(self, text: str) -> None:
        if text not in self.pages:
            self.awaited.add(text)

    def posting_done(self) -> None:
        self.posting = False
        self._check()

    def _check(self) -> None:
        if not self.posting and not self.awaited:
            self.all_in.set()


async def keep_reading(
    guest: Guest, first_wait: float, arrivals: Arrivals, errors: list[str]
) -> None:
    """Keep a list_conversation_entries call waiting, back to back, as a model relaying a chat
    does (a failed call is retried after a second)."""
    wait = first_wait
    while True:
        try:
            page = await guest.read(wait)
        except (BenchError, OSError, TimeoutError) as exc:
            errors.append(repr(exc))
            await asyncio.sleep(1.0)
            continue
        for text in agent_texts(page.content["entries"]):
            arrivals.arrived(text, page)
        wait = WAIT


async def steady_load(
    cluster: Cluster, guests: list[Guest], rate: float, seconds: float
) -> SteadyResult:
    """Every guest keeps a call waiting (the first ones staggered over WAIT, so that renewals
    spread out as they would in use) while agent messages are posted at `rate`, each to the next
    guest of a shuffled round."""
    n = len(guests)
    holders = await cluster.holders(guests)
    arrivals = Arrivals()
    errors: list[str] = []
    posted: dict[str, tuple[float, int]] = {}
    """text → (when its post was sent, the guest's index)"""
    readers = [
        asyncio.create_task(keep_reading(guest, max(1.0, WAIT * (i + 1) / n), arrivals, errors))
        for i, guest in enumerate(guests)
    ]
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(max(1.0, n / 200))  # every first call reaches a server and parks

        async def post(index: int, text: str) -> None:
            arrivals.posted(text)
            response = await guests[index].agent("message", {"text": text})
            posted[text] = (response.sent_at, index)

        order = random.Random(20).sample(range(n), n)
        total = max(1, round(rate * seconds))
        lag = 0.0
        posts: list[asyncio.Task[None]] = []
        started = loop.time()
        cpu_before = {name: cpu_seconds(pid) for name, pid in cluster.pids.items()}
        for k in range(total):
            delay = started + k / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                lag = max(lag, -delay)
            posts.append(asyncio.create_task(post(order[k % n], f"steady message {k}")))
        await asyncio.gather(*posts)
        elapsed = loop.time() - started
        rss = cluster.rss()
        cpu = {
            name: (cpu_seconds(pid) - cpu_before[name]) * 100 / elapsed
            for name, pid in cluster.pids.items()
        }
        arrivals.posting_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.all_in.wait(), WAIT + 5)
    finally:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    pages = arrivals.pages
    samples = [
        Sample((pages[text].returned_at - sent) * 1000, pages[text].server, holders[i])
        for text, (sent, i) in posted.items()
        if text in pages
    ]
    return SteadyResult(
        n, elapsed, samples, len(posted), len(posted) - len(samples), errors, lag * 1000, rss, cpu
    )


# -- one mode -------------------------------------------------------------------------------------


@dataclass
class ModeResult:
    mode: str
    single: list[Sample]
    single_ok: bool
    idle: IdleResult
    burst: BurstResult
    footprint: Footprint
    steady: SteadyResult

    @property
    def ok(self) -> bool:
        return self.single_ok and self.idle.ok and self.steady.ok


def server_env(
    sim_port: int, log_level: str, redis_url: str = "", key: str = "", prefix: str = ""
) -> dict[str, str]:
    """The environment of every server; REDIS_URL blank (unset) in memory mode, whatever the
    bench's own environment or `.env` say."""
    env = dict(os.environ)
    env.update(
        MIAW_SCRT_URL=f"http://{HOST}:{sim_port}",
        MIAW_ORG_ID=ORG,
        MIAW_ES_DEVELOPER_NAME=DEPLOYMENT,
        HOST=HOST,
        LOG_LEVEL=log_level,
        REDIS_URL=redis_url,
        STATE_ENCRYPTION_KEY=key,
        WEB_CONCURRENCY="1",
        # One load generator on one address stands for thousands of users: no abuse limits.
        RATE_LIMIT_PER_IP="off",
        RATE_LIMIT_PER_USER="off",
    )
    if prefix:
        env["REDIS_KEY_PREFIX"] = prefix
    return env


async def delete_prefix(redis: Redis, prefix: str) -> int:
    """SCAN + UNLINK every key under the prefix; how many were deleted."""
    deleted = 0
    for _ in range(3):  # keys a server wrote while the scan ran are caught by the next pass
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*", count=1000)]
        if not keys:
            break
        for chunk in chunks(keys, 500):
            deleted += int(await redis.unlink(*chunk))
    return deleted


async def run_mode(mode: str, args: argparse.Namespace) -> ModeResult:
    """Start the simulator and the servers of `mode`, measure, stop them (and, with Redis,
    delete the keys under the bench's prefix)."""
    count = REDIS_PROCESSES if mode == "redis" else 1
    sim_port, *ports = free_ports(1 + count)
    async with contextlib.AsyncExitStack() as stack:
        redis: Redis | None = None
        prefix = ""
        key = ""
        used_before = 0
        if mode == "redis":
            redis = Redis.from_url(args.redis_url)
            stack.push_async_callback(redis.aclose)
            try:
                used_before = await used_memory(redis)
            except (RedisError, OSError) as exc:
                raise BenchError(f"Redis at {args.redis_url} does not answer: {exc!r}") from exc
            prefix = f"bench:{secrets.token_hex(4)}:"
            key = secrets.token_urlsafe(32)

            async def cleanup() -> None:  # after the servers stopped (the stack unwinds)
                assert redis is not None
                deleted = await delete_prefix(redis, prefix)
                print(f"    deleted the {deleted} Redis keys under {prefix}", flush=True)

            stack.push_async_callback(cleanup)
        redis_url = args.redis_url if redis is not None else ""
        env = server_env(sim_port, args.server_log_level, redis_url, key, prefix)
        sim_args = ["simulator", "--port", str(sim_port), "--no-rate-limits"]
        sim = await stack.enter_async_context(
            run_server("simulator", sim_args, b"listening on", env)
        )
        servers: list[Server] = []
        for i, port in enumerate(ports):
            name = "MCP server" + (f" {chr(ord('A') + i)}" if count > 1 else "")
            server_args = ["serve", "--port", str(port)]
            servers.append(
                await stack.enter_async_context(
                    run_server(name, server_args, b"serving MCP at", {**env, "PORT": str(port)})
                )
            )
        cluster = Cluster(mode, sim, sim_port, servers, ports, redis=redis, prefix=prefix)
        if redis is not None:
            cluster.redis_pid = await local_redis_pid(redis)
        guests: list[Guest] = []
        control = Connection(sim_port)
        try:
            return await measure(cluster, args, guests, control, used_before)
        except (BenchError, OSError, TimeoutError, RedisError) as exc:
            crashed = cluster.crashed()
            raise BenchError(f"{mode}: {exc!r}" + (f"\n{crashed}" if crashed else "")) from exc
        finally:
            control.close()
            for guest in guests:
                guest.close()
    raise AssertionError("unreachable")


async def measure(
    cluster: Cluster,
    args: argparse.Namespace,
    guests: list[Guest],
    control: Connection,
    used_before: int,
) -> ModeResult:
    rss_start = cluster.rss()
    mode = cluster.mode
    health = await cluster.health()
    servers = ", ".join(
        f"{cluster.name(i)} pid {server.pid}"
        + (f" (process {body['process']})" if "process" in body else "")
        for i, (server, body) in enumerate(zip(cluster.servers, health, strict=True))
    )
    if any(body.get("state") != mode for body in health):
        raise BenchError(f"a server is not in {mode} mode: {health}")
    cluster.process_ids = [str(body.get("process", "")) for body in health]
    where = f", Redis key prefix {cluster.prefix}" if cluster.redis is not None else ""
    print(
        f"\n== {mode}: {len(cluster.servers)} MCP server process"
        f"{'es' if len(cluster.servers) > 1 else ''}: {servers}; simulator pid "
        f"{cluster.sim.pid}{where}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    first = await start_guest(cluster.ports, cluster.sim_port, "Jane Agent")
    guests.append(first)
    [holder] = await cluster.holders([first])
    shared = cluster.redis is not None
    p50_target, p95_target = TARGETS_MS[mode]
    single = await single_conversation_latency(first, args.messages, holder)
    values = [s.ms for s in single]
    single_ok = statistics.median(values) <= p50_target and pct(values, 0.95) <= p95_target
    alternation = (
        f" (reads alternating between A and B; the stream is held by {cluster.name(holder)})"
        if shared
        else ""
    )
    print(
        f"(a) agent message → tool return, 1 conversation, {args.messages} messages"
        f"{alternation}: {summary(values)}  [target p50 ≤ {p50_target:g} ms, "
        f"p95 ≤ {p95_target:g} ms: {verdict(single_ok)}]{by_holder(cluster, single)}",
        flush=True,
    )

    idle = await idle_cost(first, control, args.idle_seconds)
    print(
        f"(b) idle conversation, stream up, {idle.seconds:.1f} s, {idle.calls} waiting "
        f"calls{' (alternating between A and B)' if shared else ''}: "
        f"{idle.rest_per_minute:.2f} SCRT REST requests/min {idle.rest or '{}'}; SSE (re)connects "
        f"{idle.sse_opened}, open streams {idle.open_streams[0]}→{idle.open_streams[1]}"
        + (f" (held: {await cluster.event_streams()})" if shared else "")
        + f"  [target ≤ {TARGET_IDLE_PER_MIN:g}/min, every call answered: {verdict(idle.ok)}]",
        flush=True,
    )
    if idle.errors:
        print(
            f"    {len(idle.errors)} of the {idle.calls} waiting calls failed; first: "
            f"{idle.errors[0]}",
            flush=True,
        )

    n = args.conversations
    burst = await many_conversations(cluster, n, guests)
    spread = " (guest i's on process i mod 2)" if shared else ""
    print(
        f"(c) {n} conversations waiting at once{spread} (set up in {burst.setup_s:.1f} s), "
        f"1 agent message each, posted concurrently: {summary([s.ms for s in burst.samples])}; "
        f"all returned after {burst.all_ms:.0f} ms{by_holder(cluster, burst.samples)}",
        flush=True,
    )
    rss = "; ".join(
        f"{cluster.name(i)} {before:.1f} → {ready:.1f} → {waiting:.1f} MiB"
        for i, (before, ready, waiting) in enumerate(
            zip(burst.rss_before, burst.rss_ready, burst.rss_waiting, strict=True)
        )
    )
    growth = (sum(burst.rss_waiting) - sum(burst.rss_before)) * 1024 / n
    print(
        f"    MCP server RSS before the {n} guests → with their sessions + streams → with {n} "
        f"calls waiting: {rss} ({growth:.1f} KiB per guest)",
        flush=True,
    )

    wanted = args.waiting if shared else args.memory_waiting
    started = time.perf_counter()
    more = await add_guests(cluster, max(0, wanted - n), n, guests)
    setup_s = time.perf_counter() - started
    waiting = (burst.guests + more)[:wanted]
    footprint = Footprint(len(guests), setup_s, rss_start, cluster.rss())
    if cluster.redis is not None:
        footprint = Footprint(
            len(guests),
            setup_s,
            rss_start,
            footprint.rss,
            await redis_usage(cluster.redis, cluster.prefix),
            await used_memory(cluster.redis) - used_before,
            await journaled_entries(cluster.redis, cluster.prefix),
        )
    held = await cluster.event_streams() if shared else ""
    print_footprint(cluster, footprint, len(more), wanted < args.waiting, held)

    steady = await steady_load(cluster, waiting, args.rate, args.steady_seconds)
    print_steady(cluster, steady, args.rate)
    print(f"    load average (1 min) at the end: {os.getloadavg()[0]:.2f}", flush=True)
    return ModeResult(mode, single, single_ok, idle, burst, footprint, steady)


def print_footprint(
    cluster: Cluster, footprint: Footprint, added: int, smaller: bool, held: str
) -> None:
    n = footprint.conversations
    note = (
        " (--memory-waiting, fewer than --waiting: near 1,000 one process runs out of "
        "Salesforce connections, of which each event stream keeps one)"
        if smaller
        else ""
    )
    print(
        f"(d) {n} conversations{note}, {added} of them set up now in {footprint.setup_s:.1f} s"
        + (f"; event streams held: {held}" if held else "")
        + f"; MCP server RSS {' + '.join(f'{r:.1f}' for r in footprint.rss)} MiB: "
        f"{kib(footprint.rss_per_conversation)} per conversation above the servers' start",
        flush=True,
    )
    if cluster.redis is None:
        return
    kinds = ", ".join(
        f"{kind} {kib(size / n)} ({keys} keys)"
        for kind, (keys, size) in sorted(footprint.redis_keys.items(), key=lambda kv: -kv[1][1])
    )
    log_bytes = footprint.redis_keys.get("log", (0, 0))[1]
    if footprint.log_entries:
        kinds += (
            f"; the logs hold {footprint.log_entries / n:.1f} entries per conversation, "
            f"{log_bytes / footprint.log_entries:.0f} bytes each"
        )
    keys = sum(k for k, _ in footprint.redis_keys.values())
    total = footprint.redis_bytes
    growth = footprint.used_memory_growth or 0
    print(
        f"    Redis: {keys} keys under the prefix, MEMORY USAGE {total / 2**20:.2f} MiB = "
        f"{total / n:.0f} bytes ({kib(total / n)}) per conversation: {kinds}; "
        f"INFO used_memory grew by {growth / 2**20:.2f} MiB = "
        f"{kib(growth / n)} per conversation",
        flush=True,
    )


def print_steady(cluster: Cluster, steady: SteadyResult, rate: float) -> None:
    spread = " (each guest's calls alternating between A and B)" if cluster.redis else ""
    values = [s.ms for s in steady.samples]
    print(
        f"(e) {steady.guests} conversations waiting{spread}, {steady.posted} agent messages at "
        f"{rate:g}/s over {steady.seconds:.1f} s (the bench fell behind its schedule by at most "
        f"{steady.lag_ms:.0f} ms): {summary(values)}; {steady.missing} not delivered"
        f"  [target p95 ≤ {TARGET_STEADY_P95_MS:g} ms, all delivered: {verdict(steady.ok)}]"
        f"{by_holder(cluster, steady.samples)}",
        flush=True,
    )
    print(
        f"    MCP server RSS at the end of the load: "
        f"{', '.join(f'{cluster.name(i)} {r:.1f} MiB' for i, r in enumerate(steady.rss))}",
        flush=True,
    )
    cpu = ", ".join(f"{name} {share:.0f}" for name, share in steady.cpu.items())
    print(
        f"    CPU use while posting, in % of one core (the machine has {os.cpu_count()}): {cpu}",
        flush=True,
    )
    if steady.errors:
        print(
            f"    {len(steady.errors)} waiting call(s) failed (retried after 1 s); first: "
            f"{steady.errors[0]}",
            flush=True,
        )


# -- the two modes side by side -------------------------------------------------------------------


def p50_p95(values: list[float]) -> str:
    if not values:
        return "no samples"
    return f"{statistics.median(values):.1f} / {pct(values, 0.95):.1f} ms"


def print_summary(results: list[ModeResult]) -> None:
    def row(label: str, cells: list[str]) -> None:
        print(f"{label:<44}" + "".join(f"{cell:<38}" for cell in cells).rstrip(), flush=True)

    def apart(result: ModeResult, samples: list[Sample]) -> str:
        if result.mode != "redis":
            return "-"
        here = [s.ms for s in samples if s.server == s.holder]
        other = [s.ms for s in samples if s.server != s.holder]
        return f"{p50_p95(here)} | {p50_p95(other)}"

    print("\n== summary", flush=True)
    row(
        "",
        [
            f"redis ({REDIS_PROCESSES} processes)" if r.mode == "redis" else "memory (1 process)"
            for r in results
        ],
    )
    row(
        "(a) message → return p50 / p95",
        [f"{p50_p95([s.ms for s in r.single])}  {verdict(r.single_ok)}" for r in results],
    )
    row(
        "    target",
        [f"p50 ≤ {TARGETS_MS[r.mode][0]:g}, p95 ≤ {TARGETS_MS[r.mode][1]:g} ms" for r in results],
    )
    row("    on the holder | the other process", [apart(r, r.single) for r in results])
    row(
        f"(b) SCRT REST/idle min (≤ {TARGET_IDLE_PER_MIN:g})",
        [
            f"{r.idle.rest_per_minute:.2f}  "
            f"{verdict(r.idle.ok)}"
            + (f", {len(r.idle.errors)} of {r.idle.calls} calls failed" if r.idle.errors else "")
            for r in results
        ],
    )
    row(
        "(c) burst p50 / p95 (conversations)",
        [f"{p50_p95([s.ms for s in r.burst.samples])} ({len(r.burst.samples)})" for r in results],
    )
    row(
        "(d) RSS per conversation (conversations)",
        [f"{kib(r.footprint.rss_per_conversation)} ({r.footprint.conversations})" for r in results],
    )
    row(
        "    Redis MEMORY USAGE per conversation",
        [
            f"{r.footprint.redis_bytes / r.footprint.conversations:.0f} bytes = "
            f"{kib(r.footprint.redis_bytes / r.footprint.conversations)}"
            if r.mode == "redis"
            else "-"
            for r in results
        ],
    )
    row(
        f"(e) steady p50 / p95 (≤ {TARGET_STEADY_P95_MS:g} ms)",
        [f"{p50_p95([s.ms for s in r.steady.samples])}  {verdict(r.steady.ok)}" for r in results],
    )
    row(
        "    conversations, messages, lost, errors",
        [
            f"{r.steady.guests}, {r.steady.posted}, {r.steady.missing}, {len(r.steady.errors)}"
            for r in results
        ],
    )
    row("    on the holder | the other process", [apart(r, r.steady.samples) for r in results])


# -- main -------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> bool:
    print(
        f"delivery benchmark (machine: {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.2f} before start-up; mode {args.mode}, log level "
        f"{args.server_log_level})",
        flush=True,
    )
    modes = ["memory", "redis"] if args.mode == "both" else [args.mode]
    results = [await run_mode(mode, args) for mode in modes]
    print_summary(results)
    return all(result.ok for result in results)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--mode",
        default="both",
        choices=["memory", "redis", "both"],
        help="memory: 1 process; redis: 2 processes sharing Redis; both (default): side by side",
    )
    parser.add_argument("--messages", type=int, default=200, help="messages for (a)")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="idle window for (b)")
    parser.add_argument("--conversations", type=int, default=200, help="conversations for (c)")
    parser.add_argument(
        "--waiting", type=int, default=1000, help="conversations waiting in (d) and (e), Redis"
    )
    parser.add_argument(
        "--memory-waiting",
        type=int,
        default=900,
        help="conversations waiting in (d) and (e) in memory mode (one process cannot hold 1,000)",
    )
    parser.add_argument("--rate", type=float, default=20.0, help="agent messages per second (e)")
    parser.add_argument(
        "--steady-seconds", type=float, default=30.0, help="how long (e) posts messages"
    )
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/0",
        help="the Redis of redis mode (keys go under a fresh bench:<random>: prefix)",
    )
    parser.add_argument(
        "--server-log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="LOG_LEVEL of the MCP servers (INFO is their default)",
    )
    args = parser.parse_args()
    if min(args.messages, args.conversations, args.waiting, args.memory_waiting) < 1:
        parser.error("--messages, --conversations, --waiting, --memory-waiting must be ≥ 1")
    if args.idle_seconds <= 0 or args.rate <= 0 or args.steady_seconds <= 0:
        parser.error("--idle-seconds, --rate and --steady-seconds must be > 0")
    return args


if __name__ == "__main__":
    try:
        passed = asyncio.run(main(parse_args()))
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if passed else 1)
