"""get_conversation_transcript: a copy of the whole chat for the user, as Salesforce keeps it."""

from __future__ import annotations

import pytest
from mcp.client import Client

from tests.mcp.conftest import Stack, ToolFailed, call, read_until
from tests.mcp.test_handoff_flow import messages, start_chat


async def test_the_copy_holds_every_message_once_in_order_and_reads_as_text(stack: Stack) -> None:
    count = 60  # more than one page of the entries endpoint (50)
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        cid = ids["conversationId"]
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await call(client, "send_message", {**ids, "text": "my parcel is late"})
        await stack.agent(cid, "join", {"name": "Jane Agent"})
        for n in range(count):
            await stack.agent(cid, "message", {"text": f"agent says {n}"})
        last = f"agent says {count - 1}"
        await read_until(client, ids, lambda e, _: last in messages(e, "Agent"), seen=seen)
        await stack.agent(cid, "end")
        await read_until(client, ids, lambda _, i: i["conversationEnded"], seen=seen)

        copy = await call(client, "get_conversation_transcript", ids)

    assert copy["complete"] is True
    said = ("EndUser", "Chatbot", "Agent")
    assert messages(copy["entries"], *said) == messages(seen, *said)
    assert messages(copy["entries"], "Agent") == [f"agent says {n}" for n in range(count)]
    lines = copy["text"].splitlines()
    assert any(line.endswith("Guest: my parcel is late") for line in lines)
    assert any(line.endswith("Jane Agent joined the chat") for line in lines)
    assert [line.split("  ", 1)[1] for line in lines if "agent says" in line] == [
        f"Jane Agent: agent says {n}" for n in range(count)
    ]
    assert lines[-1].endswith("The chat ended")


async def test_after_the_user_closed_the_chat_there_is_no_copy(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await call(client, "close_conversation", ids)
        with pytest.raises(ToolFailed):
            await call(client, "get_conversation_transcript", ids)


async def test_a_copy_salesforce_cannot_give_says_what_salesforce_answered(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.fault(
            path="/iamessage/api/v2/conversation/{conversationId}/entries",
            method="GET",
            status=400,
            count=None,
        )
        with pytest.raises(ToolFailed, match="Salesforce answered HTTP 400"):
            await call(client, "get_conversation_transcript", ids)
