"""The server and the simulator in one event loop without sockets, for tests on a virtual clock.

With `@pytest.mark.looptime` the loop's clock is fast-forwarded: sleeps, timeouts and the
simulator's delay faults take no real time, and `loop.time()` measures what a call would take
exactly. The MCP client talks to the server in-process; the server reaches the simulator through
httpx's ASGI transport. That transport buffers whole responses, so the event stream cannot work
here: it is failed on purpose and reads poll the entries endpoint, as they do while a real stream
is down. Tests that need the stream use the loopback stack in conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from mcp.client import Client

from app.main import Runtime, build_runtime
from app.simulator import SimulatorOptions, build_simulator
from app.store import SessionStore
from tests.mcp.conftest import ToolFailed, settings_for

SIM_URL = "http://sim.test"
SSE_PATH = "/eventrouter/v1/sse"


@dataclass
class VirtualStack:
    client: Client
    control: httpx.AsyncClient
    runtime: Runtime

    async def fault(self, **fault: Any) -> None:
        response = await self.control.post("/control/faults", json=fault)
        assert response.status_code == 201, response.text

    async def agent(self, conversation_id: str, action: str, body: Any = None) -> None:
        response = await self.control.post(
            f"/control/conversations/{conversation_id}/agent/{action}", json=body
        )
        assert response.status_code == 200, response.text

    async def timed(self, tool: str, args: dict[str, Any]) -> tuple[float, dict[str, Any] | str]:
        """(seconds on the loop's clock, the structured result or the tool error's text)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await self.client.call_tool(tool, args)
        elapsed = loop.time() - started
        if result.is_error:
            return elapsed, result.content[0].text if result.content else ""
        assert result.structured_content is not None
        return elapsed, dict(result.structured_content)

    async def call(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        _, result = await self.timed(tool, args)
        if isinstance(result, str):
            raise ToolFailed(result)
        return result


@contextlib.asynccontextmanager
async def virtual_stack(
    sim_options: SimulatorOptions | None = None,
    store: SessionStore | None = None,
    **settings: Any,
) -> AsyncIterator[VirtualStack]:
    sim_app = build_simulator(sim_options or SimulatorOptions(rate_limits=False))
    transport = httpx.ASGITransport(app=sim_app)
    async with (
        sim_app.router.lifespan_context(sim_app),
        httpx.AsyncClient(transport=transport, base_url=SIM_URL) as control,
        httpx.AsyncClient(transport=transport) as http,
    ):
        response = await control.post(
            "/control/faults", json={"path": SSE_PATH, "status": 503, "count": 1_000_000}
        )
        assert response.status_code == 201, response.text
        runtime = build_runtime(settings_for(SIM_URL, **settings), http=http, store=store)
        try:
            async with Client(runtime.mcp) as client:
                yield VirtualStack(client, control, runtime)
        finally:
            await runtime.aclose()
