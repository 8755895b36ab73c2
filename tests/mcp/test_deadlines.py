"""Every tool call answers inside Heroku's 30 s router limit, whatever Salesforce does, and says
what is known when time runs out. On a virtual clock: each duration is exact, none is waited."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.simulator import SimulatorOptions
from app.store import MemorySessionStore, SessionRecord
from app.tools import BACKSTOP_SECONDS, OVERRAN
from tests.mcp.virtual import VirtualStack, virtual_stack

pytestmark = pytest.mark.looptime

ROUTER_LIMIT = 29.0
# The longest settings the configuration accepts.
LONGEST: dict[str, Any] = {
    "tool_deadline_seconds": 28,
    "wait_max_seconds": 27,
    "wait_default_seconds": 25,
    "scrt_retry_total_seconds": 24.99,
    "scrt_timeout_seconds": 60,
}
V2 = "/iamessage/api/v2"
SLOW = "did not answer in time"


async def start(stack: VirtualStack, **create: Any) -> dict[str, str]:
    session = await stack.call("generate_guest_access_token", {})
    created = await stack.call("create_conversation", {"sessionId": session["sessionId"], **create})
    return {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}


async def slow_salesforce(stack: VirtualStack, path: str = V2 + "/*") -> None:
    """From now on Salesforce takes a minute to answer anything under `path`."""
    await stack.fault(path=path, delay=60, count=10_000)


async def test_no_tool_call_outlasts_the_router_limit_when_salesforce_is_slow() -> None:
    async with virtual_stack(**LONGEST) as stack:
        ids = await start(stack)
        await slow_salesforce(stack)
        calls: list[tuple[str, dict[str, Any]]] = [
            ("generate_guest_access_token", {}),
            ("create_conversation", {"sessionId": ids["sessionId"]}),
            ("send_message", {**ids, "text": "hello?", "clientMessageId": "m-1"}),
            ("send_message", {**ids, "text": "anyone?"}),
            ("list_conversation_entries", {**ids, "waitSeconds": 60}),
            ("get_conversation_routing_status", ids),
            ("show_salesforce_chat", ids),
            ("close_conversation", ids),
        ]
        durations = {}
        for tool, args in calls:
            elapsed, result = await stack.timed(tool, args)
            durations[tool + ("" if "clientMessageId" not in args else "(keyed)")] = elapsed
            if isinstance(result, str):
                assert "Salesforce" in result, (tool, result)
    assert max(durations.values()) <= ROUTER_LIMIT, durations
    # The calls that make several Salesforce requests in a row still answer at the deadline.
    assert durations["close_conversation"] == pytest.approx(28, abs=0.5)


async def test_a_slow_close_says_which_step_did_not_finish() -> None:
    async with virtual_stack(**LONGEST) as stack:
        ids = await start(stack)
        await slow_salesforce(stack)
        elapsed, result = await stack.timed("close_conversation", ids)
    assert elapsed <= ROUTER_LIMIT
    assert isinstance(result, str)
    assert "The conversation is still open" in result
    assert f"ending the messaging session failed: Salesforce {SLOW}" in result
    assert f"closing the conversation failed: Salesforce {SLOW}" in result


async def test_a_close_whose_session_end_is_slow_still_closes_the_conversation() -> None:
    async with virtual_stack(**LONGEST) as stack:
        ids = await start(stack)
        await slow_salesforce(stack, V2 + "/conversation/*/session")
        elapsed, result = await stack.timed("close_conversation", ids)
    # Ending the session may take half of the 28 s; closing the conversation keeps the rest.
    assert elapsed == pytest.approx(14, abs=0.5)
    assert result == {
        "closed": True,
        "sessionEnded": False,
        "conversationClosed": True,
        "problems": [f"ending the messaging session failed: Salesforce {SLOW}. Try again shortly."],
    }


async def test_the_resend_after_a_417_shares_the_deadline_of_the_first_send() -> None:
    options = SimulatorOptions(rate_limits=False, prechat_display_context="Session")
    async with virtual_stack(options, **LONGEST) as stack:
        ids = await start(stack, routingAttributes={"_firstName": "Ana"})
        await stack.call("list_conversation_entries", {**ids, "waitSeconds": 0})
        await stack.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
        await stack.agent(ids["conversationId"], "end")
        message = V2 + "/conversation/{conversationId}/message"
        # The first attempt is answered (417) after 20 s; the resend is slower still.
        await stack.fault(path=message, method="POST", delay=20, count=1)
        await stack.fault(path=message, method="POST", delay=60, count=1)
        elapsed, result = await stack.timed(
            "send_message", {**ids, "text": "still there?", "clientMessageId": "after-417"}
        )
    assert elapsed <= ROUTER_LIMIT
    assert isinstance(result, str)
    assert "Salesforce has not confirmed this message yet" in result
    assert "same clientMessageId" in result


async def test_wait_seconds_is_capped_and_defaulted_by_the_settings() -> None:
    async with virtual_stack() as stack:  # WAIT_MAX_SECONDS 27, WAIT_DEFAULT_SECONDS 25
        ids = await start(stack)
        await stack.call("list_conversation_entries", {**ids, "waitSeconds": 0})
        waits = {}
        for asked in (60, 3, None):
            args = {**ids} if asked is None else {**ids, "waitSeconds": asked}
            waits[asked], page = await stack.timed("list_conversation_entries", args)
            assert isinstance(page, dict) and page["entries"] == []
    assert waits[60] == pytest.approx(27, abs=0.5)
    assert waits[3] == pytest.approx(3, abs=0.5)
    assert waits[None] == pytest.approx(25, abs=0.5)


class HangingStore(MemorySessionStore):
    """A state store that stops answering (a Redis that hangs) when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = False

    async def get(self, handle: str) -> SessionRecord | None:
        if self.hanging:
            await asyncio.Event().wait()
        return await super().get(handle)


async def test_a_call_stuck_on_the_state_store_still_answers_inside_the_router_limit() -> None:
    store = HangingStore()
    async with virtual_stack(store=store, **LONGEST) as stack:
        ids = await start(stack)
        store.hanging = True
        elapsed, result = await stack.timed("list_conversation_entries", {**ids, "waitSeconds": 1})
    assert result == f"Error executing tool list_conversation_entries: {OVERRAN}"
    assert elapsed == pytest.approx(28 + BACKSTOP_SECONDS, abs=0.01)
    assert elapsed <= ROUTER_LIMIT
