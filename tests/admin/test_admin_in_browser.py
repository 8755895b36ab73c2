"""The operator page in headless Chromium: refused without credentials; signed in, it follows a
chat as it is created, waits for an agent, is taken and ended by the agent, and shows a failing
tool call as an error and as an audit line (whose filters narrow the trail), all without a
reload.

The simulator and the MCP app (ADMIN_PASSWORD set) run on loopback ports; the test plays the
model through the SDK's client and the agent through the simulator's control API, and waits on
what the page shows, with Playwright's deadlines.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp.client import Client
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, expect

from tests.admin.conftest import PASSWORD
from tests.browser import chromium
from tests.mcp.conftest import Stack, StackFactory, call, read_until

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
"""docs/admin.png is a copy of the screenshot written there."""
GREETING = "Hi, I'm Agentforce. How can I help you today?"
USER = {"openai/subject": "chatgpt-user-7"}
"""The ChatGPT user the model's calls name (the audit trail's caller)."""

expect.set_options(timeout=10_000)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def admin_stack(stack_factory: StackFactory) -> Stack:
    # Short waits: a long poll still open at the end of the test ends soon.
    return await stack_factory(admin_password=PASSWORD, wait_default_seconds=1.0)


async def open_page(browser: Browser, problems: list[str]) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda message: note_console_error(message, problems))
    return page


def note_console_error(message: ConsoleMessage, problems: list[str]) -> None:
    """A CSP violation (an inline script or style without the nonce) is a console error; so is
    the wrong password's answer (401), which the test asks for."""
    refused_signin = "401" in message.text and message.location["url"].endswith("/admin/signin")
    if message.type == "error" and not refused_signin:
        problems.append(message.text)


@dataclass(frozen=True)
class Row:
    """A conversation's row on the page."""

    row: Locator
    state: Locator
    agent: Locator
    ended: Locator
    waiting: Locator

    @classmethod
    def of(cls, page: Page, conversation_id: str) -> Row:
        base = f'#conversations tr[data-id="{conversation_id.lower()}"]'
        return cls(
            page.locator(base),
            page.locator(f"{base} .c-state .pill"),
            page.locator(f"{base} .c-agent"),
            page.locator(f"{base} .c-ended"),
            page.locator(f"{base} .c-waiting"),
        )


async def test_operator_page_follows_a_chat_and_its_errors_live(
    admin_stack: Stack, browser: Browser
) -> None:
    base = admin_stack.mcp_url.removesuffix("/mcp")
    problems: list[str] = []
    page = await open_page(browser, problems)
    asked: list[str] = []  # the audit trail's requests
    page.on("request", lambda r: asked.append(r.url) if "/admin/api/audit" in r.url else None)

    # Without credentials: the page sends the browser to the sign-in form, the data is refused.
    await page.goto(f"{base}/admin")
    await expect(page).to_have_url(f"{base}/admin/signin")
    refused = await page.request.get(f"{base}/admin/api/state")
    assert refused.status == 401
    await page.fill("#password", "not the password at all")
    await page.click("#signin")
    await expect(page.locator("#problem")).to_have_text("Wrong password.")

    await page.fill("#password", PASSWORD)
    await page.click("#signin")
    await expect(page).to_have_url(f"{base}/admin")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator("#no-conversations")).to_be_visible()

    async with Client(admin_stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {}, **USER)
        created = await call(
            client, "create_conversation", {"sessionId": session["sessionId"]}, **USER
        )
        conversation_id = created["conversationId"]
        ids = {"sessionId": session["sessionId"], "conversationId": conversation_id}
        shown = Row.of(page, conversation_id)
        await expect(shown.row).to_be_visible()

        await read_until(
            client, ids, lambda e, _: any(x.get("text") == GREETING for x in e), meta=USER
        )
        await expect(shown.state).to_have_text("With the bot")
        await call(client, "send_message", {**ids, "text": "I need a human, please"}, **USER)
        await read_until(client, ids, lambda _, info: info["transferring"], meta=USER)
        await expect(shown.state).to_have_text("Waiting for an agent")

        # The agent takes the chat, then ends it: the page follows without anyone reading.
        await admin_stack.agent(conversation_id, "join", {"name": "Jane Agent"})
        await expect(shown.state).to_have_text("With an agent")
        await expect(shown.agent).to_have_text("Jane Agent")
        await expect(shown.waiting).to_contain_text("waited")
        await admin_stack.agent(conversation_id, "end")
        await expect(shown.state).to_have_text("Ended")
        await expect(shown.ended).to_have_text("the agent")

        # A call naming a conversation this session never created fails: an error on the page.
        unknown = str(uuid.uuid4())
        failed = await client.call_tool(
            "send_message", {**ids, "conversationId": unknown, "text": "hello"}, meta=USER
        )
        assert failed.is_error
    error = page.locator("#errors tbody tr").first
    await expect(error).to_contain_text("send_message")
    await expect(error).to_contain_text("This conversationId was not created in this session")

    # The audit trail has a line for every call, the failed one on top; its filters narrow it.
    audit = page.locator("#audit tbody tr")
    await expect(audit.first).to_have_attribute("data-tool", "send_message")
    await expect(audit.first.locator(".a-outcome")).to_have_text("error")
    await expect(audit.first.locator(".a-args")).to_contain_text(unknown)
    await expect(audit.first.locator(".a-args")).not_to_contain_text("hello")
    await expect(audit.first.locator(".a-caller")).to_have_text(USER["openai/subject"])
    # Fetched whole at first; since, only what is newer than the newest shown: every call, once.
    newer_only = page.expect_request(lambda r: "/admin/api/audit?after=" in r.url)
    async with newer_only, Client(admin_stack.mcp_url) as client:
        await call(client, "generate_guest_access_token", {}, **USER)
    await expect(audit.first).to_have_attribute("data-tool", "generate_guest_access_token")
    everything = await page.request.get(f"{base}/admin/api/audit")
    assert [await row.get_attribute("data-id") for row in await audit.all()] == [
        record["id"] for record in (await everything.json())["records"]
    ]
    assert "after=" not in asked[0]
    calls = await audit.count()
    assert calls >= 7
    await page.select_option("#filter-outcome", "error")
    await page.click("#filter-apply")
    await expect(audit).to_have_count(1)
    await page.click("#filter-clear")
    await page.fill("#filter-tool", "create_conversation")
    await page.click("#filter-apply")
    await expect(audit).to_have_count(1)
    await expect(audit.first.locator(".a-outcome")).to_have_text("ok")
    await page.click("#filter-clear")
    await page.fill("#filter-caller", "someone-else")
    await page.click("#filter-apply")
    await expect(page.locator("#no-audit")).to_be_visible()
    await page.fill("#filter-caller", USER["openai/subject"])
    await page.click("#filter-apply")
    await expect(audit).to_have_count(calls)
    await page.click("#filter-clear")
    await expect(page.locator("#filter-caller")).to_have_value("")
    await expect(audit).to_have_count(calls)

    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "admin.png"), animations="disabled", full_page=True)
    await page.context.close()
    assert not problems, problems
