"""What the server logs: one line per tool call, never tokens, handles or what people wrote."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from mcp.client import Client

from app.logs import configure_logging
from app.store import SessionStore
from tests.mcp.conftest import Stack, call, read_until

SECRET_TEXT = "my card number is 4111 1111 1111 1111"


@pytest.fixture(params=["json", "console"])
def log_format(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[str]:
    # After capsys, so the log lines go to the captured stderr. DEBUG: nothing is held back.
    configure_logging("DEBUG", request.param)
    yield request.param
    structlog.reset_defaults()


async def test_logs_carry_outcomes_but_no_secrets_or_message_text(
    stack: Stack, log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async with Client(stack.mcp_url) as client:
        session = await call(client, "generate_guest_access_token", {})
        created = await call(client, "create_conversation", {"sessionId": session["sessionId"]})
        ids = {"sessionId": session["sessionId"], "conversationId": created["conversationId"]}
        await call(client, "send_message", {**ids, "text": SECRET_TEXT})
        await read_until(client, ids, lambda e, _: any(x["text"] == SECRET_TEXT for x in e))
        failed = await client.call_tool(
            "send_message", {**ids, "sessionId": "wrong-handle", "text": SECRET_TEXT}
        )
        assert failed.is_error
        store: SessionStore = stack.app.state.runtime.store
        record = await store.get(session["sessionId"])
        assert record is not None
        bearer = record.access_token.get_secret_value()
        await call(client, "close_conversation", ids)
    output = capsys.readouterr()
    logs = output.err + output.out

    assert "tool.call" in logs and "session.started" in logs
    if log_format == "json":
        tool_lines = [
            json.loads(line)
            for line in logs.splitlines()
            if line.startswith("{") and '"tool.call"' in line
        ]
        outcomes = {(line["tool"], line["outcome"]) for line in tool_lines}
        assert ("send_message", "ok") in outcomes and ("send_message", "error") in outcomes
        assert all("duration_ms" in line for line in tool_lines)
        assert any(line.get("conversation_id") == ids["conversationId"] for line in tool_lines)
    # The access token itself, and any recognisable part of it (a JWT's segments).
    assert len(bearer) > 40
    assert bearer not in logs
    for segment in bearer.split("."):
        assert segment not in logs
    assert session["sessionId"] not in logs
    # Not "4111" alone: a timestamp (07:16:57.411198) or a port may hold those digits.
    assert SECRET_TEXT not in logs and "4111 1111" not in logs


async def test_a_callers_newlines_cannot_forge_a_log_line(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG", "json")
    try:
        forged = 'x\n{"event": "forged", "level": "critical"}\nERROR root forged'
        async with httpx.AsyncClient() as http:
            for method, params in [
                ("prompts/get", {"name": forged}),
                ("tools/call", {"name": forged, "arguments": {}}),
                ("resources/read", {"uri": forged}),
            ]:
                await http.post(
                    stack.mcp_url,
                    json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
                    headers={"Accept": "application/json, text/event-stream"},
                )
        logging.getLogger("mcp.test").error("a library's line\\nwith %s", forged)
    finally:
        structlog.reset_defaults()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines, "nothing was logged"
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert not any(r.get("event") == "forged" for r in records)
    assert any(r.get("logger") == "mcp.test" for r in records)
    # The SDK's own traceback for the unknown prompt is among them, escaped inside its line.
    assert any("forged" in str(r.get("exception", "")) for r in records), records
