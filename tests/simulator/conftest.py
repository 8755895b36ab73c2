"""Fixtures and helpers for the simulator's test suite.

`sim` drives the app in-process through httpx's ASGITransport (plain REST only: that transport
buffers whole responses). `live` also serves the same app on a real loopback port
(tests/servers.py), which the SSE stream needs; its REST calls still go through ASGITransport (same
app object, same state): ~40x faster than loopback round trips. Both expose the same `Sim` helper.

Nothing here sleeps: a test waits for an SSE frame (or a server-side condition observed through real
requests) with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx
import jwt
import pytest
from starlette.applications import Starlette

from app.simulator import SimulatorOptions, build_simulator
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

API = "/iamessage/api/v2"
SSE_PATH = "/eventrouter/v1/sse"
DEADLINE = 30.0  # a safety deadline: generous, since it only bounds a failing wait

ORG_ID = "00D000000000001EAA"
ORG_ID15 = ORG_ID[:15]
DEPLOYMENT = "Demo_Custom_Client"
JWT_SECRET = "test-secret-of-the-simulated-org-0123456789"


# Entry types that only travel on the event stream (docs/simulator.md, "Scripted actors").
STREAM_ONLY_TYPES = frozenset(
    {
        "TypingStartedIndicator",
        "TypingStoppedIndicator",
        "DeliveryAcknowledgement",
        "ReadAcknowledgement",
        "QueuePosition",
    }
)


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


def new_id() -> str:
    return str(uuid.uuid4())


def claims_of(token: str) -> Json:
    """Decode and verify one of the simulator's access tokens (HS256 with the configured secret)."""
    claims: Json = jwt.decode(
        token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False}
    )
    return claims


def assert_error(response: httpx.Response, status: int, error_code: str | None = None) -> Json:
    """A REST error: the status and a `{"message", "errorCode"}` body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert isinstance(body.get("errorCode"), str) and body["errorCode"], body
    if error_code is not None:
        assert body["errorCode"] == error_code, body
    return body


def assert_spring_error(response: httpx.Response, status: int, path: str = SSE_PATH) -> Json:
    """An event-router error, Spring Boot style: `{timestamp, status, error, message, path}`."""
    assert response.status_code == status, response.text
    body: Json = response.json()
    assert set(body) >= {"timestamp", "status", "error", "message", "path"}, body
    assert body["status"] == status
    assert body["path"] == path
    return body


# -- SSE frames ------------------------------------------------------------------------------


@dataclass
class Frame:
    """One server-sent event: `id:`, `event:` and the (joined) `data:` lines."""

    id: str | None
    event: str | None
    data: str

    @property
    def is_ping(self) -> bool:
        return self.event == "ping"

    def json(self) -> Json:
        value: Json = json.loads(self.data)
        return value

    @property
    def conversation_id(self) -> str:
        return str(self.json()["conversationId"])

    @property
    def entry(self) -> Json:
        entry: Json = self.json()["conversationEntry"]
        return entry

    @property
    def payload(self) -> Json:
        raw = self.entry["entryPayload"]
        assert isinstance(raw, str), f"entryPayload on SSE must be a JSON string, got {raw!r}"
        value: Json = json.loads(raw)
        return value

    @property
    def role(self) -> str:
        return str(self.entry["sender"]["role"])

    @property
    def display_name(self) -> str:
        return str(self.entry["senderDisplayName"])

    @property
    def identifier(self) -> str:
        return str(self.entry["identifier"])

    @property
    def text(self) -> str | None:
        """The text of a Message entry (None for other entries)."""
        if self.event != MESSAGE:
            return None
        content = self.payload["abstractMessage"].get("staticContent") or {}
        text = content.get("text")
        return text if isinstance(text, str) else None


Predicate = Callable[[Frame], bool]


def match(
    event: str | None = None,
    *,
    cid: str | None = None,
    role: str | None = None,
    text: str | None = None,
    identifier: str | None = None,
    where: Callable[[Frame], bool] | None = None,
) -> Predicate:
    """A predicate on non-ping frames; every given criterion must hold."""

    def predicate(frame: Frame) -> bool:
        if frame.is_ping:
            return False
        if event is not None and frame.event != event:
            return False
        if cid is not None and frame.conversation_id != cid:
            return False
        if role is not None and frame.role != role:
            return False
        if text is not None and frame.text != text:
            return False
        if identifier is not None and frame.identifier != identifier:
            return False
        return where is None or where(frame)

    return predicate


class SseStream:
    """Reads frames off an open `/eventrouter/v1/sse` response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.frames: list[Frame] = []  # every non-ping frame read so far
        self.pings: list[Frame] = []
        self.ended = False

    async def _read_frame(self) -> Frame | None:
        frame_id: str | None = None
        event: str | None = None
        data: list[str] = []
        seen = False
        while True:
            try:
                line = await anext(self._lines)
            except (StopAsyncIteration, httpx.RemoteProtocolError, httpx.ReadError):
                self.ended = True
                return None
            if line == "":
                if seen:
                    return Frame(frame_id, event, "\n".join(data))
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            seen = True
            if name == "id":
                frame_id = value
            elif name == "event":
                event = value
            elif name == "data":
                data.append(value)

    async def next(self, deadline: float = DEADLINE) -> Frame | None:
        """The next frame (pings included), or None once the server ended the stream."""
        async with asyncio.timeout(deadline):
            frame = await self._read_frame()
        if frame is not None:
            (self.pings if frame.is_ping else self.frames).append(frame)
        return frame

    async def until(self, predicate: Predicate, deadline: float = DEADLINE) -> list[Frame]:
        """Non-ping frames read up to and including the first one matching `predicate`."""
        got: list[Frame] = []
        async with asyncio.timeout(deadline):
            while True:
                frame = await self._read_frame()
                if frame is None:
                    raise AssertionError(
                        "stream ended before the expected frame; got "
                        + repr([(f.event, f.data[:80]) for f in got])
                    )
                if frame.is_ping:
                    self.pings.append(frame)
                    continue
                self.frames.append(frame)
                got.append(frame)
                if predicate(frame):
                    return got

    async def wait_for(self, predicate: Predicate, deadline: float = DEADLINE) -> Frame:
        return (await self.until(predicate, deadline))[-1]

    async def until_count(
        self, predicate: Predicate, count: int, deadline: float = DEADLINE
    ) -> list[Frame]:
        """Read until `count` frames read so far (this stream's whole history) match."""
        async with asyncio.timeout(deadline):
            while sum(1 for f in self.frames if predicate(f)) < count:
                await self.wait_for(predicate, deadline)
        return [f for f in self.frames if predicate(f)]

    async def wait_ping(self, deadline: float = DEADLINE) -> Frame:
        async with asyncio.timeout(deadline):
            while True:
                frame = await self._read_frame()
                if frame is None:
                    raise AssertionError("stream ended before a ping")
                if frame.is_ping:
                    self.pings.append(frame)
                    return frame
                self.frames.append(frame)

    async def wait_closed(self, deadline: float = DEADLINE) -> list[Frame]:
        """Read until the server ends the stream; return the non-ping frames read meanwhile."""
        got: list[Frame] = []
        async with asyncio.timeout(deadline):
            while True:
                frame = await self._read_frame()
                if frame is None:
                    return got
                if frame.is_ping:
                    self.pings.append(frame)
                else:
                    self.frames.append(frame)
                    got.append(frame)


# -- the simulator under test ----------------------------------------------------------------


@dataclass
class Guest:
    """An end user holding an access token."""

    token: str
    last_event_id: str
    subject: str
    body: Json = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def claims(self) -> Json:
        return claims_of(self.token)


_DEFAULT = object()


class Sim:
    def __init__(
        self,
        app: Starlette,
        options: SimulatorOptions,
        client: httpx.AsyncClient,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.app = app
        self.options = options
        self.client = client  # in-process REST
        self.http = http  # real socket (live only): the event stream

    @property
    def live(self) -> bool:
        return self.http is not None

    @property
    def base_url(self) -> str:
        return str(self.client.base_url).rstrip("/")

    # tokens

    def token_body(self, **overrides: Any) -> Json:
        body: Json = {
            "orgId": self.options.org_id,
            "esDeveloperName": self.options.es_developer_name,
            "capabilitiesVersion": "1",
            "platform": "Web",
            "context": {"appName": "simulator-tests", "clientVersion": "1.0.0"},
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not None}

    async def guest_response(self, **overrides: Any) -> httpx.Response:
        return await self.client.post(
            f"{API}/authorization/unauthenticated/access-token", json=self.token_body(**overrides)
        )

    @staticmethod
    def _guest_from(response: httpx.Response) -> Guest:
        assert response.status_code == 200, response.text
        body = response.json()
        return Guest(
            token=body["accessToken"],
            last_event_id=body["lastEventId"],
            subject=body["context"]["endUser"]["subject"],
            body=body,
        )

    async def guest(self) -> Guest:
        return self._guest_from(await self.guest_response())

    async def verified_response(self, sub: str = "user-42", **overrides: Any) -> httpx.Response:
        now = int(time.time())
        identity = jwt.encode(
            {"sub": sub, "iat": now, "exp": now + 600, "iss": "https://customer.example"},
            "customer-signing-key-not-known-to-the-sim",
            algorithm="HS256",
        )
        body = self.token_body(authorizationType="JWT", customerIdentityToken=identity)
        body.update(overrides)
        return await self.client.post(
            f"{API}/authorization/authenticated/access-token",
            json={k: v for k, v in body.items() if v is not None},
        )

    async def verified(self, sub: str = "user-42") -> Guest:
        return self._guest_from(await self.verified_response(sub))

    async def continuation(self, guest: Guest) -> Guest:
        response = await self.client.get(
            f"{API}/authorization/continuation-access-token", headers=guest.headers
        )
        return self._guest_from(response)

    # conversations

    async def create_response(
        self, guest: Guest, conversation_id: str, **extra: Any
    ) -> httpx.Response:
        body: Json = {"conversationId": conversation_id, "esDeveloperName": DEPLOYMENT}
        body.update(extra)
        return await self.client.post(f"{API}/conversation", json=body, headers=guest.headers)

    async def create(self, guest: Guest, conversation_id: str | None = None, **extra: Any) -> str:
        cid = conversation_id or new_id()
        response = await self.create_response(guest, cid, **extra)
        assert response.status_code == 201, response.text
        return cid.lower()

    async def routing_status(self, guest: Guest, cid: str) -> str:
        response = await self.client.get(f"{API}/conversation/{cid}", headers=guest.headers)
        assert response.status_code == 200, response.text
        assert response.json()["conversationId"] == cid
        return str(response.json()["routingStatus"])

    async def list_conversations(self, guest: Guest, **params: Any) -> Json:
        response = await self.client.get(
            f"{API}/conversation/list", params=params, headers=guest.headers
        )
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def entries(self, guest: Guest, cid: str, **params: Any) -> list[Json]:
        response = await self.client.get(
            f"{API}/conversation/{cid}/entries", params=params, headers=guest.headers
        )
        assert response.status_code == 200, response.text
        entries: list[Json] = response.json()["conversationEntries"]
        return entries

    async def send(
        self,
        guest: Guest,
        cid: str,
        text: str,
        message_id: str | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body: Json = {
            "message": {
                "id": message_id or new_id(),
                "messageType": "StaticContentMessage",
                "staticContent": {"formatType": "Text", "text": text},
            },
            "esDeveloperName": DEPLOYMENT,
        }
        body.update(extra)
        return await self.client.post(
            f"{API}/conversation/{cid}/message", json=body, headers=guest.headers
        )

    async def typing(
        self, guest: Guest, cid: str, started: bool, entry_id: str | None = None
    ) -> httpx.Response:
        kind = "TypingStartedIndicator" if started else "TypingStoppedIndicator"
        return await self.client.post(
            f"{API}/conversation/{cid}/entry",
            json={"entryType": kind, "id": entry_id or new_id()},
            headers=guest.headers,
        )

    async def upload(
        self,
        guest: Guest,
        cid: str,
        content: bytes,
        *,
        name: str = "hello.txt",
        mime: str = "text/plain",
        message_id: str | None = None,
        caption: str | None = "here is the file",
    ) -> httpx.Response:
        entry = {
            "esDeveloperName": DEPLOYMENT,
            "message": {"id": message_id or new_id(), "fileId": new_id(), "text": caption},
        }
        files: dict[str, tuple[str | None, bytes | str, str]] = {
            "messageEntry": (None, json.dumps(entry), "application/json"),
            "fileData": (name, content, mime),
        }
        return await self.client.post(
            f"{API}/conversation/{cid}/file", files=files, headers=guest.headers
        )

    async def close(self, guest: Guest, cid: str) -> httpx.Response:
        return await self.client.delete(
            f"{API}/conversation/{cid}",
            params={"esDeveloperName": DEPLOYMENT},
            headers=guest.headers,
        )

    async def end_session(self, guest: Guest, cid: str) -> httpx.Response:
        return await self.client.delete(
            f"{API}/conversation/{cid}/session",
            params={"esDeveloperName": DEPLOYMENT},
            headers=guest.headers,
        )

    def absolute(self, url: str) -> str:
        return urljoin(self.base_url + "/", url)

    # control API

    async def control(self, method: str, path: str, body: Json | None = None) -> httpx.Response:
        return await self.client.request(method, f"/control{path}", json=body)

    async def control_ok(self, method: str, path: str, body: Json | None = None) -> Any:
        response = await self.control(method, path, body)
        assert response.is_success, (response.status_code, response.text)
        return response.json() if response.content else None

    async def agent_join(self, cid: str, name: str = "Jane Agent") -> Any:
        return await self.control_ok("POST", f"/conversations/{cid}/agent/join", {"name": name})

    async def agent_message(self, cid: str, text: str) -> str:
        body = await self.control_ok("POST", f"/conversations/{cid}/agent/message", {"text": text})
        return str(body["entryId"])

    async def agent_end(self, cid: str) -> Any:
        return await self.control_ok("POST", f"/conversations/{cid}/agent/end")

    async def control_conversations(self) -> list[Json]:
        body = await self.control_ok("GET", "/conversations")
        conversations: list[Json] = body["conversations"] if isinstance(body, dict) else body
        return conversations

    async def control_conversation(self, cid: str) -> Json:
        found = [c for c in await self.control_conversations() if c["conversationId"] == cid]
        assert len(found) == 1, found
        return found[0]

    async def stats(self) -> Json:
        """Control stats; on `live` through the socket, so polling it lets the server run."""
        if self.http is None:
            body: Json = await self.control_ok("GET", "/stats")
            return body
        response = await self.http.get("/control/stats")
        assert response.status_code == 200, response.text
        body = response.json()
        return body

    # the event stream

    def sse_headers(
        self,
        guest: Guest,
        last_event_id: Any = _DEFAULT,
        org_id: str | None = ORG_ID15,
    ) -> dict[str, str]:
        headers = {**guest.headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if org_id is not None:
            headers["X-Org-Id"] = org_id
        if last_event_id is _DEFAULT:
            last_event_id = guest.last_event_id
        if last_event_id is not None:
            headers["Last-Event-Id"] = str(last_event_id)
        return headers

    @contextlib.asynccontextmanager
    async def stream(
        self,
        guest: Guest,
        last_event_id: Any = _DEFAULT,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[SseStream]:
        """Open the event stream (by default resuming from the token's lastEventId)."""
        assert self.http is not None, "SSE needs the `live` fixture (a real socket)"
        async with self.http.stream(
            "GET",
            SSE_PATH,
            headers=headers if headers is not None else self.sse_headers(guest, last_event_id),
            timeout=httpx.Timeout(10.0, read=None),
        ) as response:
            assert response.status_code == 200, (response.status_code, await response.aread())
            assert response.headers["content-type"].startswith("text/event-stream")
            yield SseStream(response)

    async def sse_error(self, headers: dict[str, str]) -> httpx.Response:
        """A stream request expected to be refused: its status and body, never waiting on a 200."""
        async with asyncio.timeout(DEADLINE):
            if self.http is None:
                return await self.client.get(SSE_PATH, headers=headers)
            async with self.http.stream("GET", SSE_PATH, headers=headers) as response:
                assert response.status_code != 200, "the stream was opened"
                await response.aread()
                return response

    async def sentinel(self, guest: Guest, cid: str, stream: SseStream) -> list[Frame]:
        """Frames emitted before a typing indicator we post now (proves what did NOT come)."""
        marker = new_id()
        response = await self.typing(guest, cid, started=False, entry_id=marker)
        assert response.is_success, response.text
        frames = await stream.until(
            match(TYPING_STOPPED, cid=cid, role="EndUser", identifier=marker)
        )
        return frames[:-1]

    async def start_chat(self, guest: Guest, stream: SseStream, **extra: Any) -> str:
        """Create a conversation and wait until the bot's greeting arrived on `stream`."""
        cid = await self.create(guest, **extra)
        await stream.wait_for(match(MESSAGE, cid=cid, role="Chatbot"))
        return cid

    async def transfer(self, guest: Guest, cid: str, stream: SseStream) -> list[Frame]:
        """Ask the bot for a person; return the frames up to the queue position."""
        response = await self.send(guest, cid, "I want to talk to a HUMAN please")
        assert response.status_code == 202, response.text
        return await stream.until(match(QUEUE_POSITION, cid=cid))


SimFactory = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def exit_stack() -> AsyncIterator[contextlib.AsyncExitStack]:
    async with contextlib.AsyncExitStack() as stack:
        yield stack


@pytest.fixture
def make_sim(exit_stack: contextlib.AsyncExitStack) -> SimFactory:
    """`await make_sim(live=..., **SimulatorOptions overrides)`."""

    async def make(*, live: bool = False, **overrides: Any) -> Sim:
        options = sim_options(**overrides)
        app = build_simulator(options)
        http: httpx.AsyncClient | None = None
        if live:
            base_url = await exit_stack.enter_async_context(serve(app))
            http = httpx.AsyncClient(base_url=base_url, timeout=10.0)
            await exit_stack.enter_async_context(http)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://sim", timeout=10.0
        )
        await exit_stack.enter_async_context(client)
        return Sim(app, options, client, http)

    return make


@pytest.fixture
async def sim(make_sim: SimFactory) -> Sim:
    return await make_sim()


@pytest.fixture
async def live(make_sim: SimFactory) -> Sim:
    return await make_sim(live=True)


async def wait_until(check: Callable[[], Awaitable[bool]], deadline: float = DEADLINE) -> None:
    """Re-check a server-side condition through socket requests (each one lets the server run)."""
    async with asyncio.timeout(deadline):
        while not await check():
            pass
