"""The widget in a real browser: Debian's chromium driven by Playwright, hosted by `/playground`.

Each test runs the simulator and the MCP app on loopback ports (playground on), opens the
playground in a fresh browser, plays the model through the playground's buttons and the human agent
through the simulator's control API, and waits on what the page shows, with deadlines.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from playwright.async_api import Browser, FrameLocator, Page, expect

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

# Every wait has a deadline; nothing in these tests sleeps.
expect.set_options(timeout=10_000)


@dataclass
class AppStack(Stack):
    app_url: str = ""


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
        response = await self.stack.control.post(
            "/control/faults", json={"path": MESSAGE_PATH, "status": 400, "count": 1}
        )
        assert response.status_code == 201, response.text

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


# One browser per module; everything else is per test. All of it runs in the module's event loop
# (test modules here set `pytestmark = pytest.mark.asyncio(loop_scope="module")`).
@pytest_asyncio.fixture(loop_scope="module")
async def app_stack() -> AsyncIterator[AppStack]:
    async with contextlib.AsyncExitStack() as stack:
        sim_app = build_simulator(SimulatorOptions(rate_limits=False))
        sim_url = await stack.enter_async_context(serve(sim_app))
        # Short waits: a long poll still open at the end of a test ends soon, so the server
        # stops quickly. Waits still return the moment something arrives.
        settings = settings_for(sim_url, playground_enabled=True, wait_default_seconds=1.0)
        app = build_app(settings)
        app_url = await stack.enter_async_context(serve(app, lifespan="on"))
        control = await stack.enter_async_context(httpx.AsyncClient(base_url=sim_url))
        yield AppStack(sim_url, sim_app, app_url + "/mcp", control, app_url=app_url)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


OpenPlayground = Callable[..., Awaitable[Playground]]


@pytest_asyncio.fixture(loop_scope="module")
async def open_playground(app_stack: AppStack, browser: Browser) -> AsyncIterator[OpenPlayground]:
    """Open `/playground?host=<mode>`; page errors and dialogs fail the test at teardown."""
    opened: list[Playground] = []

    async def open_(mode: str, **query: str) -> Playground:
        context = await browser.new_context(viewport={"width": 1120, "height": 760})
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
