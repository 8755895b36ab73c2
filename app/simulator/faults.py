"""Fault injection and request statistics, as one pure-ASGI middleware (streams stay streaming).

Faults with a probability below 1 draw from one `random.Random` seeded from the options (or the
control API), one draw per matching request, so a run replays exactly for the same seed and the
same order of requests. Periodic stream cuts run in a background task (`PeriodicCuts`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import itertools
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.simulator.options import FaultSpec, SimulatorOptions

Json = dict[str, Any]


def route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    body = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{body}$")


@dataclass
class Fault:
    id: int
    path: str
    method: str | None
    count: int | None
    """Hits left; None: no limit."""
    status: int | None = None
    delay: float | None = None
    body: Json | None = None
    probability: float = 1.0
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        if "*" in self.path or "?" in self.path:
            return fnmatch.fnmatchcase(path, self.path)
        if "{" in self.path:
            if self._regex is None:
                self._regex = template_regex(self.path)
            return bool(self._regex.match(path))
        return path == self.path

    def as_json(self) -> Json:
        return {
            "id": self.id,
            "path": self.path,
            "method": self.method,
            "remaining": self.count,
            "status": self.status,
            "delay": self.delay,
            "probability": self.probability,
        }


class PeriodicCuts:
    """Cuts every open SSE stream every `period` seconds, from one background task.

    Started by the app's lifespan (or by the first request when no lifespan runs, e.g. under a
    mount) and stopped by the lifespan's shutdown; changing the period restarts the task.
    """

    def __init__(self, cut: Callable[[], int], period: float | None) -> None:
        self._cut = cut
        self.period = period
        self.rounds = 0
        self.streams_cut = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def ensure_started(self) -> None:
        """Start the task if a period is set and it is not running (needs a running loop)."""
        if self.period is not None and not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(self.period))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def set_period(self, period: float | None) -> None:
        await self.stop()
        self.period = period
        self.ensure_started()

    async def _run(self, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            self.streams_cut += self._cut()
            self.rounds += 1


class FaultBook:
    """Pending faults, their random source, periodic cuts and request counters; shared by the
    middleware and the control API. `reset` returns all of it to the options' start-up state."""

    def __init__(self, options: SimulatorOptions, cut_streams: Callable[[], int]) -> None:
        self.options = options
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self.seed = options.fault_seed
        self.rng = random.Random(self.seed)
        self.cuts = PeriodicCuts(cut_streams, options.cut_streams_every)
        self._ids = itertools.count(1)
        self._arm_startup_faults()

    def _arm_startup_faults(self) -> None:
        for spec in self.options.faults:
            self.add(spec)

    def add(self, spec: FaultSpec, body: Json | None = None) -> Fault:
        fault = Fault(
            next(self._ids),
            spec.path,
            spec.method.upper() if spec.method is not None else None,
            spec.count,
            spec.status,
            spec.delay,
            body,
            spec.probability,
        )
        self.faults.append(fault)
        return fault

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)

    def take(self, method: str, path: str) -> Fault | None:
        """The first matching fault that hits this request; a miss leaves its count alone."""
        for fault in self.faults:
            if not fault.matches(method, path):
                continue
            # Only probabilistic faults draw, so certain ones leave the sequence of draws alone.
            if fault.probability < 1 and self.rng.random() >= fault.probability:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
            return fault
        return None

    async def clear(self) -> None:
        """Disarm every fault, periodic cuts included."""
        self.faults.clear()
        await self.cuts.set_period(None)

    async def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()
        self.cuts.rounds = self.cuts.streams_cut = 0
        self.reseed(self.options.fault_seed)
        self._arm_startup_faults()
        await self.cuts.set_period(self.options.cut_streams_every)


async def buffered(receive: Receive) -> Receive:
    """Read the request body now; replay it to the app, then pass the rest through."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return replay


class FaultMiddleware:
    def __init__(self, app: ASGIApp, book: FaultBook, routes: list[Route]) -> None:
        self.app = app
        self.book = book
        self.routes = routes

    def template(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return route.path
        return route_path(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan scopes have no path
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path.startswith("/control") or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
        self.book.cuts.ensure_started()
        method = scope["method"]
        self.book.requests[f"{method} {self.template(scope)}"] += 1
        fault = self.book.take(method, path)
        if fault is not None and fault.delay:
            # Take the whole request first, like a slow server that received it: a client that
            # gives up meanwhile must not stop the work (its answer is what gets lost).
            receive = await buffered(receive)
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            body = fault.body or {
                "message": "Injected fault from the simulator's control API.",
                "errorCode": "SERVER_ERROR" if fault.status >= 500 else "INJECTED_FAULT",
            }
            raw = json.dumps(body).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": fault.status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(raw)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": raw})
            return
        await self.app(scope, receive, send)
