"""What the server logs: one line per tool call, never tokens, handles or what people wrote."""

from __future__ import annotations

import json

import pytest
import structlog
from mcp.client import Client

from app.logs import configure_logging
from tests.mcp.conftest import Stack, call, read_until


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> object:
    # After capsys, so the log lines go to the captured stderr.
    configure_logging("DEBUG", "json")
    yield
    structlog.reset_defaults()


async def test_logs_carry_outcomes_but_no_secrets_or_message_text(
    stack: Stack, json_logs: object, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_text = "my card number is 4111 1111 1111 1111"
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        created = await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
        await call(client, "send_message", {**ids, "text": secret_text})
        await read_until(client, ids, lambda e, _: any(x["text"] == secret_text for x in e))
        failed = await client.call_tool(
            "send_message", {**ids, "sessionId": "wrong-handle", "text": secret_text}
        )
        assert failed.is_error
    org = stack.sim_app.state.simulator
    tokens = [t for t in org.tokens._tokens.values()]
    assert tokens
    output = capsys.readouterr()
    logs = output.err + output.out
    tool_lines = [
        json.loads(line)
        for line in logs.splitlines()
        if line.startswith("{") and '"tool.call"' in line
    ]
    outcomes = {(line["tool"], line["outcome"]) for line in tool_lines}
    assert ("send_message", "ok") in outcomes and ("send_message", "error") in outcomes
    assert all("duration_ms" in line for line in tool_lines)
    assert any(line.get("conversation_id") == ids["conversationId"] for line in tool_lines)
    assert secret_text not in logs
    assert "4111" not in logs
    assert session["sessionId"] not in logs
    for record in tokens:
        assert record.jti not in logs and record.subject not in logs
