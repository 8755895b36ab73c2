"""Fault injection and request statistics, as one pure-ASGI middleware (streams stay streaming)."""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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
    count: int
    status: int | None = None
    delay: float | None = None
    body: Json | None = None
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
        }


class FaultBook:
    """Pending faults and request counters; shared by the middleware and the control API."""

    def __init__(self) -> None:
        self.faults: list[Fault] = []
        self.requests: Counter[str] = Counter()
        self._ids = itertools.count(1)

    def add(
        self,
        path: str,
        *,
        method: str | None,
        count: int,
        status: int | None,
        delay: float | None,
        body: Json | None,
    ) -> Fault:
        fault = Fault(next(self._ids), path, method, count, status, delay, body)
        self.faults.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        self.faults.clear()
        self.requests.clear()


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
        path = route_path(scope)
        if scope["type"] != "http" or path.startswith("/control") or scope["method"] == "OPTIONS":
            await self.app(scope, receive, send)
            return
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
