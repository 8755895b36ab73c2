"""Per-session pre-chat: after the agent ends the session, the user's next message opens a new one
with the pre-chat values the conversation began with, and reaches Salesforce once."""

from __future__ import annotations

from mcp.client import Client

from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, StackFactory, call, read_until
from tests.mcp.test_handoff_flow import messages

PRECHAT = {"_firstName": "Ana", "_email": "ana@example.com", "Order_Number__c": "1234"}


async def test_a_message_after_the_session_ended_starts_a_new_one_with_the_stored_prechat(
    stack_factory: StackFactory,
) -> None:
    # A form with the fields PRECHAT uses (the server checks values against it).
    stack: Stack = await stack_factory(
        SimulatorOptions(
            rate_limits=False,
            prechat_display_context="Session",
            prechat_hidden_fields=("_email", "Order_Number__c"),
        )
    )
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        created = await call(
            client,
            "create_conversation",
            {"sessionId": session["sessionId"], "routingAttributes": PRECHAT},
        )
        ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
        cid = ids["conversationId"]
        seen, _ = await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
        await stack.agent(cid, "join", {"name": "Jane Agent"})
        await stack.agent(cid, "end")
        await read_until(client, ids, lambda _, i: i["conversationEnded"], seen=seen)
        first = await stack.conversation(cid)
        assert first["session"]["status"] == "Ended"

        sent = await call(client, "send_message", {**ids, "text": "One more question"})

        assert sent["status"] == "sent"
        await read_until(
            client, ids, lambda e, _: "One more question" in messages(e, "EndUser"), seen=seen
        )
    conv = await stack.conversation(cid)
    assert conv["session"]["sessionId"] != first["session"]["sessionId"]
    assert conv["session"]["status"] != "Ended"
    assert conv["routingAttributes"] == PRECHAT
    assert await stack.user_texts(cid) == ["One more question"]
    stats = (await stack.control.get("/control/stats")).json()["requests"]
    # The first attempt was refused with 417; the second carried the new session.
    assert stats["POST /iamessage/api/v2/conversation/{conversationId}/message"] == 2
