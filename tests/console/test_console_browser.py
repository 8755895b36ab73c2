"""The agent console in a real headless Chromium (Debian's, driven by Playwright).

Guests talk through the simulator's real REST API; the console is driven as a person would.
The main flow runs with the simulator standalone (`/console`) and mounted under `/sim` of another
app (`/sim/console`), which proves the page's control-API URLs are relative to it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import jwt
from playwright.async_api import Route, expect

from tests.console.conftest import (
    DEADLINE,
    Console,
    Site,
    agent_messages,
    participant_roles,
)

expect.set_options(timeout=DEADLINE * 1000)

TYPING_STARTED = "CONVERSATION_TYPING_STARTED_INDICATOR"
TYPING_STOPPED = "CONVERSATION_TYPING_STOPPED_INDICATOR"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
HOSTILE = "<img src=x onerror=alert(1)>"


async def test_agent_accepts_a_waiting_chat_talks_and_ends_it(site: Site, console: Console) -> None:
    ana = await site.waiting_guest({"_firstName": "Ana", "Product": "Router X2"})
    bo = await site.waiting_guest({"_firstName": "Bo"})
    events = site.tail(ana)
    await console.open(site)

    await expect(console.item(ana)).to_contain_text("Waiting for agent · #1 in queue")
    await expect(console.item(ana)).to_contain_text("Product: Router X2")
    await expect(console.item(bo)).to_contain_text("Waiting for agent · #2 in queue")
    await expect(console.item(bo)).to_contain_text("_firstName: Bo")

    await console.item(ana).click()
    await expect(console.transcript).to_contain_text("I want a human")
    await expect(console.end).to_be_disabled()
    await console.accept.click()
    await expect(console.status).to_have_text("With agent Jane Agent")
    await expect(console.accept).to_be_disabled()
    await expect(console.item(ana)).to_contain_text("With agent Jane Agent")
    joined = await site.conversation(ana)
    assert [(p["role"], p["displayName"]) for p in joined["participants"]] == [
        ("Agent", "Jane Agent")
    ]

    await console.message.press_sequentially("Hi Ana, I'm Jane.")
    started = await events.wait_for(TYPING_STARTED, "Agent")
    await console.message.press("Enter")
    await expect(console.message).to_have_value("")
    stopped = await events.wait_for(TYPING_STOPPED, "Agent")
    assert started < stopped
    sent = console.transcript.locator(".msg.agent", has_text="Hi Ana, I'm Jane.")
    await expect(sent).to_have_count(1)

    await site.say(ana, "My router keeps dropping the connection.")
    await expect(console.transcript.locator(".msg.user").last).to_contain_text("keeps dropping")
    conv = await site.conversation(ana)
    assert len(agent_messages(conv, "Hi Ana, I'm Jane.")) == 1
    await expect(sent).to_have_count(1)

    await console.end.click()
    await expect(console.status).to_have_text("Ended by Agent")
    await expect(console.transcript).to_contain_text("Session ended by Agent")
    await expect(console.end).to_be_disabled()
    await expect(console.accept).to_be_disabled()
    ended = await site.until(ana, lambda c: c["session"]["status"] == "Ended")
    assert ended["session"]["endedByRole"] == "Agent"
    assert participant_roles(ended) == []
    await expect(console.item(bo)).to_contain_text("Waiting for agent")
    assert console.problems == []


async def test_a_verified_customer_is_shown_as_such_and_a_guest_as_a_guest(
    site: Site, console: Console
) -> None:
    identity = jwt.encode({"sub": "ana@example.com"}, "s" * 32, algorithm="HS256")
    verified = await site.start(identity_token=identity)
    guest = await site.start()
    await console.open(site)
    await expect(console.item(verified)).to_contain_text("Verified customer: ana@example.com")
    await expect(console.item(guest)).to_contain_text("Guest")
    await expect(console.item(guest)).not_to_contain_text("Verified customer")
    await console.item(verified).click()
    await expect(console.page.locator("#chat-attributes")).to_contain_text(
        "Verified customer: ana@example.com"
    )
    assert console.problems == []


async def test_guest_and_agent_text_is_shown_as_text_never_as_markup(
    standalone_site: Site, console: Console
) -> None:
    site = standalone_site
    guest = await site.waiting_guest(
        {"_firstName": "<b>Bo</b>", "Note": "<script>alert(2)</script>"}
    )
    await site.say(guest, HOSTILE)
    await console.open(site)

    item = console.item(guest)
    await expect(item).to_contain_text("<b>Bo</b>")
    await expect(item).to_contain_text("Note: <script>alert(2)</script>")
    await expect(item).to_contain_text("Guest: " + HOSTILE)
    await item.click()
    await expect(console.transcript.locator(".msg.user .text").last).to_have_text(HOSTILE)
    await console.accept.click()
    await console.message.fill("<i>not italic</i>")
    await console.message.press("Enter")
    await expect(console.transcript.locator(".msg.agent")).to_contain_text("<i>not italic</i>")

    page = console.page
    assert await page.locator("img").count() == 0
    assert await page.locator("main b, main i, main script").count() == 0
    assert console.problems == []


async def test_drafts_and_unread_badges_follow_each_conversation(
    standalone_site: Site, console: Console
) -> None:
    site = standalone_site
    ana = await site.waiting_guest({"_firstName": "Ana"})
    bo = await site.waiting_guest({"_firstName": "Bo"})
    await console.open(site)
    badge_of = {guest.conversation_id: console.item(guest).locator(".badge") for guest in (ana, bo)}

    await console.item(ana).click()
    await expect(badge_of[ana.conversation_id]).to_have_count(0)
    await expect(badge_of[bo.conversation_id]).to_have_text("1")  # "I want a human"
    await console.message.fill("a note for Ana")

    await site.say(bo, "hello? anyone there?")
    await expect(badge_of[bo.conversation_id]).to_have_text("2")
    await console.item(bo).click()
    await expect(badge_of[bo.conversation_id]).to_have_count(0)
    await expect(console.transcript).to_contain_text("hello? anyone there?")
    await expect(console.message).to_have_value("")
    await console.message.fill("a note for Bo")

    await site.say(ana, "are you there?")
    await expect(badge_of[ana.conversation_id]).to_have_text("1")
    await console.item(ana).click()
    await expect(console.message).to_have_value("a note for Ana")
    await expect(badge_of[ana.conversation_id]).to_have_count(0)
    await console.item(bo).click()
    await expect(console.message).to_have_value("a note for Bo")
    assert console.problems == []


async def test_a_refused_control_call_is_shown_inline(
    standalone_site: Site, console: Console
) -> None:
    site = standalone_site
    guest = await site.waiting_guest()
    await console.open(site)
    await console.item(guest).click()
    await expect(console.accept).to_be_enabled()

    # Hold the console's next update, so it still offers Accept when another agent takes the chat.
    held, release = asyncio.Event(), asyncio.Event()

    async def hold(route: object) -> None:
        held.set()
        await release.wait()
        await route.continue_()  # type: ignore[attr-defined]

    await console.page.route(lambda url: "control/conversations?since=" in url, hold)
    try:
        await site.say(guest, "still there?")  # ends the update in flight; the next one is held
        await expect(console.transcript).to_contain_text("still there?")
        async with asyncio.timeout(DEADLINE):
            await held.wait()
        response = await site.control(
            f"conversations/{guest.conversation_id}/agent/join", {"name": "Other Agent"}
        )
        assert response.status_code == 200, response.text

        await console.accept.click()
        await expect(console.alert).to_have_text("An agent is already in this conversation.")
    finally:
        release.set()
    await expect(console.status).to_have_text("With agent Other Agent")
    await expect(console.accept).to_be_disabled()
    await console.page.unroute_all(behavior="ignoreErrors")
    assert [p for p in console.problems if "409" not in p] == []


# Records the page's typing flags as it sends them: the fetch starts synchronously inside the
# idle timer's callback, so once `clock.run_for` returns the record is complete.
RECORD_TYPING = """
window.typingSent = [];
const pageFetch = window.fetch;
window.fetch = function (resource, init) {
  if (String(resource).endsWith("/agent/typing")) {
    window.typingSent.push(JSON.parse(init.body).typing);
  }
  return pageFetch.apply(this, arguments);
};
"""


async def test_typing_stops_after_three_idle_seconds(
    standalone_site: Site, console: Console
) -> None:
    # The idle timer runs on Playwright's fake clock: time moves only when the test moves it.
    site = standalone_site
    page = console.page
    await page.add_init_script(RECORD_TYPING)
    await page.clock.install()
    guest = await site.waiting_guest()
    events = site.tail(guest)
    await console.open(site)
    await console.item(guest).click()
    await console.accept.click()
    await expect(console.status).to_have_text("With agent Jane Agent")

    await page.clock.pause_at(time.time() * 1000 + 60_000)
    await console.message.press_sequentially("let me")
    started_index = await events.wait_for(TYPING_STARTED, "Agent")
    assert await page.evaluate("window.typingSent") == [True]
    await page.clock.run_for(2_000)
    await console.message.press_sequentially(" check")  # the idle timer runs from here
    assert await page.evaluate("window.typingSent") == [True]

    await page.clock.run_for(2_999)
    assert await page.evaluate("window.typingSent") == [True]  # 2.999 s idle: still typing

    await page.clock.run_for(1)
    assert await page.evaluate("window.typingSent") == [True, False]  # 3 s idle: stopped
    stopped_index = await events.wait_for(TYPING_STOPPED, "Agent")
    assert started_index < stopped_index
    assert events.names.count(TYPING_STARTED) == 1
    await expect(console.message).to_have_value("let me check")  # the draft stays


async def test_console_screenshot_with_two_conversations(
    standalone_site: Site, console: Console
) -> None:
    """docs/console.png: refreshed from test-artifacts/ when UPDATE_SCREENSHOTS=1."""
    site = standalone_site
    ana = await site.waiting_guest({"_firstName": "Ana", "Product": "Router X2"})
    await site.waiting_guest({"_firstName": "Bo", "Topic": "Billing"})
    await console.open(site)
    await console.item(ana).click()
    await console.accept.click()
    await console.message.fill("Hi Ana, I'm Jane. I've read your conversation so far.")
    await console.message.press("Enter")
    await site.say(ana, "My router keeps dropping the connection since this morning.")
    await expect(console.transcript).to_contain_text("since this morning")
    await console.message.fill("Sorry about that. Let me check the line for you.")
    await console.message.press("Enter")
    await expect(console.transcript.locator(".msg.agent")).to_have_count(2)
    await site.say(ana, "Thanks!")
    await expect(console.transcript.locator(".msg.user .text").last).to_have_text("Thanks!")
    await console.message.fill("One moment")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "console.png"
    await console.page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "console.png")
    assert console.problems == []


async def test_the_next_message_can_be_typed_and_sent_while_one_goes_out(
    standalone_site: Site, console: Console
) -> None:
    site = standalone_site
    ana = await site.waiting_guest({"_firstName": "Ana"})
    await console.open(site)
    await console.item(ana).click()
    await console.accept.click()
    # Hold the first message on its way to the control API until the second one is sent.
    release = asyncio.Event()
    held: list[str] = []

    async def hold(route: Route) -> None:
        if not held:
            held.append(route.request.post_data or "")
            await release.wait()
        await route.continue_()

    await console.page.route("**/agent/message", hold)
    await console.message.fill("first")
    await console.message.press("Enter")
    await expect(console.message).to_have_value("")  # the composer is free at once
    await console.message.fill("second")
    await console.message.press("Enter")
    await expect(console.message).to_have_value("")
    release.set()
    await expect(console.transcript.locator(".msg.agent .text")).to_have_text(["first", "second"])
