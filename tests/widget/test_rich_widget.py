"""Rich content in the widget (headless chromium, the playground as host, the simulator as the
org): choices the user picks, links and files opened through the host, markup and script links
from the agent left inert, the agent console seeing the pick, the user typing and what they read,
and a bot's answer streamed into the view and replaced by the final message."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, expect

from app.prechat import CONTEXT_MARK
from tests.widget.conftest import HOST_MODES, READ_TOOL, AppStack, OpenPlayground, Playground

pytestmark = pytest.mark.asyncio(loop_scope="module")

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really an image").decode()
PDF = base64.b64encode(b"%PDF-1.4 a receipt").decode()
MARKUP = "<img src=x onerror=alert(1)><b>bold</b>"
TRACKING = "https://tracking.example.com/parcel/1234"
SUMMARY = "Ana's parcel (order 1234) is a week late; tracking shows no scan since Monday."
FILE_PATH = "/iamessage/api/v2/conversation/{conversationId}/file"


@pytest_asyncio.fixture(loop_scope="module")
async def console_page(browser: Browser, app_stack: AppStack) -> AsyncIterator[Page]:
    """The simulator's agent console: the human agent's view."""
    context = await browser.new_context(viewport={"width": 1000, "height": 640})
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    response = await page.goto(app_stack.sim_url + "/console")
    assert response is not None and response.ok
    yield page
    await context.close()
    assert not problems, problems


async def opened_links(pg: Playground) -> list[str]:
    links: list[str] = await pg.page.evaluate("window.playground.openedLinks")
    return links


async def wait_opened(pg: Playground, url: str) -> None:
    await pg.page.wait_for_function("(url) => window.playground.openedLinks.includes(url)", arg=url)


def choice_picks(conv: dict[str, Any]) -> list[tuple[str | None, list[Any]]]:
    """(inReplyToMessageId, selectedOptions) of each pick the org recorded."""
    return [
        (m.get("inReplyToMessageId"), m["choicesResponse"]["selectedOptions"])
        for e in conv["entries"]
        if e["entryType"] == "Message"
        and "choicesResponse" in (m := e["entryPayload"]["abstractMessage"])
    ]


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_rich_agent_content_renders_safely_and_the_agent_sees_the_users_side(
    open_playground: OpenPlayground, console_page: Page, mode: str
) -> None:
    pg = await open_playground(mode)
    # The model opens the chat with its summary and the customer's name for the agent.
    await pg.page.fill("#model-summary", SUMMARY)
    await pg.page.fill("#model-customer", "Ana Lima")
    await pg.start_chat()
    console = console_page
    await console.locator(f'button.conv[data-conversation-id="{pg.conversation_id}"]').click()
    context = console.locator("#transcript .msg.user").first
    await expect(context).to_contain_text(CONTEXT_MARK)
    await expect(context).to_contain_text(SUMMARY)
    await expect(context).to_contain_text("Name: Ana Lima")
    await pg.wait_in_queue()
    await expect(console.get_by_role("button", name="Accept")).to_be_enabled()
    await console.get_by_role("button", name="Accept").click()
    w = pg.widget
    await expect(w.locator("#agent-name")).to_have_text("Jane Agent")

    offer = await pg.agent(
        "message",
        {"text": "What is it about?", "choices": [{"id": "ord", "title": "Orders"}, "Billing"]},
    )
    await pg.agent(
        "message", {"text": "Track it here", "link": {"url": TRACKING, "title": "Parcel 1234"}}
    )
    await pg.agent(
        "message",
        {
            "text": "Your label",
            "file": {"name": "label.png", "mimeType": "image/png", "content": PNG},
        },
    )
    await pg.agent(
        "message",
        {"file": {"name": "receipt.pdf", "mimeType": "application/pdf", "content": PDF}},
    )
    await expect(w.locator(".card--file[data-kind=file]")).to_have_count(1)
    for theme in ("dark", "light"):
        await pg.set_theme(theme)
        await pg.screenshot(f"widget-{mode}-rich-{theme}")
    await pg.agent(
        "message", {"text": MARKUP, "link": {"url": "javascript:alert(1)", "title": MARKUP}}
    )

    # Choices: one button each, the newest offer open to a pick.
    choices = w.locator(".msg--agent .choice")
    await expect(choices).to_have_text(["Orders", "Billing"])
    await expect(w.locator(".msg--agent .choice:enabled")).to_have_count(2)
    # A link: a card with the page's title and host, opened by the host, not in the view.
    link = w.locator("a.card__title", has_text="Parcel 1234")
    await expect(link).to_have_attribute("href", TRACKING)
    await expect(w.locator(".card--link .card__meta").first).to_have_text("tracking.example.com")
    # Files: name and kind, an Open button each; nothing remote is loaded into the view.
    image = w.locator(".card--file[data-kind=image]")
    await expect(image.locator(".card__title")).to_have_text("label.png")
    await expect(image.locator(".card__meta")).to_have_text("Image")
    pdf = w.locator(".card--file[data-kind=file]")
    await expect(pdf.locator(".card__title")).to_have_text("receipt.pdf")
    await expect(pdf.locator(".card__meta")).to_have_text("PDF")
    # Markup from the agent is text, and a javascript: link is no link at all.
    await expect(w.locator(".msg__bubble", has_text="<b>bold</b>")).to_have_text(MARKUP)
    await expect(w.locator(".card__title--plain")).to_have_text(MARKUP)
    await expect(w.locator("img")).to_have_count(0)
    await expect(w.locator("b")).to_have_count(0)
    await expect(w.locator("a[href^='javascript']")).to_have_count(0)
    await expect(w.locator("a")).to_have_count(3)  # the tracking link and two Open buttons

    await link.click()
    await wait_opened(pg, TRACKING)
    await image.get_by_role("link", name="Open").click()
    label_url = (await opened_links(pg))[-1]
    assert label_url.startswith(pg.stack.sim_url + "/files/")
    await expect(pg.widget.locator("#banner")).to_be_hidden()

    # The agent sees the user's messages as read, and the user typing.
    await expect(console.locator(".msg.agent .receipt")).to_have_count(5)
    await w.locator("#input").fill("Let me think")
    await expect(console.locator("#guest-typing")).to_be_visible()
    await w.locator("#input").press("Enter")
    await expect(console.locator("#guest-typing")).to_be_hidden()

    # The user picks a choice: their answer in the view, the pick at Salesforce and the agent's.
    await w.get_by_role("button", name="Billing").click()
    picked = w.locator(".msg--user").filter(has_text="Billing")
    await expect(picked).to_have_attribute("data-echoed", "true")
    await expect(w.get_by_role("button", name="Billing")).to_have_attribute("aria-pressed", "true")
    await expect(w.locator(".msg--agent .choice:disabled")).to_have_count(2)
    assert choice_picks(await pg.conversation()) == [
        (offer["entryId"], [{"optionIdentifier": "option-2"}])
    ]
    await expect(console.locator(".msg.user").last).to_contain_text("Picked: Billing")


async def test_a_streamed_answer_grows_in_the_view_and_becomes_the_final_message(
    open_playground: OpenPlayground, app_stack: AppStack
) -> None:
    pg = await open_playground("openai")
    await pg.start_chat()
    await pg.page.click("#show-now")
    w = pg.widget
    bot = f"/control/conversations/{pg.conversation_id}/bot"
    await expect(w.locator(".msg--bot .msg__bubble").first).to_contain_text("How can I help")

    await app_stack.control.post(f"{bot}/progress", json={"text": "Checking your order…"})
    await expect(w.locator("#typing-text")).to_have_text("Checking your order…")
    first = (await app_stack.control.post(f"{bot}/token", json={"text": "Your order "})).json()
    target = first["targetId"]
    streaming = w.locator(".msg--streaming .msg__bubble")
    await expect(streaming).to_have_text("Your order ")
    # Out of order: the third token before the second still reads in order.
    await app_stack.control.post(
        f"{bot}/token", json={"targetId": target, "text": "today.", "sequence": 3}
    )
    await app_stack.control.post(
        f"{bot}/token", json={"targetId": target, "text": "ships ", "sequence": 2}
    )
    await expect(streaming).to_have_text("Your order ships today.")

    await app_stack.control.post(
        f"{bot}/message", json={"id": target, "text": "Your order ships today!"}
    )
    await expect(w.locator(".msg--streaming")).to_have_count(0)
    final = w.locator(".msg--bot .msg__bubble", has_text="Your order ships")
    await expect(final).to_have_text(["Your order ships today!"])
    await expect(w.locator("#typing")).to_be_hidden()


async def test_the_view_itself_refuses_to_open_anything_but_web_pages(
    open_playground: OpenPlayground,
) -> None:
    """The server passes on http(s) addresses only; should one still come through (an older or
    another server), the view shows it as text, not as a link."""
    pg = await open_playground("openai")
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget

    intercepted = asyncio.Event()

    async def tampered(route: Route) -> None:
        intercepted.set()
        response = await route.fetch()
        body = await response.json()
        for entry in body["result"]["structuredContent"]["entries"]:
            if entry.get("link"):
                entry["link"]["url"] = "javascript:alert(document.domain)"
            for file in entry.get("files") or []:
                file["url"] = "data:text/html,<script>alert(1)</script>"
        await route.fulfill(response=response, json=body)

    await pg.route_tool(READ_TOOL, tampered)
    # A read already under way when the route was set goes past it: wait for one that doesn't.
    async with asyncio.timeout(30):
        await intercepted.wait()
    await pg.agent("message", {"text": "Site", "link": {"url": TRACKING, "title": "Parcel"}})
    await pg.agent(
        "message", {"file": {"name": "label.png", "mimeType": "image/png", "content": PNG}}
    )

    await expect(w.locator(".card--file .card__title")).to_have_text("label.png")
    await expect(w.locator(".card__title--plain")).to_have_text("Parcel")
    await expect(w.locator(".card--file .card__title")).to_have_text("label.png")
    await expect(w.locator("a")).to_have_count(0)
    await pg.page.unroute_all(behavior="ignoreErrors")


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_the_user_attaches_a_file_and_the_agent_gets_it(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    notes = b"order 1234: parcel late\n"

    # The first attempt fails: the file waits, bytes in memory only, for Retry.
    await pg.add_fault({"path": FILE_PATH, "status": 400, "count": 1})
    await w.locator("#file").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": notes}]
    )
    mine = w.locator(".msg--user").filter(has_text="notes.txt")
    await expect(mine).to_have_attribute("data-status", "failed")
    if mode == "openai":
        await pg.page.wait_for_function(
            "() => (window.playground.widgetState?.privateContent?.items || [])"
            ".some((item) => item.status === 'failed')"
        )
        saved = await pg.page.evaluate("JSON.stringify(window.playground.widgetState)")
        assert "notes.txt" in saved and base64.b64encode(notes).decode() not in saved

    await mine.get_by_role("button", name="Retry sending: notes.txt").click()
    await expect(mine).to_have_attribute("data-echoed", "true")
    await expect(mine.locator(".card__meta")).to_have_text("Text")
    conv = await pg.conversation()
    [sent] = [
        a
        for e in conv["entries"]
        if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
        for a in e["entryPayload"]["abstractMessage"]["staticContent"].get("attachments", [])
    ]
    assert (sent["name"], sent["mimeType"]) == ("notes.txt", "text/plain")
    downloaded = await pg.stack.control.get(sent["url"][len(pg.stack.sim_url) :])
    assert downloaded.content == notes
    # Once Salesforce has it, the user can open their own copy too.
    await mine.get_by_role("link", name="Open").click()
    await wait_opened(pg, sent["url"])

    calls = len(await pg.widget_calls())
    await w.locator("#file").set_input_files(
        files=[{"name": "empty.txt", "mimeType": "text/plain", "buffer": b""}]
    )
    await expect(w.locator("#banner-text")).to_have_text("That file is empty.")
    await w.locator("#file").set_input_files(
        files=[
            {"name": "big.pdf", "mimeType": "application/pdf", "buffer": bytes(5 * 1024 * 1024 + 1)}
        ]
    )
    await expect(w.locator("#banner-text")).to_have_text("Files over 5 MB can't be sent.")
    await pg.flush_widget_calls()
    assert [c["name"] for c in (await pg.widget_calls())[calls:] if c["name"] == "send_file"] == []
