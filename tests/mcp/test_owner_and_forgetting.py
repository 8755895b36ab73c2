"""A handle works only for the ChatGPT user it was made for, on every tool; a closed chat keeps
neither its Salesforce token nor its event stream."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client

from app.main import Runtime
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call
from tests.mcp.test_handoff_flow import start_chat

ALICE = {"openai/subject": "user-a"}
MALLORY = {"openai/subject": "user-b"}


def tool_args(ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("create_conversation", {"sessionId": ids["sessionId"]}),
        ("send_message", {**ids, "text": "hi"}),
        ("list_conversation_entries", {**ids, "waitSeconds": 0}),
        ("get_conversation_routing_status", ids),
        ("get_conversation_transcript", ids),
        ("send_choice", {**ids, "messageId": "m-1", "choiceId": "c-1"}),
        ("send_file", {**ids, "fileName": "a.txt", "mimeType": "text/plain", "content": "aGk="}),
        ("report_chat_activity", {**ids, "typing": True}),
        ("show_salesforce_chat", ids),
        ("close_conversation", ids),
    ]


async def test_every_tool_refuses_a_handle_of_another_chatgpt_user(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client, **ALICE)
        for tool, args in tool_args(ids):
            with pytest.raises(ToolFailed, match="belongs to another user"):
                await call(client, tool, args, **MALLORY)
        # Nothing was done on Alice's behalf: her chat is open and still hers.
        assert (await stack.conversation(ids["conversationId"]))["open"] is True
        assert await stack.user_texts(ids["conversationId"]) == []
        routing = await call(client, "get_conversation_routing_status", ids, **ALICE)
        copy = await call(client, "get_conversation_transcript", ids, **ALICE)
        assert routing["conversationId"] == ids["conversationId"]
        assert copy["conversationId"] == ids["conversationId"]


async def test_a_routing_status_salesforce_cannot_give_is_a_clear_error(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.fault(path="/iamessage/api/v2/conversation/{conversationId}", method="GET",
                          status=404)  # fmt: skip
        with pytest.raises(ToolFailed, match="Salesforce does not know this conversation"):
            await call(client, "get_conversation_routing_status", ids)


async def test_a_closed_chat_keeps_neither_its_token_nor_its_event_stream(stack: Stack) -> None:
    runtime: Runtime = stack.app.state.runtime
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        feed = await runtime.delivery.feed(ids["sessionId"], "", None, expires_at=float("inf"))
        assert runtime.delivery.feed_count == 1 and feed.stream_connected
        await call(client, "close_conversation", ids)
        assert runtime.delivery.feed_count == 0
        assert not feed.stream_connected  # its Salesforce stream is closed, not just forgotten
        record = await runtime.store.get(ids["sessionId"])
        assert record is not None and record.closed
        assert record.access_token.get_secret_value() == ""
        with pytest.raises(ToolFailed, match="This chat was closed"):
            await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        assert runtime.delivery.feed_count == 0  # the read did not reopen it


async def test_a_chat_whose_idle_stream_was_already_closed_still_closes(stack: Stack) -> None:
    runtime: Runtime = stack.app.state.runtime
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await runtime.delivery.drop(ids["sessionId"])  # as the idle sweep does after 15 minutes
        assert runtime.delivery.feed_count == 0
        result = await call(client, "close_conversation", ids)
    assert result["closed"] is True
    assert (await stack.conversation(ids["conversationId"]))["open"] is False


async def test_a_closed_chat_still_says_it_belongs_to_another_user(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client, **ALICE)
        closed = await call(client, "close_conversation", ids, **ALICE)
        assert closed["closed"]
        # Another user learns nothing about Alice's chat, not even that it was closed.
        for tool, args in tool_args(ids):
            with pytest.raises(ToolFailed, match="belongs to another user"):
                await call(client, tool, args, **MALLORY)
        with pytest.raises(ToolFailed, match="This chat was closed"):
            await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0}, **ALICE)


async def test_a_full_server_refuses_new_chats_and_never_ends_a_live_one(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(max_sessions=2)
    async with Client(stack.mcp_url) as client:
        first = await start_chat(client)
        second = await start_chat(client)
        with pytest.raises(ToolFailed, match=r"limit of 2 concurrent chats \(MAX_SESSIONS\)"):
            await call(client, "generate_guest_access_token", {})
        for ids in (first, second):  # both live chats go on
            page = await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
            assert "cursor" in page


async def test_a_bound_handle_refuses_calls_naming_nobody_unless_they_carry_the_widget_key(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client, **ALICE)
        shown = await client.call_tool("show_salesforce_chat", ids, meta=ALICE)  # type: ignore[arg-type]
        assert not shown.is_error
        assert shown.meta is not None
        key = shown.meta["widgetKey"]
        assert key and key not in str(shown.structured_content)  # the model never sees it
        widget_calls = [
            ("list_conversation_entries", {**ids, "waitSeconds": 0}),
            ("send_message", {**ids, "text": "from the widget"}),
        ]
        for tool, args in widget_calls:
            # No user named, no key (or a wrong one): refused, as for another user.
            for extra in ({}, {"widgetKey": "x" * len(key)}):
                with pytest.raises(ToolFailed, match="belongs to another user"):
                    await call(client, tool, {**args, **extra})
            # Another user named, even with the key: refused.
            with pytest.raises(ToolFailed, match="belongs to another user"):
                await call(client, tool, {**args, "widgetKey": key}, **MALLORY)
            # No user named, the widget's key: served.
            await call(client, tool, {**args, "widgetKey": key})
        # The key of one conversation opens no other.
        other = await call(client, "create_conversation", {"sessionId": ids["sessionId"]}, **ALICE)
        with pytest.raises(ToolFailed, match="belongs to another user"):
            await call(
                client,
                "list_conversation_entries",
                {**ids, "conversationId": other["conversationId"], "widgetKey": key},
            )
        closed = await call(client, "close_conversation", {**ids, "widgetKey": key})
        assert closed["closed"]
    assert await stack.user_texts(ids["conversationId"]) == ["from the widget"]
