"""Without Redis a restart loses every chat; the user is told so plainly."""

from __future__ import annotations

import signal

import httpx
import pytest
from mcp.client import Client

from app.conversations import SERVER_RESTARTED
from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.mcp.conftest import Stack, ToolFailed, call, read_until, settings_for
from tests.mcp.test_handoff_flow import has, messages, start_chat
from tests.mcp.test_shared_processes import server_process
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


async def test_sigterm_ends_the_salesforce_sessions_it_cannot_keep() -> None:
    sim = build_simulator(SimulatorOptions(rate_limits=False))
    async with serve(sim) as sim_url, httpx.AsyncClient(base_url=sim_url) as control:
        env = {
            "MIAW_SCRT_URL": sim_url,
            "MIAW_ORG_ID": DEFAULT_ORG_ID,
            "MIAW_ES_DEVELOPER_NAME": DEFAULT_DEPLOYMENT,
        }
        async with server_process(env) as server, Client(server.url) as client:
            ids = await start_chat(client)
            await read_until(client, ids, lambda e, _: bool(messages(e, "Chatbot")))
            await call(client, "send_message", {**ids, "text": "a person, please"})
            await read_until(client, ids, lambda e, _: has(e, "queue_position"))
            joined = await control.post(
                f"/control/conversations/{ids['conversationId']}/agent/join", json={"name": "Jane"}
            )
            assert joined.status_code == 200
            await read_until(client, ids, lambda _, i: i["isLiveAgent"])
            server.proc.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal once shut down: the exit is "terminated by SIGTERM".
            assert await server.proc.wait() == -signal.SIGTERM
        # The agent is not left talking to nobody: Salesforce ended the session.
        conversation = (await control.get("/control/conversations")).json()["conversations"][0]
        statuses = [
            e["entryPayload"].get("sessionStatus")
            for e in conversation["entries"]
            if e["entryType"] == "SessionStatusChanged"
        ]
        assert statuses[-1] == "Ended"
