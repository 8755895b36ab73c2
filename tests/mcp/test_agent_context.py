"""The agent starts informed: create_conversation's summary and customer details reach Salesforce
(hidden pre-chat fields by PRECHAT_FIELD_MAP, else a first marked message), pre-chat values are
checked against the deployment's form first, and the model can see the form beforehand."""

from __future__ import annotations

from typing import Any

import pytest
from mcp.client import Client

from app.prechat import CONTEXT_MARK
from app.simulator import SimulatorOptions
from tests.mcp.conftest import Stack, StackFactory, ToolFailed, call

SUMMARY = "Ana's parcel (order 1234) is a week late; tracking shows no scan since Monday."


async def conversations(stack: Stack) -> list[dict[str, Any]]:
    listing = (await stack.control.get("/control/conversations")).json()
    conversations: list[dict[str, Any]] = listing["conversations"]
    return conversations


async def session_of(client: Client) -> dict[str, Any]:
    return await call(client, "generate_guest_access_token", {})


async def test_without_a_map_the_context_is_a_first_marked_message_from_the_user_side(
    stack: Stack,
) -> None:
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
        created = await call(
            client,
            "create_conversation",
            {
                "sessionId": session["sessionId"],
                "summary": SUMMARY,
                "customerName": "Ana",
                "customerEmail": "ana@example.com",
            },
        )
    assert created["contextMessage"] == "sent"
    [conversation] = await conversations(stack)
    assert conversation["routingAttributes"] == {}
    assert await stack.user_texts(created["conversationId"]) == [
        f"{CONTEXT_MARK}\nSummary: {SUMMARY}\nName: Ana\nEmail: ana@example.com"
    ]


async def test_mapped_context_goes_to_hidden_prechat_fields_and_the_rest_in_the_message(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, prechat_hidden_fields=("ChatGPT_Summary__c",)),
        prechat_field_map="summary:ChatGPT_Summary__c",
    )
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
        created = await call(
            client,
            "create_conversation",
            {
                "sessionId": session["sessionId"],
                "routingAttributes": {"Topic": "Orders"},
                "summary": SUMMARY,
                "customerDetails": "Order 1234",
            },
        )
    [conversation] = await conversations(stack)
    assert conversation["routingAttributes"] == {"Topic": "Orders", "ChatGPT_Summary__c": SUMMARY}
    assert await stack.user_texts(created["conversationId"]) == [
        f"{CONTEXT_MARK}\nDetails: Order 1234"
    ]


async def test_with_everything_mapped_no_message_is_sent(stack_factory: StackFactory) -> None:
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, prechat_hidden_fields=("ChatGPT_Summary__c",)),
        prechat_field_map="summary:ChatGPT_Summary__c",
    )
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
        created = await call(
            client, "create_conversation", {"sessionId": session["sessionId"], "summary": SUMMARY}
        )
    assert created["contextMessage"] is None
    assert await stack.user_texts(created["conversationId"]) == []


@pytest.mark.parametrize(
    ("sim", "settings", "args", "named"),
    [
        # A map to a field the deployment's form does not have.
        (
            SimulatorOptions(rate_limits=False),
            {"prechat_field_map": "summary:ChatGPT_Summary__c"},
            {"summary": SUMMARY},
            ["'ChatGPT_Summary__c'", "PRECHAT_FIELD_MAP", "summary"],
        ),
        # A value longer than the field takes (the form says 40 for _firstName).
        (
            SimulatorOptions(rate_limits=False),
            {"prechat_field_map": "name:_firstName"},
            {"customerName": "A" * 41},
            ["'_firstName'", "at most 40 characters", "name has 41"],
        ),
        (
            SimulatorOptions(rate_limits=False),
            {},
            {"routingAttributes": {"_firstName": "B" * 41}},
            ["'_firstName'", "at most 40 characters"],
        ),
        # A required field left out.
        (
            SimulatorOptions(rate_limits=False, prechat_required=("Topic",)),
            {},
            {"routingAttributes": {"_firstName": "Ana"}},
            ["'Topic'", "is required"],
        ),
        # A field the form does not have.
        (
            SimulatorOptions(rate_limits=False),
            {},
            {"routingAttributes": {"Favourite_Colour__c": "blue"}},
            ["'Favourite_Colour__c'", "not in this deployment's pre-chat form", "_firstName"],
        ),
        # A choice the list does not have.
        (
            SimulatorOptions(rate_limits=False),
            {},
            {"routingAttributes": {"Topic": "Sales"}},
            ["'Topic'", "takes one of: Billing, Orders"],
        ),
        # A required hidden field: the operator's to fill, not the user's.
        (
            SimulatorOptions(rate_limits=False, prechat_required=("Source",)),
            {},
            {},
            ["hidden pre-chat field 'Source'", "operator", "PRECHAT_FIELD_MAP"],
        ),
        # The same field given twice.
        (
            SimulatorOptions(rate_limits=False),
            {"prechat_field_map": "name:_firstName"},
            {"customerName": "Ana", "routingAttributes": {"_firstName": "Ana"}},
            ["'_firstName'", "Give it once"],
        ),
    ],
)
async def test_prechat_values_the_deployment_would_not_take_are_an_error_naming_the_field(
    stack_factory: StackFactory,
    sim: SimulatorOptions,
    settings: dict[str, str],
    args: dict[str, Any],
    named: list[str],
) -> None:
    stack = await stack_factory(sim, **settings)
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
        with pytest.raises(ToolFailed) as refused:
            await call(client, "create_conversation", {"sessionId": session["sessionId"], **args})
    for part in named:
        assert part in str(refused.value)
    assert await conversations(stack) == []  # nothing reached Salesforce


async def test_the_model_sees_the_prechat_form_with_the_session(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(
        SimulatorOptions(rate_limits=False, prechat_required=("_firstName",))
    )
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
    fields = {f["name"]: f for f in session["prechatFields"]}
    assert fields["_firstName"] == {
        "name": "_firstName",
        "required": True,
        "hidden": False,
        "type": "Text",
        "maxLength": 40,
        "choices": None,
    }
    assert fields["Source"]["hidden"] is True and fields["Source"]["required"] is False
    assert fields["Topic"]["type"] == "ChoiceList"
    assert fields["Topic"]["choices"] == ["Billing", "Orders"]
    # It came with the guest token: the configuration endpoint was not asked.
    requests = (await stack.control.get("/control/stats")).json()["requests"]
    assert "GET /embeddedservice/v1/embedded-service-config" not in requests
    assert "POST /iamessage/api/v2/authorization/unauthenticated/access-token" in requests


async def test_a_value_of_exactly_the_fields_length_is_taken(stack: Stack) -> None:
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
        await call(
            client,
            "create_conversation",
            {"sessionId": session["sessionId"], "routingAttributes": {"_firstName": "C" * 40}},
        )
    [conversation] = await conversations(stack)
    assert conversation["routingAttributes"] == {"_firstName": "C" * 40}


async def test_when_the_context_message_fails_the_conversation_is_open_and_the_model_told(
    stack: Stack,
) -> None:
    await stack.fault(
        path="/iamessage/api/v2/conversation/{conversationId}/message",
        method="POST",
        status=400,
        count=1,
    )
    async with Client(stack.mcp_url) as client:
        session = await session_of(client)
        created = await call(
            client, "create_conversation", {"sessionId": session["sessionId"], "summary": SUMMARY}
        )
    assert created["contextMessage"] == "failed"
    [conversation] = await conversations(stack)
    assert conversation["conversationId"] == created["conversationId"]
