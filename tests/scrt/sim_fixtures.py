"""Fixtures for running the real `ScrtClient` against the simulator on a loopback port.

`sim_environments()` yields a factory that starts the simulator (wrapped in a `Gate`, see below)
with `serve()`, one shared `httpx.AsyncClient` for the SCRT client (as in production: one per
process, every call carries its own token) and a separate control client. `collect(...)` runs
`client.event_stream(...)` in a background task and lets a test wait for events with a deadline.

Nothing here sleeps to wait for something: waits are on events (`asyncio.Event`) under
`asyncio.timeout` deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from app.scrt import ReconnectPolicy, RetryPolicy, ScrtClient, ScrtConfig, ScrtEvent
from app.scrt.events import TokenSource
from app.simulator import SimulatedOrg, SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.miaw import (  # noqa: F401  (re-exported to the test modules)
    CLOSE_CONVERSATION,
    DELIVERY_ACK,
    MESSAGE,
    PARTICIPANT_CHANGED,
    QUEUE_POSITION,
    READ_ACK,
    ROUTING_RESULT,
    ROUTING_WORK_RESULT,
    SESSION_STATUS_CHANGED,
    TYPING_STARTED,
    TYPING_STOPPED,
)
from tests.servers import serve

Json = dict[str, Any]

DEADLINE = 30.0  # a safety deadline: generous, since it only bounds a failing wait
ORG_ID = DEFAULT_ORG_ID
DEPLOYMENT = DEFAULT_DEPLOYMENT
JWT_SECRET = "scrt-client-tests-secret-0123456789abcdef"

V2 = "/iamessage/api/v2"
MESSAGE_ROUTE = V2 + "/conversation/{conversationId}/message"
SSE_ROUTE = "/eventrouter/v1/sse"


# Events that only travel on the stream (docs/simulator.md): not in the transcript.
EPHEMERAL_EVENTS = frozenset(
    {TYPING_STARTED, TYPING_STOPPED, DELIVERY_ACK, READ_ACK, QUEUE_POSITION}
)

FAST_RECONNECT = ReconnectPolicy(base_delay=0.05, max_delay=0.1, multiplier=1.5, max_failures=5)
FAST_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, total_timeout=15.0)
# Room for a held attempt's timeout, the reconciliation and the retry on a loaded machine.
PATIENT_RETRY = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, total_timeout=20.0)


def sim_options(**overrides: Any) -> SimulatorOptions:
    """Fast, deterministic defaults: no rate limits, no think time, pings out of the way."""
    values: dict[str, Any] = {
        "rate_limits": False,
        "actor_delay": 0.0,
        "ping_interval": 60.0,
        "jwt_secret": JWT_SECRET,
    }
    values.update(overrides)
    return SimulatorOptions(**values)


def claims_of(token: str) -> Json:
    """The claims of one of the simulator's access tokens (signature checked)."""
    claims: Json = jwt.decode(
        token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    return claims


# -- a gate in front of the simulator ---------------------------------------------------------


@dataclass
class Hold:
    """Withholds one request from the client's view.

    By default the answer is held: the simulator does the work (`handled`), the client hears
    nothing until `release` is set (the "answer lost" case of an idempotent retry). With
    `late=True` the request itself is held: the gate takes it whole (`arrived`) and passes it to
    the simulator only once `release` is set (a request delayed in the network past the client's
    timeout, landing after the client's next attempt).
    """

    method: str
    path_glob: str
    late: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    handled: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and fnmatch.fnmatchcase(path, self.path_glob)

    @property
    def seen(self) -> asyncio.Event:
        """Set once the request is as far as it gets before `release`."""
        return self.arrived if self.late else self.handled


class Gate:
    """ASGI wrapper: counts in-flight SCRT REST requests (so a test can wait for a delayed request
    to finish server-side) and withholds the requests or answers picked with `hold`."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._holds: list[Hold] = []
        self.holds: list[Hold] = []

    def hold(self, method: str, path_glob: str, *, late: bool = False) -> Hold:
        hold = Hold(method, path_glob, late=late)
        self._holds.append(hold)
        self.holds.append(hold)
        return hold

    def release_all(self) -> None:
        for hold in self.holds:
            hold.release.set()

    async def idle(self, deadline: float = DEADLINE) -> None:
        """Return once no SCRT REST request is being handled (the SSE stream does not count)."""
        async with asyncio.timeout(deadline):
            await self._idle.wait()

    def _take(self, method: str, path: str) -> Hold | None:
        for hold in self._holds:
            if hold.matches(method, path):
                self._holds.remove(hold)
                return hold
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(V2):
            await self.app(scope, receive, send)
            return
        hold = self._take(scope["method"], scope["path"])
        self._in_flight += 1
        self._idle.clear()
        try:
            if hold is None:
                await self.app(scope, receive, send)
            elif hold.late:
                await self._late(hold, scope, receive, send)
            else:
                await self._answer_held(hold, scope, receive, send)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def _late(self, hold: Hold, scope: Scope, receive: Receive, send: Send) -> None:
        # Read the body first: once the client has given up, the server would hand the app a
        # disconnect instead of it.
        body: list[Message] = []
        while not body or body[-1].get("more_body", False):
            message = await receive()
            if message["type"] != "http.request":
                return
            body.append(message)
        hold.arrived.set()
        await hold.release.wait()

        async def replay() -> Message:
            return body.pop(0) if body else await receive()

        await self.app(scope, replay, send)
        hold.handled.set()

    async def _answer_held(self, hold: Hold, scope: Scope, receive: Receive, send: Send) -> None:
        answer: list[Message] = []

        async def keep(message: Message) -> None:
            answer.append(message)

        hold.arrived.set()
        await self.app(scope, receive, keep)
        hold.handled.set()
        await hold.release.wait()
        with contextlib.suppress(Exception):  # the client is long gone
            for message in answer:
                await send(message)


class GivesUpOnce(httpx.AsyncBaseTransport):
    """The client's transport, impatient once: the request the gate holds with `hold` gets a 0.3 s
    read timeout (every other request the client's own), and its timeout is raised only once the
    gate has it as far as it goes (`hold.seen`). So the client's next step is ordered after the held
    request by events, not by a race of real delays, and is never short of time on a busy machine.
    """

    READ_TIMEOUT = 0.3

    def __init__(self, hold: Hold) -> None:
        self._hold: Hold | None = hold
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        hold = self._hold
        if hold is None or not hold.matches(request.method, request.url.path):
            return await self._inner.handle_async_request(request)
        self._hold = None
        timeouts = dict(request.extensions.get("timeout", {}))
        request.extensions["timeout"] = {**timeouts, "read": self.READ_TIMEOUT}
        try:
            return await self._inner.handle_async_request(request)
        except httpx.ReadTimeout:
            async with asyncio.timeout(DEADLINE):
                await hold.seen.wait()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- the environment ------------------------------------------------------------------------


@dataclass
class SimEnv:
    app: Starlette
    gate: Gate
    base_url: str
    http: httpx.AsyncClient
    """Shared by every `ScrtClient` of the test (no default headers, like production)."""
    control: httpx.AsyncClient
    config: ScrtConfig
    client: ScrtClient
    exit_stack: contextlib.AsyncExitStack

    @property
    def org(self) -> SimulatedOrg:
        org: SimulatedOrg = self.app.state.simulator
        return org

    def scrt(
        self, *, retry: RetryPolicy | None = None, http: httpx.AsyncClient | None = None
    ) -> ScrtClient:
        return ScrtClient(http or self.http, self.config, retry=retry or FAST_RETRY)

    async def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """Another httpx client (e.g. with a short timeout), closed at teardown."""
        client = httpx.AsyncClient(**kwargs)
        return await self.exit_stack.enter_async_context(client)

    async def gives_up_on(self, hold: Hold, *, retry: RetryPolicy = PATIENT_RETRY) -> ScrtClient:
        """A client with the usual 10 s timeouts that times out on the request `hold` withholds,
        and only on that one (see `GivesUpOnce`)."""
        http = await self.http_client(transport=GivesUpOnce(hold), timeout=10.0)
        return self.scrt(http=http, retry=retry)

    async def control_ok(self, method: str, path: str, body: Json | None = None) -> Any:
        response = await self.control.request(method, f"/control{path}", json=body)
        assert response.is_success, (response.status_code, response.text)
        return response.json() if response.content else None

    async def agent(self, cid: str, action: str, body: Json | None = None) -> Json:
        result: Json = await self.control_ok("POST", f"/conversations/{cid}/agent/{action}", body)
        return result

    async def agent_says(self, cid: str, text: str) -> str:
        return str((await self.agent(cid, "message", {"text": text}))["entryId"])

    async def fault(self, **body: Any) -> Json:
        result: Json = await self.control_ok("POST", "/faults", body)
        return result

    async def faults(self) -> list[Json]:
        result: list[Json] = (await self.control_ok("GET", "/faults"))["faults"]
        return result

    async def cut_streams(self) -> int:
        return int((await self.control_ok("POST", "/faults", {"cutStreams": True}))["cut"])

    async def requests(self, method: str, route: str) -> int:
        """How many requests the simulator received for `METHOD /route/template`."""
        stats = await self.control_ok("GET", "/stats")
        return int(stats["requests"].get(f"{method} {route}", 0))

    async def conversation(self, cid: str) -> Json:
        body = await self.control_ok("GET", "/conversations")
        found = [c for c in body["conversations"] if c["conversationId"] == cid]
        assert len(found) == 1, found
        conversation: Json = found[0]
        return conversation

    async def transcript(self, cid: str) -> list[Json]:
        entries: list[Json] = (await self.conversation(cid))["entries"]
        return entries

    async def end_user_messages(self, cid: str) -> list[Json]:
        return [
            e
            for e in await self.transcript(cid)
            if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
        ]


EnvFactory = Callable[..., Awaitable[SimEnv]]


@contextlib.asynccontextmanager
async def sim_environments() -> AsyncIterator[EnvFactory]:
    """Yield `make(retry=..., in_process=False, **SimulatorOptions overrides)`; everything is torn
    down on exit. `in_process=True` skips the socket (httpx's ASGITransport, REST only, no SSE), so
    a test can run on a fake loop clock (looptime) where requests take no time at all."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(
            *, retry: RetryPolicy | None = None, in_process: bool = False, **overrides: Any
        ) -> SimEnv:
            app = build_simulator(sim_options(**overrides))
            org: SimulatedOrg = app.state.simulator
            stack.push_async_callback(org.aclose)
            gate = Gate(app)
            transport: httpx.AsyncBaseTransport | None = None
            if in_process:
                base_url = "http://simulator"
                transport = httpx.ASGITransport(app=gate)
            else:
                base_url = await stack.enter_async_context(serve(gate))
            stack.callback(gate.release_all)  # before the server stops: no answer stays held
            http = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, timeout=10.0)
            )
            control = await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url=base_url, timeout=10.0)
            )
            config = ScrtConfig(scrt_url=base_url, org_id=ORG_ID, es_developer_name=DEPLOYMENT)
            client = ScrtClient(http, config, retry=retry or FAST_RETRY)
            return SimEnv(app, gate, base_url, http, control, config, client, stack)

        yield make


# -- collecting events ----------------------------------------------------------------------

Predicate = Callable[[ScrtEvent], bool]


def match(
    event_type: str | None = None,
    *,
    cid: str | None = None,
    role: str | None = None,
    identifier: str | None = None,
    text: str | None = None,
    where: Predicate | None = None,
) -> Predicate:
    def predicate(event: ScrtEvent) -> bool:
        entry = event.entry
        if event_type is not None and event.event_type != event_type:
            return False
        if cid is not None and event.conversation_id != cid:
            return False
        if role is not None and (entry is None or entry.role != role):
            return False
        if identifier is not None and (entry is None or entry.identifier != identifier):
            return False
        if text is not None and (entry is None or entry.text != text):
            return False
        return where is None or where(event)

    return predicate


class Collector:
    """Every event of one `event_stream`, gathered by a background task."""

    def __init__(self, client: ScrtClient, token: TokenSource, last_event_id: str | None) -> None:
        self.stream = client.event_stream(
            token, last_event_id=last_event_id, reconnect=FAST_RECONNECT, read_timeout=30.0
        )
        self.events: list[ScrtEvent] = []
        self.error: BaseException | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async with self.stream:
                async for event in self.stream:
                    self.events.append(event)
                    self._changed.set()
        except Exception as exc:  # reported by the next wait
            self.error = exc
        finally:
            self._changed.set()

    @property
    def finished(self) -> bool:
        return self._task is not None and self._task.done()

    async def wait_for(self, predicate: Predicate, deadline: float = DEADLINE) -> ScrtEvent:
        """The first collected event matching `predicate` (already collected or still to come)."""
        async with asyncio.timeout(deadline):
            index = 0
            while True:
                for event in self.events[index:]:
                    if predicate(event):
                        return event
                index = len(self.events)
                if self.finished:
                    raise AssertionError(f"the event stream stopped: {self.error!r}")
                self._changed.clear()
                await self._changed.wait()

    async def wait_end(self, deadline: float = DEADLINE) -> BaseException | None:
        """Wait for the stream to stop by itself; return what stopped it."""
        assert self._task is not None
        async with asyncio.timeout(deadline):
            await asyncio.shield(self._task)
        return self.error

    def matching(self, predicate: Predicate) -> list[ScrtEvent]:
        return [e for e in self.events if predicate(e)]

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def collect(
    client: ScrtClient, token: TokenSource, last_event_id: str | None
) -> AsyncIterator[Collector]:
    collector = Collector(client, token, last_event_id)
    collector.start()
    try:
        yield collector
    finally:
        await collector.stop()
