"""close_conversation reports exactly which step failed, and only a closed chat is forgotten."""

from __future__ import annotations

import pytest
from mcp.client import Client

from tests.mcp.conftest import Stack, ToolFailed, call
from tests.mcp.test_handoff_flow import start_chat

SESSION_PATH = "/iamessage/api/v2/conversation/{conversationId}/session"
CONVERSATION_PATH = "/iamessage/api/v2/conversation/{conversationId}"
INJECTED = "Salesforce answered HTTP 400: Injected fault from the simulator's control API."


async def test_close_ends_the_session_and_closes_the_conversation_in_salesforce(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        result = await call(client, "close_conversation", ids)
    assert result == {
        "closed": True,
        "sessionEnded": True,
        "conversationClosed": True,
        "problems": [],
    }
    conv = await stack.conversation(ids["conversationId"])
    assert conv["open"] is False
    assert conv["session"]["status"] == "Ended"
    stats = (await stack.control.get("/control/stats")).json()["requests"]
    assert stats[f"DELETE {SESSION_PATH}"] == 1
    assert stats[f"DELETE {CONVERSATION_PATH}"] == 1


async def test_a_failed_session_end_is_reported_although_the_conversation_closed(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.fault(path=SESSION_PATH, method="DELETE", status=400)
        result = await call(client, "close_conversation", ids)
        assert result == {
            "closed": True,
            "sessionEnded": False,
            "conversationClosed": True,
            "problems": [f"ending the messaging session failed: {INJECTED}"],
        }
        assert (await stack.conversation(ids["conversationId"]))["open"] is False
        with pytest.raises(ToolFailed, match="This chat was closed"):
            await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})


async def test_a_failed_conversation_close_is_an_error_and_the_chat_stays_usable(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.fault(path=CONVERSATION_PATH, method="DELETE", status=400)
        with pytest.raises(ToolFailed) as failed:
            await call(client, "close_conversation", ids)
        assert str(failed.value).endswith(
            f": The conversation is still open: closing the conversation failed: {INJECTED}"
        )
        assert (await stack.conversation(ids["conversationId"]))["open"] is True

        # Not forgotten: the chat can still be read, written and closed.
        page = await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        assert "cursor" in page
        sent = await call(client, "send_message", {**ids, "text": "still here"})
        assert sent["status"] == "sent"
        again = await call(client, "close_conversation", ids)
        assert again["closed"] is True and again["conversationClosed"] is True
    assert (await stack.conversation(ids["conversationId"]))["open"] is False
