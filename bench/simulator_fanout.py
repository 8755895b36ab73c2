"""Simulator capacity: 500 guests, each with a conversation and an open SSE stream, in one process.

Runs `miaw-mcp simulator` as a subprocess on a loopback port and prints:
  - the simulator's resident memory before and after opening everything;
  - a burst: one agent message posted to each of the 500 conversations at once, with the latency
    from posting to arrival on that conversation's stream (p50/p95/max) and the time until all
    arrived (the bench client shares the 2 cores, so this is an upper bound);
  - fan-out: 500 streams of one subject (continuation tokens, like 500 tabs), one agent message,
    and the time until every stream has it.

Usage: .venv/bin/python bench/simulator_fanout.py [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

ORG = "00D000000000001EAA"
DEPLOYMENT = "Demo_Custom_Client"
V2 = "/iamessage/api/v2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.asynccontextmanager
async def simulator() -> AsyncIterator[tuple[str, int]]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        "simulator",
        "--port",
        str(port),
        "--no-rate-limits",
        "--ping-interval",
        "15",
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            line = await proc.stdout.readline()  # printed once the server accepts connections
        if b"listening on" not in line:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        await proc.wait()


class Listener:
    """One SSE stream; resolves a future when a message with a given text arrives."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.opened = asyncio.Event()

    def expect(self, text: str) -> asyncio.Future[float]:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[text] = fut
        return fut

    async def run(self, http: httpx.AsyncClient, token: str, last_event_id: str) -> None:
        headers = {
            "Authorization": f"Bearer {token}",
            "X-Org-Id": ORG[:15],
            "Last-Event-Id": last_event_id,
            "Accept": "text/event-stream",
        }
        async with http.stream("GET", "/eventrouter/v1/sse", headers=headers) as response:
            response.raise_for_status()
            self.opened.set()
            async for line in response.aiter_lines():
                if not line.startswith("data: {"):
                    continue
                entry = json.loads(line[6:])["conversationEntry"]
                if entry["entryType"] != "Message":
                    continue
                payload = json.loads(entry["entryPayload"])
                text = payload["abstractMessage"]["staticContent"].get("text")
                fut = self.waiting.pop(text, None)
                if fut is not None and not fut.done():
                    fut.set_result(time.perf_counter())


async def guest(http: httpx.AsyncClient) -> tuple[str, str]:
    body = {
        "orgId": ORG,
        "esDeveloperName": DEPLOYMENT,
        "capabilitiesVersion": "1",
        "platform": "Web",
        "context": {"appName": "bench", "clientVersion": "1"},
    }
    r = await http.post(V2 + "/authorization/unauthenticated/access-token", json=body)
    r.raise_for_status()
    return r.json()["accessToken"], r.json()["lastEventId"]


async def open_conversation(
    http: httpx.AsyncClient, tasks: list[asyncio.Task[None]]
) -> tuple[Listener, str]:
    token, last = await guest(http)
    listener = Listener()
    tasks.append(asyncio.create_task(listener.run(http, token, last)))
    await listener.opened.wait()
    conversation_id = str(uuid.uuid4())
    r = await http.post(
        V2 + "/conversation",
        headers={"Authorization": f"Bearer {token}"},
        json={"conversationId": conversation_id, "esDeveloperName": DEPLOYMENT},
    )
    r.raise_for_status()
    return listener, conversation_id


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> None:
    limits = httpx.Limits(max_connections=n + 50, max_keepalive_connections=n + 50)
    timeout = httpx.Timeout(30.0, read=60.0)
    async with (
        simulator() as (base, pid),
        httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as http,
    ):
        rss_idle = rss_mib(pid)
        tasks: list[asyncio.Task[None]] = []
        started = time.perf_counter()
        opened: list[tuple[Listener, str]] = []
        for start in range(0, n, 50):  # 50 guests at a time, like a busy org
            opened += await asyncio.gather(
                *(open_conversation(http, tasks) for _ in range(start, min(n, start + 50)))
            )
        listeners = [listener for listener, _ in opened]
        conversations = [cid for _, cid in opened]
        setup_s = time.perf_counter() - started
        stats = (await http.get("/control/stats")).json()
        for cid in conversations:
            r = await http.post(
                f"/control/conversations/{cid}/agent/join", json={"name": "Bench Agent"}
            )
            r.raise_for_status()
        rss_loaded = rss_mib(pid)

        # Burst: one agent message into each of the n conversations at once.
        futures = [lst.expect(f"burst {i}") for i, lst in enumerate(listeners)]
        sent_at: list[float] = [0.0] * n

        async def post(i: int, cid: str) -> None:
            sent_at[i] = time.perf_counter()
            r = await http.post(
                f"/control/conversations/{cid}/agent/message", json={"text": f"burst {i}"}
            )
            r.raise_for_status()

        burst_start = time.perf_counter()
        await asyncio.gather(*(post(i, cid) for i, cid in enumerate(conversations)))
        arrived = await asyncio.wait_for(asyncio.gather(*futures), 60)
        burst_total = max(arrived) - burst_start
        latencies = [(a - s) * 1000 for a, s in zip(arrived, sent_at, strict=True)]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

        # Fan-out: n streams of one subject, one event.
        token, last = await guest(http)
        fan: list[Listener] = []
        fan_tasks: list[asyncio.Task[None]] = []
        for _ in range(n):
            r = await http.get(
                V2 + "/authorization/continuation-access-token",
                headers={"Authorization": f"Bearer {token}"},
            )
            lst = Listener()
            fan.append(lst)
            fan_tasks.append(asyncio.create_task(lst.run(http, r.json()["accessToken"], last)))
        await asyncio.gather(*(lst.opened.wait() for lst in fan))
        cid = str(uuid.uuid4())
        await http.post(
            V2 + "/conversation",
            headers={"Authorization": f"Bearer {token}"},
            json={"conversationId": cid, "esDeveloperName": DEPLOYMENT},
        )
        await http.post(f"/control/conversations/{cid}/agent/join", json={"name": "Fan Agent"})
        fan_futures = [lst.expect("fan-out") for lst in fan]
        fan_start = time.perf_counter()
        r = await http.post(f"/control/conversations/{cid}/agent/message", json={"text": "fan-out"})
        r.raise_for_status()
        fan_arrived = await asyncio.wait_for(asyncio.gather(*fan_futures), 60)
        fan_stats = (await http.get("/control/stats")).json()
        for t in fan_tasks:
            t.cancel()
        await asyncio.gather(*fan_tasks, return_exceptions=True)

    print(f"simulator capacity benchmark, n={n} (machine: {os.cpu_count()} cores)")
    print(
        f"  set-up of {n} guests + streams + conversations: {setup_s:.2f} s; "
        f"open SSE streams reported: {stats['openSseStreams']}"
    )
    print(
        f"  simulator RSS: idle {rss_idle:.1f} MiB, with {n} streams + conversations "
        f"{rss_loaded:.1f} MiB ({(rss_loaded - rss_idle) * 1024 / n:.1f} KiB each)"
    )
    print(
        f"  burst, 1 agent message into each of {n} conversations at once: all delivered in "
        f"{burst_total * 1000:.0f} ms; post→stream latency "
        f"p50 {statistics.median(latencies):.1f} ms, "
        f"p95 {pct(latencies, 0.95):.1f} ms, max {max(latencies):.1f} ms"
    )
    print(
        f"  fan-out, 1 event to {n} streams of one subject: last stream after "
        f"{(max(fan_arrived) - fan_start) * 1000:.1f} ms, median "
        f"{(statistics.median(fan_arrived) - fan_start) * 1000:.1f} ms "
        f"(open streams: {fan_stats['openSseStreams']})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    asyncio.run(main(parser.parse_args().n))
