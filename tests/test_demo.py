"""`make demo` as a newcomer runs it: it starts, its URLs answer, the README's curl examples work
against it, and a whole handoff plays in the browser with only the playground and the console."""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, expect

from tests.browser import chromium
from tests.mcp.test_readme_curl import curl_blocks, run_block
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
START_DEADLINE = 60.0  # a safety deadline: the fixture fails rather than waiting forever


@dataclass
class Demo:
    base: str
    urls: list[str]


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        ["make", "-s", "demo", f"DEMO_PORT={port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    output = b""
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        # Raw reads: a buffered readline could hold the banner while select waits for more.
        while b"Press Ctrl+C" not in output:
            remaining = START_DEADLINE - (time.monotonic() - started)
            if remaining <= 0 or not selector.select(timeout=remaining):
                pytest.fail(f"make demo did not start within {START_DEADLINE:g} s: {output!r}")
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                pytest.fail(f"make demo exited ({proc.wait()}): {output!r}")
            output += chunk
        urls = re.findall(r"http://127\.0\.0\.1:\d+\S*", output.decode())
        yield Demo(f"http://127.0.0.1:{port}", urls)
    finally:
        selector.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)  # a safety deadline: Ctrl+C must end the demo
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("make demo did not stop on Ctrl+C (SIGINT)")


def test_make_demo_starts_and_every_printed_url_answers(demo: Demo) -> None:
    paths = {url.removeprefix(demo.base) for url in demo.urls}
    assert {"/sim/console", "/playground", "/mcp", "/sim/control/conversations", "/health"} <= paths
    with httpx.Client(timeout=10, follow_redirects=True) as http:
        for url in demo.urls:
            if url.endswith("/mcp"):
                answer = http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
                assert len(answer.json()["result"]["tools"]) == 32  # 11 handoff, 21 CRM
            else:
                answer = http.get(url)
            assert answer.status_code == 200, url


async def test_readme_curl_examples_work_against_the_demo(demo: Demo) -> None:
    tools_list, token, create, entries = curl_blocks()
    assert "tools" in (await run_block(tools_list, demo.base))["result"]
    session = await run_block(token, demo.base)
    session_id = session["result"]["structuredContent"]["sessionId"]
    created = await run_block(create, demo.base, SESSION=session_id)
    conversation_id = created["result"]["structuredContent"]["conversationId"]
    page = await run_block(entries, demo.base, SESSION=session_id, CONVERSATION=conversation_id)
    assert page["result"]["structuredContent"]["entries"]


async def test_a_whole_handoff_with_only_the_playground_and_the_console(demo: Demo) -> None:
    async with chromium() as browser:
        user = await (await browser.new_context(viewport={"width": 1120, "height": 760})).new_page()
        agent = await (
            await browser.new_context(viewport={"width": 1000, "height": 640})
        ).new_page()
        for page in (user, agent):
            page.set_default_timeout(15_000)

        # The user starts a chat and asks the bot for a person.
        await user.goto(f"{demo.base}/playground")
        await user.click("#start")
        conversation_id = await wait_for_text(user.locator("#conversation-id"), r"^[0-9a-f-]{36}$")
        await expect(user.locator("#model-log")).to_contain_text("How can I help you today?")
        await user.fill("#model-text", "I need a human, please")
        await user.click("#model-send")

        # The agent sees it waiting in the console and accepts it.
        await agent.goto(f"{demo.base}/sim/console")
        item = agent.locator(f'button.conv[data-conversation-id="{conversation_id}"]')
        await expect(item).to_contain_text("Waiting for agent")
        await item.click()
        await agent.fill("#agent-name", "Dana Demo")
        await agent.get_by_role("button", name="Accept").click()

        # The widget opens for the user, with the agent's name.
        widget = user.frame_locator("#widget-frame")
        await expect(widget.locator("#agent-name")).to_have_text("Dana Demo")

        # They talk, both ways.
        await agent.get_by_label("Message").fill("Hello from the console")
        await agent.get_by_label("Message").press("Enter")
        await expect(widget.locator("#log")).to_contain_text("Hello from the console")
        await widget.locator("#input").fill("Hello from the widget")
        await widget.locator("#input").press("Enter")
        await expect(agent.locator("#transcript")).to_contain_text("Hello from the widget")

        # The agent ends the chat; the widget says so and stops taking input.
        await agent.get_by_role("button", name="End chat").click()
        await expect(widget.locator("#input")).to_be_disabled()
        await expect(widget.locator("#log")).to_contain_text(re.compile("ended", re.I))

    async with httpx.AsyncClient(base_url=demo.base) as http:
        listing = (await http.get("/sim/control/conversations")).json()["conversations"]
    (conv,) = [c for c in listing if c["conversationId"] == conversation_id]
    assert conv["session"]["endedByRole"] == "Agent"
    user_texts = [
        e["entryPayload"]["abstractMessage"]["staticContent"]["text"]
        for e in conv["entries"]
        if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
    ]
    assert user_texts == ["I need a human, please", "Hello from the widget"]


async def wait_for_text(locator: Locator, pattern: str) -> str:
    await expect(locator).to_have_text(re.compile(pattern))
    return await locator.inner_text()
