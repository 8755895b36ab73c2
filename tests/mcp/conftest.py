"""The MCP server wired to the simulator, both on loopback ports, driven by the SDK's client."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from mcp.client import Client
from starlette.applications import Starlette

from app.config import Settings
from app.main import build_app
from app.simulator import SimulatorOptions, build_simulator
from app.simulator.options import DEFAULT_DEPLOYMENT, DEFAULT_ORG_ID
from tests.servers import serve


def settings_for(scrt_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "miaw_scrt_url": scrt_url,
        "miaw_org_id": DEFAULT_ORG_ID,
        "miaw_es_developer_name": DEFAULT_DEPLOYMENT,
        "poll_interval_seconds": 0.2,
        "log_format": "console",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Stack:
    sim_url: str
    sim_app: Starlette
    mcp_url: str
    control: httpx.AsyncClient
    app: Starlette

    async def fault(self, **fault: Any) -> None:
        response = await self.control.post("/control/faults", json=fault)
        assert response.status_code == 201, response.text

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        """The simulator's own record of a conversation: what Salesforce has."""
        listing = (await self.control.get("/control/conversations")).json()
        return next(c for c in listing["conversations"] if c["conversationId"] == conversation_id)

    async def user_texts(self, conversation_id: str) -> list[str]:
        """The end user's messages as Salesforce recorded them, oldest first."""
        conv = await self.conversation(conversation_id)
        return [
            e["entryPayload"]["abstractMessage"]["staticContent"]["text"]
            for e in sorted(conv["entries"], key=lambda e: e["transcriptedTimestamp"])
            if e["entryType"] == "Message" and e["sender"]["role"] == "EndUser"
        ]

    async def agent(self, conversation_id: str, action: str, body: Any = None) -> Any:
        response = await self.control.post(
            f"/control/conversations/{conversation_id}/agent/{action}", json=body
        )
        assert response.status_code == 200, response.text
        return response.json()


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def stack_factory() -> AsyncIterator[StackFactory]:
    stacks: list[Any] = []

    async def make(
        sim_options: SimulatorOptions | None = None,
        *,
        wrap_simulator: Callable[[Starlette], Any] | None = None,
        **settings: Any,
    ) -> Stack:
        """`wrap_simulator`: ASGI middleware in front of the simulator (its control API too)."""
        sim_app = build_simulator(sim_options or SimulatorOptions(rate_limits=False))
        sim_cm = serve(wrap_simulator(sim_app) if wrap_simulator else sim_app)
        sim_url = await sim_cm.__aenter__()
        stacks.append(sim_cm)
        app = build_app(settings_for(sim_url, **settings))
        app_cm = serve(app, lifespan="on")
        mcp_base = await app_cm.__aenter__()
        stacks.append(app_cm)
        control = httpx.AsyncClient(base_url=sim_url)
        stacks.append(control)
        return Stack(sim_url, sim_app, mcp_base + "/mcp", control, app)

    yield make
    for item in reversed(stacks):
        if isinstance(item, httpx.AsyncClient):
            await item.aclose()
        else:
            await item.__aexit__(None, None, None)


@pytest.fixture
async def stack(stack_factory: Callable[..., Any]) -> Stack:
    result: Stack = await stack_factory()
    return result


class ToolFailed(AssertionError):
    pass


_rpc_ids = itertools.count(1)


async def call(client: Client, name: str, args: dict[str, Any], **meta: str) -> dict[str, Any]:
    result = await client.call_tool(name, args, meta=meta or None)  # type: ignore[arg-type]
    if result.is_error:
        raise ToolFailed(result.content[0].text if result.content else "tool error")
    assert result.structured_content is not None
    return dict(result.structured_content)


async def raw_call(
    url: str,
    name: str,
    args: dict[str, Any] | None = None,
    *,
    user: str | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """tools/call as plain JSON-RPC, so the test chooses the headers: the structured result, or
    ToolFailed with the error's text."""
    params: dict[str, Any] = {"name": name, "arguments": args or {}}
    if user is not None:
        params["_meta"] = {"openai/subject": user}
    sent = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    sent.update(headers or {})
    body = {"jsonrpc": "2.0", "id": next(_rpc_ids), "method": "tools/call", "params": params}
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(url, content=json.dumps(body), headers=sent)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    if result.get("isError"):
        raise ToolFailed(result["content"][0]["text"])
    return dict(result["structuredContent"])


async def read_until(
    client: Client,
    ids: dict[str, str],
    done: Callable[[list[dict[str, Any]], dict[str, Any]], bool],
    *,
    seen: list[dict[str, Any]] | None = None,
    deadline: float = 60.0,  # a safety deadline: it only bounds a failing wait
    wait: float = 5.0,
    meta: dict[str, str] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Call list_conversation_entries (no cursor: the session's own) until `done` holds."""
    entries = seen if seen is not None else []
    role_info: dict[str, Any] = {}
    async with asyncio.timeout(deadline):
        while True:
            args = {**ids, "waitSeconds": wait}
            page = await call(client, "list_conversation_entries", args, **(meta or {}))
            entries.extend(page["entries"])
            role_info = page["roleInfo"]
            if done(entries, role_info):
                return entries, role_info
