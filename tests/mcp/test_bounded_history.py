"""A long chat keeps only its newest entries in memory (HISTORY_ENTRIES); a reader from the start
(the widget opening on it) still gets every entry once, in order, fetched again from Salesforce."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mcp.client import Client

from app.delivery import DeliveryEngine, GuestFeed
from app.scrt import Entry, RetryPolicy
from app.transcript import ConversationLog
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call, read_until
from tests.mcp.test_handoff_flow import messages, start_chat

KEEP = 10
AGENT_MESSAGES = 35


def shown(entries: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """What a reader shows of each entry, whichever way it came (event stream or fetch)."""
    return [(e["kind"], e["role"], e.get("text")) for e in entries]


async def long_chat(stack: Stack, client: Client) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A chat with more entries than the log keeps, read live to its end by the model."""
    ids = await start_chat(client)
    cid = ids["conversationId"]
    seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
    await stack.agent(cid, "join", {"name": "Jane Agent"})
    for n in range(AGENT_MESSAGES):
        await stack.agent(cid, "message", {"text": f"agent says {n}"})
    last = f"agent says {AGENT_MESSAGES - 1}"
    await read_until(client, ids, lambda e, _: last in messages(e, "Agent"), seen=seen)
    return ids, seen


def feed_of(stack: Stack, ids: dict[str, str]) -> GuestFeed:
    delivery = stack.app.state.runtime.delivery
    assert isinstance(delivery, DeliveryEngine)
    feed = delivery.get(ids["sessionId"])
    assert feed is not None
    return feed


async def read_from_start(
    client: Client, ids: dict[str, str], cursor: str = "0"
) -> list[dict[str, Any]]:
    """Read with explicit cursors from `cursor` until a read returns nothing new."""
    entries: list[dict[str, Any]] = []
    while True:
        page = await call(
            client, "list_conversation_entries", {**ids, "cursor": cursor, "waitSeconds": 0}
        )
        entries += page["entries"]
        if page["cursor"] == cursor:
            return entries
        cursor = page["cursor"]


async def test_a_long_chat_keeps_only_its_newest_entries_and_reads_whole_from_the_start(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(history_entries=KEEP)
    async with Client(stack.mcp_url) as client:
        ids, live = await long_chat(stack, client)
        target = feed_of(stack, ids).logs[ids["conversationId"]]
        assert len(target.entries) == KEEP
        assert len(target.retired) > AGENT_MESSAGES - KEEP

        # One read from the start (the widget opening on the chat) brings the whole of it: the
        # retired entries fetched again, then those in memory.
        first = await call(
            client, "list_conversation_entries", {**ids, "cursor": "0", "waitSeconds": 0}
        )
        assert int(first["cursor"]) == target.position
    assert shown(first["entries"]) == shown(live)
    assert messages(first["entries"], "Agent") == [f"agent says {n}" for n in range(AGENT_MESSAGES)]


async def test_a_failed_fetch_of_older_entries_is_an_error_and_the_same_cursor_works_after(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(history_entries=KEEP)
    async with Client(stack.mcp_url) as client:
        ids, live = await long_chat(stack, client)
        # Every attempt of the client's retries fails.
        await stack.fault(
            path="/iamessage/api/v2/conversation/{conversationId}/entries",
            status=503,
            count=RetryPolicy().max_attempts,
        )
        with pytest.raises(ToolFailed) as failed:
            await call(client, "list_conversation_entries", {**ids, "cursor": "0"})
        assert "Read again with the same cursor" in str(failed.value)
        assert "Salesforce answered HTTP 503" in str(failed.value)  # what failed, said
        again = await read_from_start(client, ids)
    assert shown(again) == shown(live)


async def test_a_feed_rebuilt_after_an_idle_close_reads_the_whole_chat_from_the_start(
    stack_factory: StackFactory,
) -> None:
    """A rebuilt feed's first read fetches the whole chat, more than the log keeps: a reader
    from the start still gets all of it (it used to get only the newest HISTORY_ENTRIES)."""
    stack = await stack_factory(history_entries=KEEP)
    async with Client(stack.mcp_url) as client:
        ids, live = await long_chat(stack, client)
        delivery = stack.app.state.runtime.delivery
        assert isinstance(delivery, DeliveryEngine)
        await delivery.drop(ids["sessionId"])  # as the idle sweep does after 15 minutes
        again = await read_from_start(client, ids)
    assert messages(again, "Agent") == [f"agent says {n}" for n in range(AGENT_MESSAGES)]
    assert shown(again) == [e for e in shown(live) if e[0] != "queue_position"]


async def test_entries_retired_while_older_ones_are_fetched_are_read_next_once_each(
    stack_factory: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a read fetches older entries, more arrive than the log keeps: the read returns
    what it fetched with a cursor before the newly retired ones, and the next reads bring
    those, and the rest, each once."""
    stack = await stack_factory(history_entries=KEEP)
    async with Client(stack.mcp_url) as client:
        ids, _ = await long_chat(stack, client)
        cid = ids["conversationId"]
        fetch = GuestFeed.retired
        arrived: list[str] = []

        async def retired_while_more_arrive(
            feed: GuestFeed, target: ConversationLog, cursor: int
        ) -> tuple[list[Entry], int]:
            older = await fetch(feed, target, cursor)
            if not arrived:
                for n in range(KEEP + 5):
                    await stack.agent(cid, "message", {"text": f"late {n}"})
                    arrived.append(f"late {n}")
                # They reach the log through the event stream: wait for the last.
                async with asyncio.timeout(30):  # a safety deadline; the append is the event
                    while not any(e.text == arrived[-1] for e in target.entries):
                        await target.wait_for_append(5.0)
            return older

        monkeypatch.setattr(GuestFeed, "retired", retired_while_more_arrive)
        first = await call(
            client, "list_conversation_entries", {**ids, "cursor": "0", "waitSeconds": 0}
        )
        target = feed_of(stack, ids).logs[cid]
        assert int(first["cursor"]) < len(target.retired)  # it stopped before the new ones
        rest = await read_from_start(client, ids, first["cursor"])
    everything = first["entries"] + rest
    assert messages(everything, "Agent") == [
        *(f"agent says {n}" for n in range(AGENT_MESSAGES)),
        *arrived,
    ]


async def test_a_read_from_the_start_with_typing_asked_for_shows_the_typing_in_memory(
    stack_factory: StackFactory,
) -> None:
    """Typing indicators are not in Salesforce's transcript: those retired are gone, but one
    still in memory comes with a read from the start that asks for typing."""
    stack = await stack_factory(history_entries=KEEP)
    async with Client(stack.mcp_url) as client:
        ids, _ = await long_chat(stack, client)
        await stack.agent(ids["conversationId"], "typing", {"typing": True})
        target = feed_of(stack, ids).logs[ids["conversationId"]]
        async with asyncio.timeout(30):  # a safety deadline; the append is the event
            while not any(e.entry_type == "TypingStartedIndicator" for e in target.entries):
                await target.wait_for_append(5.0)
        args = {**ids, "cursor": "0", "waitSeconds": 0}
        with_typing = await call(
            client, "list_conversation_entries", {**args, "includeTyping": True}
        )
        without = await call(client, "list_conversation_entries", args)
    kinds = [e["kind"] for e in with_typing["entries"]]
    assert kinds.count("typing_started") == 1 and kinds[-1] == "typing_started"
    assert "typing_started" not in [e["kind"] for e in without["entries"]]


async def test_a_read_from_the_start_counts_as_use_for_the_idle_sweep(
    stack_factory: StackFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = await stack_factory(history_entries=KEEP)
    monkeypatch.setattr("app.delivery.IDLE_SWEEP_INTERVAL", 0.0)  # sweep at every call
    async with Client(stack.mcp_url) as client:
        ids, _ = await long_chat(stack, client)
        feed = feed_of(stack, ids)
        await call(client, "list_conversation_entries", {**ids, "cursor": "0", "waitSeconds": 0})
        delivery = stack.app.state.runtime.delivery
        await delivery.sweep()
        assert delivery.get(ids["sessionId"]) is feed  # just read: not idle
