"""Exactly once in both directions while Salesforce misbehaves: no event replay, half of all calls
failing, streams cut again and again, sends answered too late. Every agent message reaches every
reader once and in order; every user message reaches the agent once."""

from __future__ import annotations

import asyncio

import pytest
from mcp.client import Client

from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call, read_until
from tests.mcp.test_handoff_flow import messages, start_chat

CONVERSATIONS = 20
AGENT_MESSAGES = 30
SAFETY = 240.0  # only so a broken build cannot hang CI; nothing here is timed


def text(n: int) -> str:
    return f"{n}. from the agent"


async def open_chats(stack: Stack, client: Client, count: int) -> list[dict[str, str]]:
    async def one() -> dict[str, str]:
        ids = await start_chat(client)
        await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await stack.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
        return ids

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def read_all_agent_messages(client: Client, ids: dict[str, str], last: str) -> list[str]:
    """A reader with its own cursor, reading until the agent's last message, then once more."""
    cursor = "0"
    seen: list[str] = []
    while not any(text.startswith(last) for text in seen):
        page = await call(
            client, "list_conversation_entries", {**ids, "cursor": cursor, "waitSeconds": 5}
        )
        seen += messages(page["entries"], "Agent")
        cursor = page["cursor"]
    page = await call(
        client, "list_conversation_entries", {**ids, "cursor": cursor, "waitSeconds": 0}
    )
    return seen + messages(page["entries"], "Agent")


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_agent_messages_arrive_once_in_order_without_replay_half_failing_streams_cut(
    stack_factory: StackFactory, seed: int
) -> None:
    stack = await stack_factory(SimulatorOptions(rate_limits=False, replay=False))
    async with Client(stack.mcp_url) as client:
        chats = await open_chats(stack, client, CONVERSATIONS)
        for path in ("/iamessage/*", "/eventrouter/*"):
            await stack.fault(path=path, status=503, probability=0.5, count=None, seed=seed)
        periodic = await stack.control.post("/control/faults", json={"cutStreamsEvery": 4})
        assert periodic.json() == {"cutStreamsEvery": 4}
        expected = {
            ids["conversationId"]: [text(n) for n in range(1, AGENT_MESSAGES + 1)] for ids in chats
        }
        async with asyncio.timeout(SAFETY):
            readers = [
                asyncio.create_task(read_all_agent_messages(client, ids, f"{AGENT_MESSAGES}."))
                for ids in chats
            ]
            for n in range(1, AGENT_MESSAGES + 1):
                await asyncio.gather(
                    *(
                        stack.agent(ids["conversationId"], "message", {"text": text(n)})
                        for ids in chats
                    )
                )
                if n % 5 == 0:
                    # Besides the periodic cuts: a drop in mid-conversation, whatever the pace.
                    await stack.control.post("/control/faults", json={"cutStreams": True})
            received = await asyncio.gather(*readers)
        await stack.control.delete("/control/faults")
    for ids, got in zip(chats, received, strict=True):
        assert got == expected[ids["conversationId"]], ids["conversationId"]


SENDERS = 10
USER_MESSAGES = 20
TIGHT = {
    "tool_deadline_seconds": 5,
    "wait_max_seconds": 4,
    "wait_default_seconds": 3,
    "scrt_retry_total_seconds": 4,
}


async def send_like_a_model(client: Client, ids: dict[str, str], key: str, text: str) -> list[str]:
    """Send with an idempotency key, retrying on any tool error; return every outcome seen."""
    outcomes: list[str] = []
    while not outcomes or outcomes[-1] != "sent":
        try:
            result = await call(
                client, "send_message", {**ids, "text": text, "clientMessageId": key}
            )
        except ToolFailed as failed:
            outcomes.append(str(failed))
        else:
            assert result["clientMessageId"] == key
            outcomes.append(result["status"])
    return outcomes


@pytest.mark.parametrize("seed", [7])
async def test_user_messages_reach_the_agent_once_when_salesforce_answers_sends_too_late(
    stack_factory: StackFactory, seed: int
) -> None:
    stack = await stack_factory(SimulatorOptions(rate_limits=False), **TIGHT)
    async with Client(stack.mcp_url) as client:
        chats = await open_chats(stack, client, SENDERS)
        # One send in ten is answered only after 6 s, past the 5 s every tool call must answer in.
        await stack.fault(
            path="/iamessage/api/v2/conversation/{conversationId}/message",
            method="POST",
            delay=6,
            probability=0.1,
            count=None,
            seed=seed,
        )

        async def user(ids: dict[str, str]) -> list[list[str]]:
            return [
                await send_like_a_model(client, ids, f"msg-{n}", f"user message {n}")
                for n in range(1, USER_MESSAGES + 1)
            ]

        async with asyncio.timeout(SAFETY):
            outcomes = await asyncio.gather(*(user(ids) for ids in chats))
        await stack.control.delete("/control/faults")

    unconfirmed = [o for per_chat in outcomes for per_msg in per_chat for o in per_msg[:-1]]
    assert unconfirmed, "no send was slow: the fault did not bite"
    assert all("Salesforce has not confirmed this message yet" in o for o in unconfirmed)
    for ids in chats:
        assert await stack.user_texts(ids["conversationId"]) == [
            f"user message {n}" for n in range(1, USER_MESSAGES + 1)
        ]
