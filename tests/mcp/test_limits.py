"""The abuse limits through the tools: what a refused call says, that it costs Salesforce nothing,
what frees a place again, and that a normal user's handoff never meets a default limit. The last
test runs two server processes sharing Redis."""

from __future__ import annotations

import contextlib
import json
import re

import httpx
import pytest
from mcp.client import Client
from redis.asyncio import Redis

from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call, raw_call, read_until
from tests.mcp.test_shared_processes import server_process, shared_env, simulator
from tests.redis_support import redis_prefix

__all__ = ["redis_prefix"]

SUBJECT = "openai/subject"
MINT = "POST /iamessage/api/v2/authorization/unauthenticated/access-token"
CREATE = "POST /iamessage/api/v2/conversation"


def xff(value: str) -> dict[str, str]:
    return {"X-Forwarded-For": value}


async def requests_made(control: httpx.AsyncClient, route: str) -> int:
    return int((await control.get("/control/stats")).json()["requests"].get(route, 0))


async def whole_chat(client: Client, stack: Stack, **meta: str) -> None:
    """Greeting, a message, an agent who joins and answers, the user closes."""
    session = await call(client, "generate_guest_access_token", {}, **meta)
    created = await call(client, "create_conversation", {"sessionId": session["sessionId"]}, **meta)
    ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
    await read_until(client, ids, lambda entries, _: bool(entries), meta=meta)
    await call(client, "send_message", {**ids, "text": "I need a human"}, **meta)
    await stack.agent(ids["conversationId"], "join", {"name": "Jane"})
    await stack.agent(ids["conversationId"], "message", {"text": "Hello, Jane here"})
    await read_until(
        client,
        ids,
        lambda entries, _: any(e.get("text") == "Hello, Jane here" for e in entries),
        meta=meta,
    )
    closed = await call(client, "close_conversation", ids, **meta)
    assert closed["closed"] is True


async def test_a_user_who_starts_over_three_times_never_meets_a_default_limit(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        for _ in range(3):
            await whole_chat(client, stack, **{SUBJECT: "user-1"})
            # A client that names no user (curl, another MCP client) is limited per address.
            await whole_chat(client, stack)


async def test_rates_per_user_and_per_address_say_which_limit_and_mint_nothing_when_refused(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(
        rate_limit_per_user="2/h", rate_limit_per_ip="1/h", trusted_proxy_hops=1
    )
    mint = "generate_guest_access_token"
    for _ in range(2):
        await raw_call(stack.mcp_url, mint, user="user-1", headers=xff("1.1.1.1"))
    before = await requests_made(stack.control, MINT)
    with pytest.raises(ToolFailed) as refused:
        await raw_call(stack.mcp_url, mint, user="user-1", headers=xff("2.2.2.2"))
    assert re.fullmatch(
        r"Error executing tool generate_guest_access_token: generate_guest_access_token is "
        r"limited to 2 per hour for each user \(RATE_LIMIT_PER_USER\); try again in "
        r"(29|30) minutes\.",
        str(refused.value),
    ), refused.value
    assert await requests_made(stack.control, MINT) == before  # no token minted for it
    await raw_call(stack.mcp_url, mint, user="user-2", headers=xff("1.1.1.1"))

    # No user: per address, the one Heroku's router appended (the client's own entries ignored).
    session = await raw_call(stack.mcp_url, mint, headers=xff("3.3.3.3"))
    with pytest.raises(ToolFailed, match=r"1 per hour for each address \(RATE_LIMIT_PER_IP\)"):
        await raw_call(stack.mcp_url, mint, headers=xff("9.9.9.9, 3.3.3.3"))
    await raw_call(stack.mcp_url, mint, headers=xff("3.3.3.3, 4.4.4.4"))

    # create_conversation has budgets of its own.
    handle = {"sessionId": session["sessionId"]}
    await raw_call(stack.mcp_url, "create_conversation", handle, headers=xff("3.3.3.3"))
    creates = await requests_made(stack.control, CREATE)
    with pytest.raises(ToolFailed, match=r"create_conversation is limited to 1 per hour"):
        await raw_call(stack.mcp_url, "create_conversation", handle, headers=xff("3.3.3.3"))
    assert await requests_made(stack.control, CREATE) == creates


async def test_open_conversations_per_user_are_capped_and_freed_by_a_close_or_an_end(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(max_open_conversations_per_user=1)
    me = {SUBJECT: "user-1"}
    async with Client(stack.mcp_url) as client:
        sessions = [
            (await call(client, "generate_guest_access_token", {}, **me))["sessionId"]
            for _ in range(3)
        ]
        first = await call(client, "create_conversation", {"sessionId": sessions[0]}, **me)
        creates = await requests_made(stack.control, CREATE)
        with pytest.raises(ToolFailed) as refused:
            await call(client, "create_conversation", {"sessionId": sessions[1]}, **me)
        assert str(refused.value).endswith(
            "This user already has 1 open conversations (MAX_OPEN_CONVERSATIONS_PER_USER); "
            "close one with close_conversation, or wait until one ends, before opening another."
        )
        assert await requests_made(stack.control, CREATE) == creates
        # Another user is not affected.
        other = await call(client, "generate_guest_access_token", {}, **{SUBJECT: "user-2"})
        them = {SUBJECT: "user-2"}
        await call(client, "create_conversation", {"sessionId": other["sessionId"]}, **them)

        # Closing frees the place.
        ids = {"sessionId": sessions[0], "conversationId": first["conversationId"]}
        await call(client, "close_conversation", ids, **me)
        second = await call(client, "create_conversation", {"sessionId": sessions[1]}, **me)

        # So does the agent ending the conversation, once a read has seen it end.
        ids = {"sessionId": sessions[1], "conversationId": second["conversationId"]}
        with pytest.raises(ToolFailed, match="MAX_OPEN_CONVERSATIONS_PER_USER"):
            await call(client, "create_conversation", {"sessionId": sessions[2]}, **me)
        await stack.agent(second["conversationId"], "join", {"name": "Jane"})
        await stack.agent(second["conversationId"], "end")
        await read_until(client, ids, lambda _, role: role["conversationEnded"], meta=me)
        await call(client, "create_conversation", {"sessionId": sessions[2]}, **me)


async def test_max_sessions_refuses_a_new_session_before_minting_and_a_close_frees_one(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(max_sessions=2)
    async with Client(stack.mcp_url) as client:
        first = await call(client, "generate_guest_access_token", {})
        await call(client, "generate_guest_access_token", {})
        minted = await requests_made(stack.control, MINT)
        with pytest.raises(ToolFailed) as refused:
            await call(client, "generate_guest_access_token", {})
        assert str(refused.value).endswith(
            "The server is at its limit of 2 concurrent chats (MAX_SESSIONS); try again in a "
            "few minutes, when other chats have ended."
        )
        assert await requests_made(stack.control, MINT) == minted
        created = await call(client, "create_conversation", {"sessionId": first["sessionId"]})
        await call(
            client,
            "close_conversation",
            {"sessionId": first["sessionId"], "conversationId": created["conversationId"]},
        )
        await call(client, "generate_guest_access_token", {})


async def test_limits_hold_across_two_processes_sharing_redis(
    redis_prefix: tuple[Redis, str],
) -> None:
    _, prefix = redis_prefix
    limits = {
        "RATE_LIMIT_PER_USER": "2/h",
        "MAX_SESSIONS": "4",
        "MAX_OPEN_CONVERSATIONS_PER_USER": "1",
    }
    async with contextlib.AsyncExitStack() as stack:
        sim_url, control = await stack.enter_async_context(simulator())
        a, b = [
            await stack.enter_async_context(server_process(shared_env(sim_url, prefix, **limits)))
            for _ in range(2)
        ]
        mint = "generate_guest_access_token"
        one = await raw_call(a.url, mint, user="user-1")
        two = await raw_call(b.url, mint, user="user-1")
        with pytest.raises(ToolFailed, match=r"limited to 2 per hour for each user"):
            await raw_call(a.url, mint, user="user-1")

        await raw_call(a.url, "create_conversation", {"sessionId": one["sessionId"]}, user="user-1")
        with pytest.raises(ToolFailed, match="already has 1 open conversations"):
            await raw_call(
                b.url, "create_conversation", {"sessionId": two["sessionId"]}, user="user-1"
            )

        await raw_call(b.url, mint, user="user-2")
        await raw_call(a.url, mint, user="user-3")  # the fourth session of both processes
        minted = await requests_made(control, MINT)
        with pytest.raises(ToolFailed, match=r"limit of 4 concurrent chats \(MAX_SESSIONS\)"):
            await raw_call(b.url, mint, user="user-4")
        assert await requests_made(control, MINT) == minted
        # Each refusal is one log line naming the limit and nothing of the caller.
        await b.wait_for_output(b'"limit.refused"', count=2)
        lines = [line for line in b.output.decode().splitlines() if '"limit.refused"' in line]
        assert [json.loads(line)["limit"] for line in lines] == [
            "MAX_OPEN_CONVERSATIONS_PER_USER",
            "MAX_SESSIONS",
        ]
        assert "user-" not in b.output.decode() and "127.0.0.1" not in "".join(lines)


async def test_a_call_that_fails_at_salesforce_gives_its_place_back(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(max_sessions=1, max_open_conversations_per_user=1)
    async with Client(stack.mcp_url) as client:
        await stack.fault(path="/iamessage/api/v2/authorization/unauthenticated/access-token",
                          method="POST", status=400)  # fmt: skip
        with pytest.raises(ToolFailed, match="HTTP 400"):
            await call(client, "generate_guest_access_token", {})
        session = await call(client, "generate_guest_access_token", {})  # the one place is free
        await stack.fault(path="/iamessage/api/v2/conversation", method="POST", status=400)
        with pytest.raises(ToolFailed, match="HTTP 400"):
            await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        await call(client, "create_conversation", {"sessionId": session["sessionId"]})
