"""Fixtures for the agent console: the simulator on loopback (standalone or mounted under `/sim`),
guests driven through the real REST API, their event streams, and a headless Debian Chromium.

Nothing here sleeps: server-side conditions are awaited with the control API's own long-poll
(`since` + `waitSeconds`), SSE frames as they arrive, and the page with Playwright expectations,
each with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from app.simulator import SimulatedOrg, SimulatorOptions, build_simulator
from tests.browser import chromium
from tests.servers import serve

Json = dict[str, Any]

API = "iamessage/api/v2"
DEADLINE = 10.0


def console_options(**overrides: Any) -> SimulatorOptions:
    values: dict[str, Any] = {"rate_limits": False, "actor_delay": 0.0, "ping_interval": 60.0}
    values.update(overrides)
    return SimulatorOptions(**values)


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class Guest:
    """An end user with a token and one conversation, talking through the REST API."""

    token: str
    last_event_id: str
    conversation_id: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class EventTail:
    """The SSE event names of one guest, read in the background as they arrive."""

    names: list[str] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, name: str, sender_role: str) -> None:
        self.names.append(name)
        self.senders.append(sender_role)
        self.arrived.set()

    def index(self, name: str, role: str) -> int | None:
        pairs = zip(self.names, self.senders, strict=True)
        return next((i for i, (n, r) in enumerate(pairs) if n == name and r == role), None)

    async def wait_for(self, name: str, role: str, deadline: float = DEADLINE) -> int:
        async with asyncio.timeout(deadline):
            while (found := self.index(name, role)) is None:
                self.arrived.clear()
                await self.arrived.wait()
        return found


@dataclass
class Site:
    """The simulator served on loopback; `root` is its base URL (with `/sim` when mounted)."""

    root: str
    org: SimulatedOrg
    http: httpx.AsyncClient
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def console_url(self) -> str:
        return f"{self.root}/console"

    # -- a guest, through the real REST API -----------------------------------------------------

    async def guest(self, identity_token: str | None = None) -> Guest:
        """A guest, or with a customer identity token a verified customer."""
        body: Json = {
            "orgId": self.org.options.org_id,
            "esDeveloperName": self.org.options.es_developer_name,
            "capabilitiesVersion": "1",
            "platform": "Web",
            "context": {"appName": "console-tests", "clientVersion": "1.0.0"},
        }
        kind = "unauthenticated"
        if identity_token is not None:
            kind = "authenticated"
            body.update(authorizationType="JWT", customerIdentityToken=identity_token)
        response = await self.http.post(f"{API}/authorization/{kind}/access-token", json=body)
        assert response.status_code == 200, response.text
        body = response.json()
        return Guest(token=body["accessToken"], last_event_id=body["lastEventId"])

    async def start(
        self, routing_attributes: Json | None = None, identity_token: str | None = None
    ) -> Guest:
        guest = await self.guest(identity_token)
        guest.conversation_id = new_id()
        response = await self.http.post(
            f"{API}/conversation",
            json={
                "conversationId": guest.conversation_id,
                "esDeveloperName": self.org.options.es_developer_name,
                "routingAttributes": routing_attributes or {},
            },
            headers=guest.headers,
        )
        assert response.status_code == 201, response.text
        return guest

    async def say(self, guest: Guest, text: str) -> None:
        response = await self.http.post(
            f"{API}/conversation/{guest.conversation_id}/message",
            json={
                "message": {
                    "id": new_id(),
                    "messageType": "StaticContentMessage",
                    "staticContent": {"formatType": "Text", "text": text},
                },
                "esDeveloperName": self.org.options.es_developer_name,
            },
            headers=guest.headers,
        )
        assert response.status_code == 202, response.text

    async def waiting_guest(self, routing_attributes: Json | None = None) -> Guest:
        """A guest whose conversation the bot transferred: waiting in the queue for a human."""
        guest = await self.start(routing_attributes)
        await self.until(guest, lambda c: participant_roles(c) == ["Chatbot"])
        await self.say(guest, "I want a human")
        await self.until(guest, lambda c: c["queuePosition"] is not None)
        return guest

    def tail(self, guest: Guest) -> EventTail:
        """Follow the guest's event stream in the background (from its token's lastEventId)."""
        tail = EventTail()
        ready = asyncio.Event()

        async def read() -> None:
            headers = {
                **guest.headers,
                "Accept": "text/event-stream",
                "X-Org-Id": self.org.options.org_id15,
                "Last-Event-Id": guest.last_event_id,
            }
            async with self.http.stream(
                "GET",
                "eventrouter/v1/sse",
                headers=headers,
                timeout=httpx.Timeout(10.0, read=None),
            ) as response:
                assert response.status_code == 200
                ready.set()
                event = ""
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        event = line.partition(":")[2].strip()
                    elif line.startswith("data:") and event != "ping":
                        data = json.loads(line.partition(":")[2])
                        tail.add(event, data["conversationEntry"]["sender"]["role"])

        self.tasks.append(asyncio.create_task(read()))
        return tail

    # -- the control API --------------------------------------------------------------------------

    async def snapshot(self, since: int | None = None, wait: float = 0.0) -> Json:
        params: dict[str, Any] = {}
        if since is not None:
            params = {"since": since, "waitSeconds": wait}
        response = await self.http.get("control/conversations", params=params)
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def conversation(self, guest: Guest) -> Json:
        body = await self.snapshot()
        [found] = [c for c in body["conversations"] if c["conversationId"] == guest.conversation_id]
        return found

    async def until(
        self, guest: Guest, check: Callable[[Json], bool], deadline: float = DEADLINE
    ) -> Json:
        """The guest's conversation once `check` holds, following the control long-poll."""
        async with asyncio.timeout(deadline):
            body = await self.snapshot()
            while True:
                for conv in body["conversations"]:
                    if conv["conversationId"] == guest.conversation_id and check(conv):
                        return dict(conv)
                body = await self.snapshot(since=body["version"], wait=5.0)

    async def control(self, path: str, body: Json | None = None) -> httpx.Response:
        return await self.http.post(f"control/{path}", json=body)

    async def stats(self) -> Json:
        response = await self.http.get("control/stats")
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body


def participant_roles(conv: Json) -> list[str]:
    return [p["role"] for p in conv["participants"]]


def agent_messages(conv: Json, text: str) -> list[Json]:
    return [
        e
        for e in conv["entries"]
        if e["entryType"] == "Message"
        and e["sender"]["role"] == "Agent"
        and e["entryPayload"]["abstractMessage"]["staticContent"]["text"] == text
    ]


@contextlib.asynccontextmanager
async def running_site(mounted: bool, **options: Any) -> AsyncIterator[Site]:
    simulator = build_simulator(console_options(**options))
    app = Starlette(routes=[Mount("/sim", app=simulator)]) if mounted else simulator
    async with serve(app) as base_url:
        root = f"{base_url}/sim" if mounted else base_url
        async with httpx.AsyncClient(base_url=root + "/", timeout=10.0) as http:
            site = Site(root=root, org=simulator.state.simulator, http=http)
            try:
                yield site
            finally:
                for task in site.tasks:
                    task.cancel()
                for task in site.tasks:
                    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                        await task


@pytest.fixture(params=["standalone", "mounted"])
async def site(request: pytest.FixtureRequest) -> AsyncIterator[Site]:
    """The simulator at `/` and mounted at `/sim` of a bigger app (proves relative URLs)."""
    async with running_site(mounted=request.param == "mounted") as running:
        yield running


@pytest.fixture
async def standalone_site() -> AsyncIterator[Site]:
    async with running_site(mounted=False) as running:
        yield running


# -- the browser --------------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


@dataclass
class Console:
    """The console page in a browser tab, with the parts the tests look at."""

    page: Any  # playwright.async_api.Page
    problems: list[str] = field(default_factory=list)  # page errors, console errors, dialogs

    def item(self, guest: Guest) -> Any:
        return self.page.locator(f'button.conv[data-conversation-id="{guest.conversation_id}"]')

    @property
    def status(self) -> Any:
        return self.page.locator("#chat-status")

    @property
    def accept(self) -> Any:
        return self.page.get_by_role("button", name="Accept")

    @property
    def end(self) -> Any:
        return self.page.get_by_role("button", name="End chat")

    @property
    def message(self) -> Any:
        return self.page.get_by_label("Message")

    @property
    def transcript(self) -> Any:
        return self.page.locator("#transcript")

    @property
    def alert(self) -> Any:
        return self.page.get_by_role("alert")

    async def open(self, site: Site) -> None:
        response = await self.page.goto(site.console_url)
        assert response is not None and response.status == 200


@pytest.fixture
async def console(browser: Any) -> AsyncIterator[Console]:
    context = await browser.new_context(viewport={"width": 1000, "height": 640})
    page = await context.new_page()
    page.set_default_timeout(DEADLINE * 1000)
    tab = Console(page)
    page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: (
            tab.problems.append(f"console {message.type}: {message.text}")
            if message.type in ("error", "warning")
            else None
        ),
    )

    async def refuse_dialog(dialog: Any) -> None:
        tab.problems.append(f"dialog: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", refuse_dialog)
    try:
        yield tab
    finally:
        # Closing the tab ends its long-poll, so the server stops at once.
        await context.close()
