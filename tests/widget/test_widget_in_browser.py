"""The live-chat widget in headless chromium, hosted by the playground, against the simulator."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from playwright.async_api import Route, expect

from tests.widget.conftest import (
    ASK_FOR_HUMAN,
    CONVERSATION_PATH,
    ENDING_PATHS,
    GREETING,
    HOST_MODES,
    LONGEST_PAUSE_MS,
    MESSAGE_PATH,
    READ_TOOL,
    TRANSFERRING,
    OpenPlayground,
    Playground,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

VIA = {"openai": "window.openai", "mcp-apps": "ui/* bridge"}
FOLLOW_UP = "I ended the live chat with the agent."
# chat.js: reads failing in a row before the view calls the connection lost.
MAX_POLL_FAILURES = 4
# What send_message accepts as clientMessageId.
CLIENT_MESSAGE_ID = r"[A-Za-z0-9._:-]{1,100}"


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
    # Both attempts are one message to the server: the same key.
    first, retry = sends_by_widget(await pg.widget_calls())
    assert re.fullmatch(CLIENT_MESSAGE_ID, first["clientMessageId"])
    assert retry == first


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


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_chat_closed_elsewhere_shows_a_notice_stops_reading_and_locks_the_composer(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode, fake_clock=True)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget

    # Hold the widget's next read in the host until the model has closed the chat, so that read
    # is the one that finds it closed.
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hold_first_read(route: Route) -> None:
        if not arrived.is_set():
            arrived.set()
            await release.wait()
        await route.continue_()

    await pg.route_tool(READ_TOOL, hold_first_read)
    async with asyncio.timeout(60):  # safety deadline
        await arrived.wait()
    reads = await pg.reads_by_widget()
    closed = await pg.model_calls("close_conversation")
    assert not closed.get("isError"), closed
    release.set()

    await expect(w.locator(".notice", has_text="This chat was closed")).to_have_count(1)
    await expect(w.locator("#status")).to_have_text("Chat ended")
    await expect(w.locator("#input")).to_be_disabled()
    await expect(w.locator("#input")).to_have_attribute("placeholder", "The chat has ended")
    await expect(w.locator("#send")).to_be_disabled()
    await expect(w.locator("#end-chat")).to_be_disabled()
    await expect(w.locator("#banner")).to_be_hidden()
    # Not an outage: no retry, however long the view stays open.
    await pg.page.clock.run_for(LONGEST_PAUSE_MS * 2)
    await pg.flush_widget_calls()
    assert await pg.reads_by_widget() == reads


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_reads_failing_in_a_row_show_connection_lost_and_reconnect_resumes_once(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode, fake_clock=True)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    status, banner, reconnect = w.locator("#status"), w.locator("#banner"), w.locator("#reconnect")
    await pg.agent("message", {"text": "Before the outage"})
    agent_said = w.locator(".msg--agent .msg__bubble")
    await expect(agent_said).to_have_text(["Before the outage"])

    # Every read the host makes for the view fails.
    failed = 0

    async def unreachable(route: Route) -> None:
        nonlocal failed
        failed += 1
        request = route.request.post_data_json or {}
        error = {"code": -32603, "message": "The server is unreachable"}
        await route.fulfill(json={"jsonrpc": "2.0", "id": request["id"], "error": error})

    await pg.route_tool(READ_TOOL, unreachable)
    await expect(status).to_have_text("Reconnecting…")
    await expect(banner).to_be_hidden()
    await pg.run_clock_until(status, "Connection lost")
    await expect(banner).to_be_visible()
    await expect(w.locator("#banner-text")).to_have_text("Can't reach the chat right now.")
    await expect(reconnect).to_be_visible()
    assert failed == MAX_POLL_FAILURES
    # Lost means the view stopped trying: it waits for the user.
    reads = await pg.reads_by_widget()
    await pg.page.clock.run_for(LONGEST_PAUSE_MS * 2)
    await pg.flush_widget_calls()
    assert await pg.reads_by_widget() == reads
    await pg.screenshot(f"widget-{mode}-connection-lost")

    await pg.agent("message", {"text": "Said while you were away"})
    await pg.unroute_tools()
    await reconnect.click()
    await expect(agent_said).to_have_text(["Before the outage", "Said while you were away"])
    await expect(status).to_have_text("Online")
    await expect(banner).to_be_hidden()
    await pg.agent("message", {"text": "Welcome back"})
    await expect(agent_said).to_have_text(
        ["Before the outage", "Said while you were away", "Welcome back"]
    )
    assert failed == MAX_POLL_FAILURES


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_end_chat_that_salesforce_refuses_says_so_and_the_chat_goes_on(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    end, banner = w.locator("#end-chat"), w.locator("#banner-text")
    # Salesforce refuses to end the session and to close the conversation, more often than the
    # server retries one call.
    await pg.add_fault({"path": ENDING_PATHS, "method": "DELETE", "status": 500, "count": 50})

    await end.click()
    await expect(banner).to_have_text("Couldn't end the chat. Please try again.")
    await expect(end).to_be_enabled()
    await expect(end).to_have_text("End chat")
    await pg.screenshot(f"widget-{mode}-end-failed")
    assert (await pg.conversation())["open"] is True

    # Nothing ended, so the chat goes on both ways.
    await expect(w.locator("#status")).to_have_text("Online")
    await w.locator("#input").fill("Still need help then")
    await w.locator("#input").press("Enter")
    mine = w.locator(".msg--user").filter(has_text="Still need help then")
    await expect(mine).to_have_attribute("data-echoed", "true")
    await pg.agent("message", {"text": "I'm still here"})
    await expect(w.locator(".msg--agent .msg__bubble")).to_have_text(["I'm still here"])
    assert await pg.user_texts_in_salesforce() == [ASK_FOR_HUMAN, "Still need help then"]
    await expect(pg.page.locator("#followups li")).to_have_count(0)

    await pg.clear_faults()
    await end.click()
    await expect(pg.page.locator("#followups li")).to_have_text([FOLLOW_UP])
    await expect(w.locator(".notice", has_text="You ended the chat")).to_have_count(1)
    await expect(w.locator("#banner")).to_be_hidden()
    await expect(end).to_be_disabled()
    await expect(w.locator("#input")).to_be_disabled()
    assert (await pg.conversation())["open"] is False


async def test_end_chat_tried_again_after_only_the_close_failed_ends_it_once(
    open_playground: OpenPlayground,
) -> None:
    """The session ended but the conversation stayed open: End chat is still there to finish."""
    pg = await open_playground("mcp-apps")
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    end = w.locator("#end-chat")
    await pg.add_fault({"path": CONVERSATION_PATH, "method": "DELETE", "status": 500, "count": 50})

    await end.click()
    await expect(w.locator("#banner-text")).to_have_text("Couldn't end the chat. Please try again.")
    await expect(end).to_be_enabled()
    assert (await pg.conversation())["open"] is True
    await expect(pg.page.locator("#followups li")).to_have_count(0)

    await pg.clear_faults()
    await end.click()
    await expect(pg.page.locator("#followups li")).to_have_text([FOLLOW_UP])
    await expect(w.locator("#banner")).to_be_hidden()
    await expect(end).to_be_disabled()
    await expect(w.locator(".notice", has_text="You ended the chat")).to_have_count(1)
    assert (await pg.conversation())["open"] is False


async def send_results(pg: Playground) -> list[dict[str, Any]]:
    """From now on, every send_message result the host gets back, in order."""
    results: list[dict[str, Any]] = []

    async def observe(route: Route) -> None:
        response = await route.fetch()
        results.append((await response.json())["result"])
        await route.fulfill(response=response)

    await pg.route_tool("send_message", observe)
    return results


def sends_by_widget(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [call["args"] for call in calls if call["name"] == "send_message"]


# The server gives up on Salesforce after 2 s (its retry budget, inside a 5 s call deadline).
SHORT_DEADLINES = {"tool_deadline_seconds": 5, "wait_max_seconds": 4, "scrt_retry_total_seconds": 2}


@pytest.mark.parametrize("app_settings", [SHORT_DEADLINES])
@pytest.mark.parametrize("mode", HOST_MODES)
async def test_send_salesforce_confirms_too_late_is_retried_with_its_key_and_arrives_once(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    text = "Did my message arrive?"
    path = MESSAGE_PATH.format(conversationId=pg.conversation_id)
    posts_before = pg.stack.sim_requests.count("POST", path)
    results = await send_results(pg)
    # Salesforce takes the message but answers after the server stopped waiting; and the view
    # reads nothing meanwhile, so no echo settles the message before the user retries.
    await pg.add_fault({"path": MESSAGE_PATH, "method": "POST", "delay": 4, "count": 1})
    release_reads = await pg.hold_reads()

    await w.locator("#input").fill(text)
    await w.locator("#input").press("Enter")
    mine = w.locator(".msg--user").filter(has_text=text)
    await expect(mine).to_have_attribute("data-status", "failed")
    assert results[0]["isError"] is True
    assert "Salesforce has not confirmed this message yet" in results[0]["content"][0]["text"]
    # Not "Not sent": Salesforce may have it, and Retry cannot make a copy.
    await expect(mine.locator(".msg__meta")).to_contain_text("Not confirmed")

    await mine.get_by_role("button", name=f"Retry sending: {text}").click()
    await expect(mine).to_have_attribute("data-status", "sent")
    assert results[1].get("isError") is not True, results[1]
    # The first attempt reaches Salesforce too, late; only then is "once" worth checking.
    async with asyncio.timeout(60):
        await pg.stack.sim_requests.wait_for_count("POST", path, posts_before + 2)
    assert await pg.user_texts_in_salesforce() == [ASK_FOR_HUMAN, text]

    release_reads.set()
    await expect(mine).to_have_attribute("data-echoed", "true")
    await expect(w.locator(".msg--user .msg__bubble")).to_have_text([ASK_FOR_HUMAN, text])
    first, retry = sends_by_widget(await pg.widget_calls())
    assert re.fullmatch(CLIENT_MESSAGE_ID, first["clientMessageId"])
    assert retry == first


async def test_retry_after_a_re_render_sends_the_message_under_its_saved_key(
    open_playground: OpenPlayground,
) -> None:
    """A send cut short by a re-render comes back as failed; its Retry is the same message."""
    pg = await open_playground("openai")
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget
    text = "Sent just before the re-render"
    # The first attempt stays in the host until after the re-render and the retry.
    arrived, release = asyncio.Event(), asyncio.Event()
    first_result: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

    async def hold_first_send(route: Route) -> None:
        if arrived.is_set():
            await route.continue_()
            return
        arrived.set()
        await release.wait()
        response = await route.fetch()
        first_result.set_result((await response.json())["result"])
        await route.fulfill(response=response)

    await pg.route_tool("send_message", hold_first_send)
    await w.locator("#input").fill(text)
    await w.locator("#input").press("Enter")
    async with asyncio.timeout(60):  # safety deadline
        await arrived.wait()
    await pg.page.wait_for_function(
        "(text) => (window.playground.widgetState?.privateContent?.items || [])"
        ".some((item) => item.text === text && item.status === 'pending')",
        arg=text,
    )

    await pg.page.click("#rerender")
    mine = w.locator(".msg--user").filter(has_text=text)
    await expect(mine).to_have_attribute("data-status", "failed")
    await mine.get_by_role("button", name=f"Retry sending: {text}").click()
    await expect(mine).to_have_attribute("data-echoed", "true")

    release.set()
    async with asyncio.timeout(60):  # safety deadline
        late = await first_result
    assert late.get("isError") is not True, late
    assert await pg.user_texts_in_salesforce() == [ASK_FOR_HUMAN, text]
    await expect(w.locator(".msg--user .msg__bubble")).to_have_text([ASK_FOR_HUMAN, text])
    first, retry = sends_by_widget(await pg.widget_calls())
    assert re.fullmatch(CLIENT_MESSAGE_ID, first["clientMessageId"])
    assert retry == first


@pytest.mark.parametrize("mode", HOST_MODES)
async def test_a_server_restart_without_redis_ends_the_chat_plainly_without_reconnect(
    open_playground: OpenPlayground, mode: str
) -> None:
    pg = await open_playground(mode, fake_clock=True)
    await pg.start_chat()
    await pg.hand_to_agent()
    w = pg.widget

    # From now on the view's reads carry a handle of the server before its restart (another
    # process made it): what a restarted server that kept chats in memory receives.
    async def as_after_a_restart(route: Route) -> None:
        body = route.request.post_data_json
        args = body["params"]["arguments"]
        _, _, secret = args["sessionId"].partition(".")
        args["sessionId"] = f"0badcafe.{secret}"
        await route.continue_(post_data=json.dumps(body))

    await pg.route_tool(READ_TOOL, as_after_a_restart)
    await expect(w.locator(".notice", has_text="The server restarted")).to_have_count(1)
    await expect(w.locator(".notice", has_text="The server restarted")).to_contain_text(
        "start a new chat"
    )
    await expect(w.locator("#status")).to_have_text("Chat ended")
    await expect(w.locator("#input")).to_be_disabled()
    await expect(w.locator("#reconnect")).to_be_hidden()
    await expect(w.locator("#banner")).to_be_hidden()
    # Retrying cannot help, so the view does not.
    reads = await pg.reads_by_widget()
    await pg.page.clock.run_for(LONGEST_PAUSE_MS * 2)
    await pg.flush_widget_calls()
    assert await pg.reads_by_widget() == reads
