"""What the operator page shows of a real chat against the simulator, and what it never shows:
message text, session handles, widget keys, Salesforce tokens, the record values Salesforce's
error messages quote."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from mcp.client import Client

from app.main import build_app
from app.scrt.routes import SSE
from app.simulator import SimulatorOptions, build_simulator
from app.store import SessionStore
from tests.admin.conftest import PASSWORD, sign_in
from tests.mcp.conftest import StackFactory, ToolFailed, call, read_until, settings_for
from tests.salesforce.test_crm_tools import crm_settings
from tests.servers import serve

SECRET_TEXT = "my card number is 4111 1111 1111 1111"
AGENT_TEXT = "your replacement ships on Tuesday"
EMAIL = "jane.doe.4417@acme.example"
LAST_NAME = "Featherstonehaugh" * 6


async def signed_in_answers(admin: httpx.AsyncClient) -> list[httpx.Response]:
    """Signed in, every answer the page reads: the page, its state and its audit trail."""
    assert (await sign_in(admin)).status_code == 303
    return [
        await admin.get("/admin"),
        await admin.get("/admin/api/state"),
        await admin.get("/admin/api/audit"),
    ]


async def test_no_message_text_handle_key_or_token_in_any_admin_answer(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(admin_password=PASSWORD, wait_default_seconds=1.0)
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        created = await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
        await call(client, "send_message", {**ids, "text": SECRET_TEXT})
        await read_until(client, ids, lambda e, _: any(x.get("text") == SECRET_TEXT for x in e))
        await stack.agent(ids["conversationId"], "join", {"name": "Jane Agent"})
        await stack.agent(ids["conversationId"], "message", {"text": AGENT_TEXT})
        await read_until(client, ids, lambda e, _: any(x.get("text") == AGENT_TEXT for x in e))
        shown = await client.call_tool("show_salesforce_chat", ids)
        widget_key = (shown.meta or {})["widgetKey"]
        # Refused by the input schema, whose own message quotes the values given.
        refused = await client.call_tool(
            "send_message",
            {**ids, "text": SECRET_TEXT + "!" * 8000, "clientMessageId": f"id {ids['sessionId']}"},
        )
        said = refused.content[0].text  # type: ignore[union-attr]
        # (pydantic shortens long values, keeping their start)
        handle_start = ids["sessionId"][:16]
        assert refused.is_error and "4111" in said and handle_start in said
        # Refused by the service: the conversation is not this session's.
        elsewhere = {**ids, "conversationId": str(uuid.uuid4())}
        assert (await client.call_tool("send_message", {**elsewhere, "text": SECRET_TEXT})).is_error
        store: SessionStore = stack.app.state.runtime.store
        record = await store.get(session["sessionId"])
        assert record is not None
        bearer = record.access_token.get_secret_value()
        await call(client, "close_conversation", ids)

    base = stack.mcp_url.removesuffix("/mcp")
    async with httpx.AsyncClient(base_url=base) as admin:
        answers = await signed_in_answers(admin)
        errors = await admin.get("/admin/api/audit", params={"outcome": "error"})
    assert all(answer.status_code == 200 for answer in [*answers, errors])
    # The trail's line for the refused call names the tool and what it touched, not the text.
    (refused_line,) = errors.json()["records"]  # (the schema's refusal never reached the tool)
    assert refused_line["tool"] == "send_message"
    assert refused_line["arguments"]["conversationId"] == elsewhere["conversationId"]
    assert len(answers[2].json()["records"]) >= 8
    state = answers[1].json()
    (row,) = state["conversations"]
    assert (row["state"], row["endedBy"], row["agent"]) == ("ended", "customer", "Jane Agent")
    assert (state["salesforce"]["opens"], state["salesforce"]["streams"]) == (1, 0)  # closed
    assert [(e["tool"], e["text"]) for e in state["errors"]] == [
        (
            "send_message",
            "Error executing tool send_message: This conversationId was not created in this "
            "session. Use the conversationId returned by create_conversation.",
        ),
        (
            "send_message",
            "Error executing tool send_message: arguments refused by the input schema: "
            "text (string_too_long), clientMessageId (string_pattern_mismatch)",
        ),
    ]
    for answer in answers:
        for secret in (SECRET_TEXT, "4111", AGENT_TEXT, handle_start, widget_key, bearer):
            assert secret not in answer.text, (answer.url, secret)


async def test_no_record_value_a_crm_error_quotes_is_in_any_admin_answer() -> None:
    """Salesforce's error messages quote values (MALFORMED_QUERY the query's token,
    STRING_TOO_LONG the value), and so do the CRM toolset's own checks: the page keeps the
    tool, Salesforce's code and the field names."""
    async with serve(build_simulator(SimulatorOptions(rate_limits=False))) as sim_url:
        settings = settings_for(
            sim_url, admin_password=PASSWORD, host="127.0.0.1", **crm_settings(sim_url)
        )
        async with (
            serve(build_app(settings, crm_on_loopback=True), lifespan="on") as base,
            Client(base + "/mcp") as client,
        ):
            calls: list[tuple[str, dict[str, Any]]] = [
                ("salesforce_query", {"soql": f"SELECT Id FROM Contact WHERE Email '{EMAIL}'"}),
                ("salesforce_create", {"objectName": "Contact", "values": {"LastName": LAST_NAME}}),
                ("salesforce_query", {"soql": "SELECT Id FROM Contact WHERE Email = :e"}),
            ]
            said = []
            for tool, arguments in calls:
                result = await client.call_tool(tool, arguments)
                assert result.is_error, tool
                said.append(result.content[0].text)  # type: ignore[union-attr]
            # The model is told the values: they are what it has to fix.
            assert EMAIL in said[0] and LAST_NAME[:20] in said[1] and "'e'" in said[2]
            async with httpx.AsyncClient(base_url=base) as admin:
                answers = await signed_in_answers(admin)
    assert all(answer.status_code == 200 for answer in answers)
    withheld = "[Salesforce's message withheld]"
    assert [(e["tool"], e["text"]) for e in answers[1].json()["errors"]] == [
        (
            "salesforce_query",
            "Error executing tool salesforce_query: soql uses :e but params has no '…'.",
        ),
        (
            "salesforce_create",
            "Error executing tool salesforce_create: Salesforce refused the request (field "
            f"LastName): STRING_TOO_LONG {withheld}",
        ),
        (
            "salesforce_query",
            "Error executing tool salesforce_query: Salesforce refused the request: "
            f"MALFORMED_QUERY {withheld}",
        ),
    ]
    for answer in answers:
        for secret in (EMAIL, "jane.doe", LAST_NAME[:20], "Featherstone"):
            assert secret not in answer.text, (answer.url, secret)


async def state_until(
    admin: httpx.AsyncClient, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Follow the page's long poll until `done` holds (a safety deadline bounds a failing wait)."""
    state: dict[str, Any] = (await admin.get("/admin/api/state")).json()
    async with asyncio.timeout(30):
        while not done(state):
            answer = await admin.get("/admin/api/state", params={"after": state["version"]})
            state = answer.json()
    return state


async def test_event_streams_show_their_reconnects_and_a_stream_salesforce_refused(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(admin_password=PASSWORD, wait_default_seconds=1.0)
    base = stack.mcp_url.removesuffix("/mcp")
    async with Client(stack.mcp_url) as client, httpx.AsyncClient(base_url=base) as admin:
        await sign_in(admin)
        session = await call(client, "generate_guest_access_token", {})
        await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        state = await state_until(admin, lambda s: s["salesforce"]["connected"] == 1)
        assert state["salesforce"]["reconnects"] == 0

        cut = await stack.control.post("/control/faults", json={"cutStreams": True})
        assert cut.json() == {"cut": 1}
        state = await state_until(admin, lambda s: s["salesforce"]["reconnects"] == 1)
        assert state["salesforce"]["lastReconnectAt"] is not None

        # The next stream opened is refused (401): it stops for good, and the page says why.
        await stack.fault(path=SSE, status=401, count=1)
        other = await call(client, "generate_guest_access_token", {})
        await call(client, "create_conversation", {"sessionId": other["sessionId"]})
        state = await state_until(admin, lambda s: s["salesforce"]["stopped"] == 1)
    assert state["salesforce"]["lastStop"]["error"] == "ScrtAuthError"
    assert (state["salesforce"]["streams"], state["salesforce"]["connected"]) == (2, 1)


async def test_a_rate_limit_refusal_is_shown_with_its_limit_and_tool(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(admin_password=PASSWORD, rate_limit_per_ip="1/h")
    base = stack.mcp_url.removesuffix("/mcp")
    async with Client(stack.mcp_url) as client:
        await call(client, "generate_guest_access_token", {})
        with pytest.raises(ToolFailed, match="RATE_LIMIT_PER_IP"):
            await call(client, "generate_guest_access_token", {})
    async with httpx.AsyncClient(base_url=base) as admin:
        await sign_in(admin)
        state = (await admin.get("/admin/api/state")).json()
    refusal = state["refusals"][0]
    assert (refusal["limit"], refusal["tool"]) == (
        "RATE_LIMIT_PER_IP",
        "generate_guest_access_token",
    )
    assert state["refusalCounts"] == {"RATE_LIMIT_PER_IP": 1}
    assert "RATE_LIMIT_PER_IP" in state["errors"][0]["text"]  # the model was told, too
