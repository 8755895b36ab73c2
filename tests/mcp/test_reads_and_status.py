"""Reads gather a bot's multi-part answer, routing status follows the conversation, and a session
never outlives its Salesforce token."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from mcp.client import Client

from app.simulator import SimulatorOptions
from app.store import SessionStore
from tests.mcp.conftest import Stack, StackFactory, call, read_until
from tests.mcp.test_handoff_flow import has, messages, start_chat

PARTS = ["Here is how returns work:", "1. Pack the item.", "2. Print the label.", "3. Drop it off."]


async def test_a_bots_four_part_answer_arrives_whole_in_one_read(
    stack_factory: StackFactory,
) -> None:
    # A quiet window far longer than the bot's pace, so only the loop that waits again after
    # each part can gather all four.
    stack = await stack_factory(burst_window_seconds=2.0)
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        pending = asyncio.create_task(
            call(client, "list_conversation_entries", {**ids, "waitSeconds": 20})
        )
        for n, part in enumerate(PARTS):
            if n:
                await asyncio.sleep(0.3)  # the bot's pace between parts, not a wait for anything
            response = await stack.control.post(
                f"/control/conversations/{ids['conversationId']}/bot/message", json={"text": part}
            )
            assert response.status_code == 200
        page = await pending
    assert messages(page["entries"], "Chatbot") == PARTS


async def routing(client: Client, ids: dict[str, str]) -> str:
    result = await call(client, "get_conversation_routing_status", ids)
    assert result["conversationId"] == ids["conversationId"]
    status: str = result["routingStatus"]
    return status


async def test_routing_status_follows_the_conversation_from_bot_to_agent_to_no_owner(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        cid = ids["conversationId"]
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        assert await routing(client, ids) == "ROUTED"  # the bot owns it
        await call(client, "send_message", {**ids, "text": "a person, please"})
        await read_until(client, ids, lambda e, _: has(e, "queue_position"), seen=seen)
        assert await routing(client, ids) == "TRANSFER"
        await stack.agent(cid, "join", {"name": "Jane Agent"})
        await read_until(client, ids, lambda _, i: i["isLiveAgent"], seen=seen)
        assert await routing(client, ids) == "ROUTED"  # the agent owns it
        await stack.agent(cid, "end")
        await read_until(client, ids, lambda _, i: i["conversationEnded"], seen=seen)
        assert await routing(client, ids) == "NEEDS_ROUTING"


async def test_routing_status_is_initial_until_the_conversation_is_routed(
    stack_factory: StackFactory,
) -> None:
    # The simulated bot takes a minute to pick the conversation up.
    stack = await stack_factory(SimulatorOptions(rate_limits=False, actor_delay=60))
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        assert await routing(client, ids) == "INITIAL"


def expiry(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp()


async def token_expiry(stack: Stack, handle: str) -> float:
    store: SessionStore = stack.app.state.runtime.store
    record = await store.get(handle)
    assert record is not None and record.token_expires_at is not None
    return record.token_expires_at


async def test_a_session_expires_with_its_salesforce_token_when_that_comes_first(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, guest_token_ttl=600), session_ttl_seconds=4 * 3600
    )
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
    token_exp = await token_expiry(stack, session["sessionId"])
    assert expiry(session["expiresAt"]) == token_exp


async def test_a_session_expires_at_its_own_ttl_when_that_comes_first(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, guest_token_ttl=3600), session_ttl_seconds=600
    )
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
    token_exp = await token_expiry(stack, session["sessionId"])
    # 600 s after it started, i.e. about 3,000 s before the token would have expired.
    assert 2900 < token_exp - expiry(session["expiresAt"]) <= 3000


@pytest.mark.parametrize(
    ("attributes", "named"),
    [
        ({f"f{n}": "x" for n in range(51)}, "routingAttributes"),
        ({"_firstName": "x" * 1001}, "routingAttributes._firstName"),
        ({"bad name!": "x"}, "routingAttributes"),
    ],
)
async def test_oversized_or_malformed_prechat_values_are_refused_naming_the_field(
    stack: Stack, attributes: dict[str, str], named: str
) -> None:
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        result = await client.call_tool(
            "create_conversation",
            {"sessionId": session["sessionId"], "routingAttributes": attributes},
        )
    assert result.is_error
    text = result.content[0].text if result.content else ""
    assert named in text
    assert (await stack.control.get("/control/conversations")).json()["conversations"] == []


async def test_typing_entries_come_only_when_asked_for(stack: Stack) -> None:
    """list_conversation_entries' includeTyping: the agent's typing indicator is an entry only
    for a read that asks for it (the widget does; the model does not need it)."""
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
        await read_until(client, ids, lambda e, _: has(e, "joined", "Agent"))
        now = await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        cursor = now["cursor"]
        await stack.agent(ids["conversationId"], "typing", {"typing": True})
        asked = await call(
            client,
            "list_conversation_entries",
            {**ids, "cursor": cursor, "waitSeconds": 20, "includeTyping": True},
        )
        plain = await call(
            client, "list_conversation_entries", {**ids, "cursor": cursor, "waitSeconds": 0}
        )
    assert has(asked["entries"], "typing_started", "Agent")
    assert not has(plain["entries"], "typing_started")
