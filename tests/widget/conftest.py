"""The widget in a real browser: Debian's chromium driven by Playwright, hosted by `/playground`.

Each test runs the simulator and the MCP app on loopback ports (playground on), opens the
playground in a fresh browser, plays the model through the playground's buttons (or its own MCP
calls) and the human agent through the simulator's control API, and waits on what the page shows,
with deadlines. Trouble comes from the simulator's faults (Salesforce) or from routes on the
playground's `/mcp` requests (the host); the widget's retry pauses run on Playwright's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Frame, FrameLocator, Locator, Page, Route, expect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from tests.browser import chromium
from tests.mcp.conftest import Stack, settings_for
from tests.servers import serve

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
HOST_MODES = ["openai", "mcp-apps"]
GREETING = "Hi, I'm Agentforce. How can I help you today?"
TRANSFERRING = "Sure. I'm transferring you to a human agent now."
ASK_FOR_HUMAN = "I need a human, please"
MESSAGE_PATH = "/iamessage/api/v2/conversation/{conversationId}/message"
CONVERSATION_PATH = "/iamessage/api/v2/conversation/{conversationId}"
# Both halves of ending a chat: DELETE .../{conversationId}/session and DELETE .../{conversationId}.
ENDING_PATHS = "/iamessage/api/v2/conversation/*"
READ_TOOL = "list_conversation_entries"
# The widget's longest pause between two reads (chat.js: at most 8 s).
LONGEST_PAUSE_MS = 8_000

# Every wait has a deadline; nothing in these tests sleeps.
expect.set_options(timeout=10_000)


class FinishedRequests:
    """ASGI wrapper around the simulator: each request it has answered, to wait on.

    Outside the simulator's fault middleware, so a request it delays counts once it is answered.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.finished: list[tuple[str, str, int]] = []  # (method, path, status)
        self._waiters: list[asyncio.Event] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            self.finished.append((scope["method"], scope["path"], status))
            for waiter in self._waiters:
                waiter.set()

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.finished if m == method and p == path)

    async def wait_for_count(self, method: str, path: str, n: int) -> None:
        """Until `n` requests `method path` have been answered (callers give the deadline)."""
        while self.count(method, path) < n:
            waiter = asyncio.Event()
            self._waiters.append(waiter)
            try:
                await waiter.wait()
            finally:
                self._waiters.remove(waiter)


@dataclass
class AppStack(Stack):
    app_url: str = field(kw_only=True)
    sim_requests: FinishedRequests = field(kw_only=True)


@dataclass
class Playground:
    """The playground page and the handles a test needs to drive a handoff."""

    page: Page
    stack: AppStack
    mode: str
    conversation_id: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def widget(self) -> FrameLocator:
        return self.page.frame_locator("#widget-frame")

    async def start_chat(self) -> None:
        await self.page.click("#start")
        shown = self.page.locator("#conversation-id")
        await expect(shown).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
        self.conversation_id = await shown.inner_text()
        await expect(self.page.locator("#model-log")).to_contain_text(GREETING)

    async def say_to_bot(self, text: str) -> None:
        await self.page.fill("#model-text", text)
        await self.page.click("#model-send")

    async def wait_in_queue(self) -> None:
        await self.say_to_bot(ASK_FOR_HUMAN)
        await expect(self.page.locator("#model-log")).to_contain_text("queue position")

    async def hand_to_agent(self, name: str = "Jane Agent") -> None:
        """The user asks for a human, an agent joins, the model opens the widget."""
        await self.wait_in_queue()
        await self.agent("join", {"name": name})
        await expect(self.widget.locator("#agent-name")).to_have_text(name)

    async def agent(self, action: str, body: Any = None) -> Any:
        return await self.stack.agent(self.conversation_id, action, body)

    async def fail_next_send(self) -> None:
        await self.add_fault({"path": MESSAGE_PATH, "status": 400, "count": 1})

    async def add_fault(self, fault: dict[str, Any]) -> None:
        await self.stack.fault(**fault)

    async def clear_faults(self) -> None:
        response = await self.stack.control.delete("/control/faults")
        assert response.status_code == 204, response.text

    async def model_calls(self, name: str, **args: Any) -> dict[str, Any]:
        """The model (not the widget) calls a tool of this chat over MCP; the CallToolResult."""
        chat = await self.page.evaluate("window.playground.chat")
        request = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            # As the playground's model does (widget/playground.js): the chat's user.
            "params": {
                "name": name,
                "arguments": {**chat, **args},
                "_meta": {"openai/subject": "playground-user"},
            },
        }
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(
                self.stack.mcp_url,
                json=request,
                headers={"Accept": "application/json, text/event-stream"},
            )
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()["result"]
        return result

    async def route_tool(self, name: str, handler: Callable[[Route], Awaitable[None]]) -> None:
        """Intercept the host's `tools/call` of `name` on its way to `/mcp` (other calls pass)."""

        async def on_request(route: Route) -> None:
            body = route.request.post_data_json or {}
            if body.get("method") == "tools/call" and body["params"].get("name") == name:
                await handler(route)
            else:
                await route.fallback()

        await self.page.route("**/mcp", on_request)

    async def hold_reads(self) -> asyncio.Event:
        """Hold the view's reads in the host from now on until the returned event is set."""
        release = asyncio.Event()

        async def held(route: Route) -> None:
            await release.wait()
            await route.continue_()

        await self.route_tool(READ_TOOL, held)
        return release

    async def unroute_tools(self) -> None:
        await self.page.unroute("**/mcp")

    async def reads_by_widget(self) -> int:
        return sum(1 for call in await self.widget_calls() if call["name"] == READ_TOOL)

    async def flush_widget_calls(self) -> None:
        """Return once every tool call the widget has made so far is in `playground.calls`.

        A message the view posts to its host arrives after those it posted before, and the
        playground records a call as its message arrives: so a marker posted now, once received,
        comes after all of them.
        """
        await self.page.evaluate(
            """() => { window.__flushed = new Promise((resolve) => {
                window.addEventListener("message", function on(event) {
                    if (event.data && event.data.flushMarker) {
                        window.removeEventListener("message", on);
                        resolve(true);
                    }
                });
            }); }"""
        )
        await self.widget_frame().evaluate("window.parent.postMessage({flushMarker: true}, '*')")
        await self.page.evaluate("window.__flushed")

    def widget_frame(self) -> Frame:
        (frame,) = [f for f in self.page.frames if f.parent_frame is self.page.main_frame]
        return frame

    async def run_clock_until(self, locator: Locator, text: str) -> None:
        """Fast-forward the page's clock (the widget's retry pauses) until `locator` shows `text`.

        The widget sets its next pause only once a failed call has come back, at a moment the
        test cannot see; so each round fires whatever pause is set by then and waits briefly for
        the text. A round that comes too early fires nothing and costs nothing.
        """
        for _ in range(40):
            await self.page.clock.run_for(LONGEST_PAUSE_MS)
            try:
                await expect(locator).to_have_text(text, timeout=250)
            except AssertionError:
                continue
            return
        await expect(locator).to_have_text(text)

    async def conversation(self) -> dict[str, Any]:
        listing = (await self.stack.control.get("/control/conversations")).json()
        (conv,) = [
            c for c in listing["conversations"] if c["conversationId"] == self.conversation_id
        ]
        return dict(conv)

    async def user_texts_in_salesforce(self) -> list[str]:
        """What the simulated org recorded from the end user, in order."""
        conv = await self.conversation()
        return [
            e["entryPayload"]["abstractMessage"]["staticContent"]["text"]
            for e in conv["entries"]
            if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
        ]

    async def widget_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = await self.page.evaluate("window.playground.calls")
        return calls

    async def set_theme(self, theme: str) -> None:
        if await self.page.evaluate("window.playground.theme") != theme:
            await self.page.click("#theme-toggle")
        await expect(self.widget.locator("html")).to_have_attribute("data-theme", theme)

    async def screenshot(self, name: str, *, whole_page: bool = False) -> Path:
        """The widget (or the whole playground) as `test-artifacts/<name>.png`."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        if whole_page:
            await self.page.screenshot(path=str(path), animations="disabled", full_page=True)
        else:
            frame = self.page.locator("#widget-frame")
            await frame.screenshot(path=str(path), animations="disabled")
        return path


@pytest.fixture
def app_settings() -> dict[str, Any]:
    """Settings of the MCP app under test beyond the defaults; a test overrides it with
    `@pytest.mark.parametrize("app_settings", [{...}])`."""
    return {}


# One browser per module; everything else is per test. All of it runs in the module's event loop
# (test modules here set `pytestmark = pytest.mark.asyncio(loop_scope="module")`).
@pytest_asyncio.fixture(loop_scope="module")
async def app_stack(app_settings: dict[str, Any]) -> AsyncIterator[AppStack]:
    async with contextlib.AsyncExitStack() as stack:
        sim_app = build_simulator(SimulatorOptions(rate_limits=False))
        sim_requests = FinishedRequests(sim_app)
        sim_url = await stack.enter_async_context(serve(sim_requests))
        # Short waits: a long poll still open at the end of a test ends soon, so the server
        # stops quickly. Waits still return the moment something arrives.
        settings = settings_for(
            sim_url, playground_enabled=True, wait_default_seconds=1.0, **app_settings
        )
        app = build_app(settings)
        app_url = await stack.enter_async_context(serve(app, lifespan="on"))
        control = await stack.enter_async_context(httpx.AsyncClient(base_url=sim_url))
        yield AppStack(
            sim_url,
            sim_app,
            app_url + "/mcp",
            control,
            app,
            app_url=app_url,
            sim_requests=sim_requests,
        )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


OpenPlayground = Callable[..., Awaitable[Playground]]


@pytest_asyncio.fixture(loop_scope="module")
async def open_playground(app_stack: AppStack, browser: Browser) -> AsyncIterator[OpenPlayground]:
    """Open `/playground?host=<mode>`; page errors and dialogs fail the test at teardown."""
    opened: list[Playground] = []

    async def open_(mode: str, *, fake_clock: bool = False, **query: str) -> Playground:
        context = await browser.new_context(viewport={"width": 1120, "height": 760})
        if fake_clock:
            # Page timers (the widget's retry pauses) under the test's control; time still
            # flows on its own unless the test moves it.
            await context.clock.install()
        page = await context.new_page()
        playground = Playground(page, app_stack, mode)
        page.on("pageerror", lambda error: playground.problems.append(f"page error: {error}"))
        page.on("dialog", lambda dialog: playground.problems.append(f"dialog: {dialog.message}"))
        page.on(
            "console",
            lambda message: (
                playground.problems.append(f"console error: {message.text}")
                if message.type == "error"
                else None
            ),
        )
        params = httpx.QueryParams({"host": mode, **query})
        response = await page.goto(f"{app_stack.app_url}/playground?{params}")
        assert response is not None and response.ok
        opened.append(playground)
        return playground

    yield open_
    for playground in opened:
        await playground.page.context.close()
    problems = [problem for playground in opened for problem in playground.problems]
    assert not problems, problems
