"""send_message with a clientMessageId: whatever happens, one message per key."""

from __future__ import annotations

import asyncio
from typing import Any

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


class AnswerHeld:
    """In front of the simulator: a send is processed at once (its echo goes out on the event
    stream) but its answer is held until `release` is set, as when Salesforce's reply is lost."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.release = asyncio.Event()
        self.held = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.endswith("/message")
            or path.startswith("/control")
        ):
            await self.app(scope, receive, send)
            return
        answer: list[Any] = []

        async def keep(message: Any) -> None:
            answer.append(message)

        await self.app(scope, receive, keep)
        self.held += 1
        await self.release.wait()
        for message in answer:
            await send(message)


async def test_a_send_answered_too_late_whose_echo_arrived_is_reported_sent(
    stack_factory: StackFactory,
) -> None:
    """Salesforce records the message (its echo arrives) but its answer comes after the send's
    budget: the tool reports it sent, from the echo, instead of "may not have been sent"."""
    held: list[AnswerHeld] = []

    def hold(app: Any) -> AnswerHeld:
        held.append(AnswerHeld(app))
        return held[0]

    stack = await stack_factory(wrap_simulator=hold, scrt_retry_total_seconds=1.0)
    try:
        async with Client(stack.mcp_url) as client:
            ids = await start_chat(client)
            await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
            sent = await call(client, "send_message", {**ids, "text": "where is my parcel?"})
            assert sent["messageId"]
            assert held[0].held == 1  # its answer never came back in time
    finally:
        held[0].release.set()
    assert await stack.user_texts(ids["conversationId"]) == ["where is my parcel?"]
