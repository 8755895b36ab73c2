"""Business hours: the model learns whether support is open before it opens a conversation, and
outside the hours no conversation is created unless it asks for one anyway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mcp.client import Client

from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call


async def conversations_in_salesforce(stack: Stack) -> int:
    listing = (await stack.control.get("/control/conversations")).json()
    return len(listing["conversations"])


async def test_outside_business_hours_the_model_is_told_and_nothing_is_created_unless_asked(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(SimulatorOptions(rate_limits=False, business_hours="closed"))
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        assert session["supportOpen"] is False
        opens = datetime.fromisoformat(session["supportOpensAt"].replace("Z", "+00:00"))
        # The simulator's next window starts two hours after it answered (to the minute).
        assert timedelta(minutes=115) <= opens - datetime.now(UTC) <= timedelta(minutes=121)

        with pytest.raises(ToolFailed) as refused:
            await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        assert "Support is closed now" in str(refused.value)
        assert session["supportOpensAt"] in str(refused.value)
        assert "outsideBusinessHours=true" in str(refused.value)
        assert await conversations_in_salesforce(stack) == 0

        created = await call(
            client,
            "create_conversation",
            {"sessionId": session["sessionId"], "outsideBusinessHours": True},
        )
        assert created["status"] == "created"
        assert await conversations_in_salesforce(stack) == 1


@pytest.mark.parametrize(
    ("hours", "open_now"),
    [("open", True), ("unset", None)],
)
async def test_within_hours_or_without_any_a_conversation_opens_at_once(
    stack_factory: StackFactory, hours: str, open_now: bool | None
) -> None:
    stack = await stack_factory(SimulatorOptions(rate_limits=False, business_hours=hours))  # type: ignore[arg-type]
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        assert session["supportOpen"] is open_now
        assert session["supportOpensAt"] is None
        created = await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        assert created["status"] == "created"
    assert await conversations_in_salesforce(stack) == 1


async def test_when_salesforce_does_not_say_the_hours_a_chat_still_opens(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(SimulatorOptions(rate_limits=False, business_hours="closed"))
    await stack.fault(path="/embeddedservice/v1/businesshours", status=503, count=None)
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        assert session["supportOpen"] is None
        created = await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        assert created["status"] == "created"


async def test_an_operator_can_let_chats_open_outside_business_hours(
    stack_factory: StackFactory,
) -> None:
    """A deployment whose bot serves around the clock: REFUSE_OUTSIDE_BUSINESS_HOURS=false."""
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, business_hours="closed"),
        refuse_outside_business_hours=False,
    )
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        assert session["supportOpen"] is False  # still said
        created = await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        assert created["status"] == "created"


async def test_a_refusal_outside_hours_does_not_use_up_the_callers_creation_limit(
    stack_factory: StackFactory,
) -> None:
    """One conversation per caller allowed: told support is closed, the user still gets the one
    conversation they then ask for (a refusal creates nothing, so it costs nothing)."""
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, business_hours="closed"), rate_limit_per_ip="1/10m"
    )
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        with pytest.raises(ToolFailed, match="Support is closed now"):
            await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        created = await call(
            client,
            "create_conversation",
            {"sessionId": session["sessionId"], "outsideBusinessHours": True},
        )
        assert created["status"] == "created"
