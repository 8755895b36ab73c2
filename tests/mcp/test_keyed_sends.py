"""send_message with a clientMessageId: whatever happens, one message per key."""

from __future__ import annotations

from mcp.client import Client

from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, StackFactory, call, read_until
from tests.mcp.test_handoff_flow import messages, start_chat

MESSAGE_ROUTE = "POST /iamessage/api/v2/conversation/{conversationId}/message"


async def posts(stack: Stack) -> int:
    stats = (await stack.control.get("/control/stats")).json()["requests"]
    return int(stats.get(MESSAGE_ROUTE, 0))


async def test_a_message_whose_echo_arrived_is_reported_sent_without_sending_it_again(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        first = await call(
            client, "send_message", {**ids, "text": "my order is late", "clientMessageId": "k1"}
        )
        await read_until(client, ids, lambda e, _: "my order is late" in messages(e, "EndUser"))
        before = await posts(stack)

        again = await call(
            client, "send_message", {**ids, "text": "my order is late", "clientMessageId": "k1"}
        )

        assert again == first
        assert await posts(stack) == before  # settled from the echo: no request at all
        other = await call(client, "send_message", {**ids, "text": "hi", "clientMessageId": "k2"})
        assert other["messageId"] != first["messageId"]
    assert await stack.user_texts(ids["conversationId"]) == ["my order is late", "hi"]


async def test_a_keyed_message_that_opened_a_new_session_is_not_sent_again_on_retry(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, prechat_display_context="Session")
    )
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await stack.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
        await stack.agent(ids["conversationId"], "end")
        await read_until(client, ids, lambda _, i: i["conversationEnded"], seen=seen)
        args = {**ids, "text": "are you still there?", "clientMessageId": "after-end"}

        first = await call(client, "send_message", args)  # a 417, then a new session
        again = await call(client, "send_message", args)

        assert again["messageId"] == first["messageId"]
    assert await stack.user_texts(ids["conversationId"]) == ["are you still there?"]
