"""The whole handoff through the MCP SDK client over HTTP, against the simulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mcp.client import Client

from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, ToolFailed, call, read_until


def messages(entries: list[dict[str, Any]], *roles: str) -> list[str]:
    return [e["text"] for e in entries if e["kind"] == "message" and e["role"] in roles]


def has(entries: list[dict[str, Any]], kind: str, role: str | None = None) -> bool:
    return any(e["kind"] == kind and (role is None or e["role"] == role) for e in entries)


async def start_chat(client: Client, **meta: str) -> dict[str, str]:
    session = await call(client, "generate_guest_access_token", {}, **meta)
    created = await call(client, "create_conversation", {"sessionId": session["sessionId"]}, **meta)
    return {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}


async def no_disruption(step: str) -> None:
    return None


async def run_full_handoff(
    stack: Stack, disrupt: Callable[[str], Awaitable[None]] = no_disruption
) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        cid = ids["conversationId"]

        _, info = await read_until(
            client, ids, lambda e, _: bool(messages(e, "Chatbot")), seen=seen
        )
        assert not info["isLiveAgent"]

        await disrupt("greeted")
        await call(client, "send_message", {**ids, "text": "I need a human, please"})
        _, info = await read_until(client, ids, lambda e, _: has(e, "queue_position"), seen=seen)
        assert has(seen, "transfer") and has(seen, "left", "Chatbot")
        assert info["transferring"] and not info["isLiveAgent"]

        await stack.agent(cid, "join", {"name": "Jane Agent"})
        _, info = await read_until(client, ids, lambda _, i: i["isLiveAgent"], seen=seen)
        assert info["agentName"] == "Jane Agent"
        await disrupt("agent joined")

        # Three agent messages back to back, all posted before the next read: all of them, once,
        # in order.
        for n in (1, 2, 3):
            await stack.agent(cid, "message", {"text": f"agent says {n}"})
        await read_until(
            client, ids, lambda e, _: "agent says 3" in messages(e, "Agent"), seen=seen
        )

        await call(client, "send_message", {**ids, "text": "thanks, that helps"})
        await stack.agent(cid, "end")
        _, info = await read_until(client, ids, lambda _, i: i["conversationEnded"], seen=seen)
        assert info["endedByAgent"] and not info["isLiveAgent"]
    return seen


async def test_full_handoff_delivers_every_bot_and_agent_message_once_in_order(
    stack: Stack,
) -> None:
    seen = await run_full_handoff(stack)
    assert messages(seen, "Chatbot") == [
        "Hi, I'm Agentforce. How can I help you today?",
        "Sure. I'm transferring you to a human agent now.",
    ]
    assert messages(seen, "Agent") == ["agent says 1", "agent says 2", "agent says 3"]
    assert messages(seen, "EndUser") == ["I need a human, please", "thanks, that helps"]
    ids = [e["id"] for e in seen if e["kind"] == "message"]
    assert len(ids) == len(set(ids))
    assert has(seen, "session_ended") and seen[-1]["endedBy"] == "Agent"
    timestamps = [e["timestamp"] for e in seen]
    assert timestamps == sorted(timestamps)


async def test_handoff_survives_two_stream_cuts_and_two_503s(stack: Stack) -> None:
    """Cut the event stream twice mid-conversation and fail two REST calls with 503."""
    faults = [
        {"path": "/iamessage/api/v2/conversation/{conversationId}/message", "status": 503},
        {"path": "/iamessage/api/v2/conversation", "method": "POST", "status": 503},
    ]
    for fault in faults:
        r = await stack.control.post("/control/faults", json=fault)
        assert r.status_code == 201
    cuts: list[str] = []

    async def cut(step: str) -> None:
        r = await stack.control.post("/control/faults", json={"cutStreams": True})
        assert r.json()["cut"] >= 1
        cuts.append(step)

    seen = await run_full_handoff(stack, cut)
    assert cuts == ["greeted", "agent joined"]
    assert messages(seen, "Agent") == ["agent says 1", "agent says 2", "agent says 3"]
    assert messages(seen, "Chatbot") == [
        "Hi, I'm Agentforce. How can I help you today?",
        "Sure. I'm transferring you to a human agent now.",
    ]
    assert messages(seen, "EndUser") == ["I need a human, please", "thanks, that helps"]
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids))
    assert (await stack.control.get("/control/faults")).json()["faults"] == []
    # The user's message reached Salesforce once despite the retried 503.
    (conv,) = (await stack.control.get("/control/conversations")).json()["conversations"]
    user_texts = [
        e["entryPayload"]["abstractMessage"]["staticContent"]["text"]
        for e in conv["entries"]
        if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
    ]
    assert user_texts == ["I need a human, please", "thanks, that helps"]


async def test_two_guests_never_see_each_others_entries(stack: Stack) -> None:
    async with Client(stack.mcp_url) as a, Client(stack.mcp_url) as b:
        ids_a, ids_b = await asyncio.gather(start_chat(a), start_chat(b))
        await asyncio.gather(
            call(a, "send_message", {**ids_a, "text": "alpha secret"}),
            call(b, "send_message", {**ids_b, "text": "bravo secret"}),
        )
        seen_a, _ = await read_until(a, ids_a, lambda e, _: len(messages(e, "Chatbot")) >= 2)
        seen_b, _ = await read_until(b, ids_b, lambda e, _: len(messages(e, "Chatbot")) >= 2)
        assert messages(seen_a, "EndUser") == ["alpha secret"]
        assert messages(seen_b, "EndUser") == ["bravo secret"]
        # A's handle cannot read B's conversation.
        with pytest.raises(ToolFailed, match="not created in this session"):
            await call(
                a,
                "list_conversation_entries",
                {
                    "sessionId": ids_a["sessionId"],
                    "conversationId": ids_b["conversationId"],
                    "waitSeconds": 0,
                },
            )


async def test_handle_of_one_chatgpt_user_is_refused_for_another(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client, **{"openai/subject": "user-a"})
        page = await call(
            client,
            "list_conversation_entries",
            {**ids, "waitSeconds": 0},
            **{"openai/subject": "user-a"},
        )
        assert "cursor" in page
        with pytest.raises(ToolFailed, match="belongs to another user"):
            await call(
                client, "send_message", {**ids, "text": "hi"}, **{"openai/subject": "user-b"}
            )


async def test_unknown_handle_gets_a_clear_tool_error(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        with pytest.raises(ToolFailed, match="Unknown or expired sessionId"):
            await call(
                client,
                "send_message",
                {
                    "sessionId": "nope",
                    "conversationId": "0" * 8 + "-0000-4000-8000-" + "0" * 12,
                    "text": "hi",
                },
            )


async def test_expired_salesforce_token_gets_a_clear_tool_error(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.control.post("/control/tokens/expire")
        with pytest.raises(ToolFailed, match="no longer accepts this chat session"):
            await call(client, "send_message", {**ids, "text": "still there?"})


async def test_close_conversation_closes_it_in_salesforce_and_forgets_the_handle(
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
        conversations = (await stack.control.get("/control/conversations")).json()
        (conv,) = conversations["conversations"]
        assert conv["open"] is False
        with pytest.raises(ToolFailed, match="This chat was closed"):
            await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})


async def test_read_without_cursor_returns_only_what_is_new(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        first, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        again = await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        assert again["entries"] == []
        # An explicit cursor re-reads from there without moving the session's own cursor.
        replay = await call(
            client, "list_conversation_entries", {**ids, "cursor": "0", "waitSeconds": 0}
        )
        assert [e["id"] for e in replay["entries"]] == [e["id"] for e in first]


async def test_bad_cursor_is_a_clear_error(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        with pytest.raises(ToolFailed, match="cursor must be a value returned"):
            await call(client, "list_conversation_entries", {**ids, "cursor": "abc"})


async def test_entries_arrive_by_polling_while_the_event_stream_is_down(stack: Stack) -> None:
    # Every attempt to open the event stream fails: only the entries endpoint is left.
    r = await stack.control.post(
        "/control/faults", json={"path": "/eventrouter/v1/sse", "status": 503, "count": 10_000}
    )
    assert r.status_code == 201
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await stack.agent(ids["conversationId"], "join", {"name": "Pat Poll"})
        await stack.agent(ids["conversationId"], "message", {"text": "polled hello"})
        await read_until(
            client, ids, lambda e, _: "polled hello" in messages(e, "Agent"), seen=seen
        )
    stats = (await stack.control.get("/control/stats")).json()["requests"]
    assert stats["GET /iamessage/api/v2/conversation/{conversationId}/entries"] >= 1
    ids_seen = [e["id"] for e in seen]
    assert len(ids_seen) == len(set(ids_seen))


async def test_creating_a_second_conversation_keeps_the_first_ones_cursor(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await call(client, "create_conversation", {"sessionId": ids["sessionId"]})
        again = await call(client, "list_conversation_entries", {**ids, "waitSeconds": 0})
        assert again["entries"] == []


async def test_zero_wait_read_sees_entries_while_the_stream_is_down(stack: Stack) -> None:
    r = await stack.control.post(
        "/control/faults", json={"path": "/eventrouter/v1/sse", "status": 503, "count": 10_000}
    )
    assert r.status_code == 201
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        await stack.agent(ids["conversationId"], "join", {"name": "Zed"})
        shown = await call(client, "show_salesforce_chat", ids)
        assert shown["status"] == "live" and shown["agentName"] == "Zed"


async def test_entries_missed_during_a_drop_are_fetched_even_without_replay(
    stack_factory: Callable[..., Any],
) -> None:
    # A Salesforce whose replay window fell short: reconnecting with Last-Event-Id brings nothing.
    stack: Stack = await stack_factory(SimulatorOptions(rate_limits=False, replay=False))
    async with Client(stack.mcp_url) as client:
        ids = await start_chat(client)
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await wait_for_streams(stack, 1)
        # Nobody is reading while the stream is down and the agent talks.
        r = await stack.control.post("/control/faults", json={"cutStreams": True})
        assert r.json()["cut"] == 1
        await stack.agent(ids["conversationId"], "join", {"name": "Gap Agent"})
        await stack.agent(ids["conversationId"], "message", {"text": "said during the gap"})
        await wait_for_streams(stack, 1)
        await read_until(
            client, ids, lambda e, _: "said during the gap" in messages(e, "Agent"), seen=seen
        )
    ids_seen = [e["id"] for e in seen]
    assert len(ids_seen) == len(set(ids_seen))


async def wait_for_streams(stack: Stack, count: int) -> None:
    """Until the simulator has `count` open streams, woken by its control long-poll."""
    async with asyncio.timeout(60):  # safety deadline
        while True:
            listing = (await stack.control.get("/control/conversations")).json()
            stats = (await stack.control.get("/control/stats")).json()
            if stats["openSseStreams"] >= count:
                return
            await stack.control.get(
                "/control/conversations",
                params={"since": listing["version"], "waitSeconds": 5},
            )
