"""The live-chat widget in headless chromium, hosted by the playground, against the simulator."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.widget.conftest import (
    ASK_FOR_HUMAN,
    GREETING,
    HOST_MODES,
    TRANSFERRING,
    OpenPlayground,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

VIA = {"openai": "window.openai", "mcp-apps": "ui/* bridge"}
FOLLOW_UP = "I ended the live chat with the agent."


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_widget_shows_history_live_agent_messages_typing_and_sends_once(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode)
    await pg.start_chat()
    await pg.hand_to_agent("Jane Agent")
    w = pg.widget

    # What was said before the widget opened, each role styled as its own.
    await expect(w.locator(".msg--bot .msg__bubble")).to_have_text([GREETING, TRANSFERRING])
    await expect(w.locator(".msg--bot .msg__name")).to_have_text(["Agentforce", "Agentforce"])
    await expect(w.locator(".msg--user .msg__bubble")).to_have_text([ASK_FOR_HUMAN])
    await expect(w.locator(".notice[data-kind=joined]").last).to_have_text(
        "Jane Agent joined the chat"
    )
    await expect(w.locator("#avatar-initials")).to_have_text("JA")
    await expect(w.locator("#status")).to_have_text("Online")

    # Typing shows and clears, both by the stop signal and by the agent's message.
    typing = w.locator("#typing")
    await expect(typing).to_be_hidden()
    await pg.agent("typing", {"typing": True})
    await expect(typing).to_be_visible()
    await expect(typing).to_contain_text("Jane Agent is typing")
    await pg.agent("typing", {"typing": False})
    await expect(typing).to_be_hidden()
    await pg.agent("typing", {"typing": True})
    await expect(typing).to_be_visible()
    await pg.agent("message", {"text": "Hi, I'm Jane. What can I do for you?"})
    await expect(w.locator(".msg--agent .msg__bubble")).to_have_text(
        ["Hi, I'm Jane. What can I do for you?"]
    )
    await expect(w.locator(".msg--agent .msg__name")).to_have_text(["Jane Agent"])
    await expect(typing).to_be_hidden()

    # Enter sends; the optimistic bubble is confirmed by the server's echo, and shown once.
    box = w.locator("#input")
    await box.fill("My order 1234 never arrived")
    await box.press("Enter")
    await expect(box).to_have_value("")
    mine = w.locator(".msg--user").filter(has_text="My order 1234 never arrived")
    await expect(mine).to_have_attribute("data-echoed", "true")
    await expect(mine).to_have_attribute("data-status", "sent")
    # The button sends too.
    await box.fill("It was due on Monday.")
    await w.locator("#send").click()
    await expect(
        w.locator(".msg--user").filter(has_text="It was due on Monday.")
    ).to_have_attribute("data-echoed", "true")
    await expect(w.locator(".msg--user .msg__bubble")).to_have_text(
        [ASK_FOR_HUMAN, "My order 1234 never arrived", "It was due on Monday."]
    )
    assert await pg.user_texts_in_salesforce() == [
        ASK_FOR_HUMAN,
        "My order 1234 never arrived",
        "It was due on Monday.",
    ]

    await pg.agent("message", {"text": "Sorry about that! Let me check the tracking for you."})
    await pg.agent("typing", {"typing": True})
    await expect(typing).to_be_visible()
    await pg.screenshot(f"widget-{mode}-light")
    await pg.set_theme("dark")
    await pg.screenshot(f"widget-{mode}-dark")

    # The agent ends the chat: a notice, and no more input.
    await pg.agent("end")
    await expect(w.locator(".notice[data-kind=session_ended]")).to_have_text(
        "The agent ended the chat"
    )
    await expect(box).to_have_attribute("placeholder", "The chat has ended")
    await expect(w.locator("#status")).to_have_text("Chat ended")
    await expect(box).to_be_disabled()
    await expect(w.locator("#send")).to_be_disabled()
    await expect(typing).to_be_hidden()
    await pg.screenshot(f"widget-{mode}-ended")

    # Only through the host, over the chosen transport; the first read starts at the beginning.
    calls = await pg.widget_calls()
    assert {call["via"] for call in calls} == {VIA[mode]}
    reads = [call["args"] for call in calls if call["name"] == "list_conversation_entries"]
    assert reads[0]["cursor"] == "0" and reads[0]["includeTyping"] is True
    assert [call["args"]["text"] for call in calls if call["name"] == "send_message"] == [
        "My order 1234 never arrived",
        "It was due on Monday.",
    ]


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_end_chat_closes_the_conversation_and_tells_the_model(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode)
    await pg.start_chat()
    await pg.hand_to_agent("Sam Rivera")
    w = pg.widget
    await expect(w.locator("#avatar-initials")).to_have_text("SR")

    await w.locator("#end-chat").click()
    # The follow-up is sent once close_conversation succeeded: neutral text, no transcript.
    await expect(pg.page.locator("#followups li")).to_have_text([FOLLOW_UP])
    conv = await pg.conversation()
    assert conv["open"] is False
    await expect(w.locator("#status")).to_have_text("Chat ended")
    await expect(w.locator("#input")).to_be_disabled()
    await expect(w.locator("#end-chat")).to_be_disabled()
    await expect(w.locator(".notice", has_text="You ended the chat")).to_have_count(1)
    closes = [call for call in await pg.widget_calls() if call["name"] == "close_conversation"]
    assert len(closes) == 1 and closes[0]["via"] == VIA[mode]
    await pg.screenshot(f"playground-{mode}", whole_page=True)


async def test_queue_position_shows_while_waiting_and_clears_when_the_agent_joins(
    open_playground: OpenPlayground,
) -> None:
    pg = await open_playground("mcp-apps")
    await pg.start_chat()
    await pg.wait_in_queue()
    await pg.page.click("#show-now")
    w = pg.widget
    await expect(w.locator("#queue")).to_have_text("You're number 1 in line for an agent.")
    await expect(w.locator("#status")).to_have_text("Waiting for an agent")
    await expect(w.locator("#agent-name")).to_have_text("Live chat")
    await expect(w.locator(".notice[data-kind=transfer]")).to_have_text(
        "Transferring you to an agent…"
    )
    await pg.screenshot("widget-waiting")

    await pg.agent("join", {"name": "Ana Lima"})
    await expect(w.locator("#queue")).to_be_hidden()
    await expect(w.locator("#agent-name")).to_have_text("Ana Lima")
    await expect(w.locator("#status")).to_have_text("Online")


async def test_agent_supplied_html_renders_as_text(open_playground: OpenPlayground) -> None:
    payload = "<img src=x onerror=alert(1)>"
    pg = await open_playground("openai")
    await pg.start_chat()
    await pg.hand_to_agent(payload)
    w = pg.widget
    await pg.agent("message", {"text": payload})

    await expect(w.locator(".msg--agent .msg__bubble")).to_have_text([payload])
    await expect(w.locator(".msg--agent .msg__name")).to_have_text([payload])
    await expect(w.locator(".notice[data-kind=joined]").last).to_have_text(
        payload + " joined the chat"
    )
    await expect(w.locator("#typing-text")).to_have_text(payload + " is typing…")
    await expect(w.locator("img")).to_have_count(0)
    # The page's own model log is escaped as well; no dialog opened (teardown checks).
    await expect(pg.page.locator("#model-log img")).to_have_count(0)


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_failed_send_is_marked_and_retry_delivers_it_once(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget

    await pg.fail_next_send()
    await w.locator("#input").fill("Is anyone there?")
    await w.locator("#input").press("Enter")
    mine = w.locator(".msg--user").filter(has_text="Is anyone there?")
    await expect(mine).to_have_attribute("data-status", "failed")
    await expect(mine.locator(".msg__meta")).to_contain_text("Not sent")
    assert await pg.user_texts_in_salesforce() == [ASK_FOR_HUMAN]

    await mine.get_by_role("button", name="Retry sending: Is anyone there?").click()
    await expect(mine).to_have_attribute("data-echoed", "true")
    await expect(mine).to_have_count(1)
    assert await pg.user_texts_in_salesforce() == [ASK_FOR_HUMAN, "Is anyone there?"]


async def test_re_render_restores_the_transcript_and_unsent_messages_from_widget_state(
    open_playground: OpenPlayground,
) -> None:
    pg = await open_playground("openai")
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    await pg.agent("message", {"text": "Hello from Jane"})
    await expect(w.locator(".msg--agent .msg__bubble")).to_have_text(["Hello from Jane"])
    await pg.fail_next_send()
    await w.locator("#input").fill("Only on this screen")
    await w.locator("#input").press("Enter")
    await expect(w.locator(".msg[data-status=failed]")).to_have_count(1)
    await pg.page.wait_for_function(
        "() => (window.playground.widgetState?.privateContent?.items || [])"
        ".some((item) => item.status === 'failed')"
    )
    calls_before = len(await pg.widget_calls())

    await pg.page.click("#rerender")
    failed = w.locator(".msg[data-status=failed]")
    await expect(failed.locator(".msg__bubble")).to_have_text(["Only on this screen"])
    await expect(w.locator(".msg--agent .msg__bubble")).to_have_text(["Hello from Jane"])
    await expect(w.locator(".msg--bot .msg__bubble")).to_have_text([GREETING, TRANSFERRING])
    # The re-rendered view reads on from its saved cursor, not from the beginning.
    await pg.page.wait_for_function(
        "(n) => window.playground.calls.slice(n)"
        ".some((call) => call.name === 'list_conversation_entries')",
        arg=calls_before,
    )
    later = (await pg.widget_calls())[calls_before:]
    first_read = next(c["args"] for c in later if c["name"] == "list_conversation_entries")
    assert first_read["cursor"] != "0"

    await pg.agent("message", {"text": "Still here!"})
    await expect(w.locator(".msg--agent .msg__bubble")).to_have_text(
        ["Hello from Jane", "Still here!"]
    )
    await failed.get_by_role("button", name="Retry sending: Only on this screen").click()
    mine = w.locator(".msg--user").filter(has_text="Only on this screen")
    await expect(mine).to_have_attribute("data-echoed", "true")
    assert await pg.user_texts_in_salesforce() == [ASK_FOR_HUMAN, "Only on this screen"]


async def test_widget_starts_when_the_tool_result_arrives_after_load(
    open_playground: OpenPlayground,
) -> None:
    """ChatGPT's globals can be null at first and arrive through `openai:set_globals`."""
    pg = await open_playground("openai", globals="late")
    await pg.start_chat()
    await pg.hand_to_agent()
    await expect(pg.widget.locator(".msg--bot .msg__bubble")).to_have_text([GREETING, TRANSFERRING])
    await expect(pg.widget.locator("#input")).to_be_enabled()
