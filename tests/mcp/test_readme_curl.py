"""The README's curl examples, run verbatim (bar placeholders) against a live loopback server."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.mcp.conftest import Stack

README = Path(__file__).resolve().parents[2] / "README.md"
README_BASE = "http://127.0.0.1:8000"


def curl_blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## Try it with curl", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


async def run_block(block: str, base: str, **variables: str) -> dict[str, Any]:
    script = block.replace(README_BASE, base)
    for name, value in variables.items():
        script, count = re.subn(rf"^{name}=.*$", f"{name}={value}", script, flags=re.M)
        assert count == 1, f"the README block no longer sets {name}"
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", script, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 0, err.decode()
    answer: dict[str, Any] = json.loads(out)
    return answer


async def test_readme_curl_examples_work_against_a_live_server(stack: Stack) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed; the README's examples need it")
    base = stack.mcp_url.removesuffix("/mcp")
    tools_list, token, create, entries = curl_blocks()

    listed = await run_block(tools_list, base)
    names = {tool["name"] for tool in listed["result"]["tools"]}
    assert names == {
        "generate_guest_access_token",
        "create_conversation",
        "send_message",
        "list_conversation_entries",
        "get_conversation_routing_status",
        "close_conversation",
        "show_salesforce_chat",
        "get_conversation_transcript",
        "send_choice",
        "report_chat_activity",
        "send_file",
    }

    session = await run_block(token, base)
    assert session["result"]["isError"] is False
    session_id = session["result"]["structuredContent"]["sessionId"]

    created = await run_block(create, base, SESSION=session_id)
    assert created["result"]["isError"] is False
    conversation_id = created["result"]["structuredContent"]["conversationId"]

    page = await run_block(entries, base, SESSION=session_id, CONVERSATION=conversation_id)
    result = page["result"]["structuredContent"]
    # The bot's routing and greeting arrive as a burst; the read returns with the first of it.
    assert result["entries"], "the read should return what the bot's arrival produced"
    assert {e["kind"] for e in result["entries"]} <= {
        "routed",
        "session_started",
        "joined",
        "message",
    }
    assert result["roleInfo"]["isLiveAgent"] is False
