"""Without Redis a restart loses every chat; the user is told so plainly."""

from __future__ import annotations

import pytest
from mcp.client import Client

from app.conversations import SERVER_RESTARTED
from app.main import build_app
from tests.mcp.conftest import Stack, ToolFailed, call, settings_for
from tests.mcp.test_handoff_flow import start_chat
from tests.servers import serve


async def test_a_handle_from_before_a_restart_says_the_server_restarted(stack: Stack) -> None:
    async with Client(stack.mcp_url) as before:
        ids = await start_chat(before)
    # The restarted server: a new process, nothing in memory, the same Salesforce.
    restarted = build_app(settings_for(stack.sim_url))
    async with serve(restarted, lifespan="on") as url, Client(url + "/mcp") as after:
        for tool, args in [
            ("list_conversation_entries", {**ids, "waitSeconds": 0}),
            ("send_message", {**ids, "text": "hello?"}),
            ("close_conversation", ids),
        ]:
            with pytest.raises(ToolFailed) as failed:
                await call(after, tool, args)
            assert str(failed.value).endswith(SERVER_RESTARTED)
        # A handle no process made is still just unknown.
        with pytest.raises(ToolFailed, match="Unknown or expired sessionId"):
            await call(
                after,
                "list_conversation_entries",
                {**ids, "sessionId": "not-a-handle-of-ours", "waitSeconds": 0},
            )
        # A new chat on the restarted server works.
        fresh = await start_chat(after)
        page = await call(after, "list_conversation_entries", {**fresh, "waitSeconds": 0})
        assert "cursor" in page
