"""`AuditWatch`: the audit trail's MCP middleware, so that every tools/call has its record.

It sits in the SDK's middleware chain (`MCPServer.middleware`), outside both toolsets, and opens
a `CallFrame` around each tools/call with the parameters its tool declares: the arguments a record
may show (`app.audit.call_arguments`), so that one the tool does not take, which the SDK ignores,
never reaches the trail. A tool's wrapper marks the frame when it opens `Audit.call`; a call whose
frame nobody marked never reached a tool (the SDK refused its arguments, an unknown tool, a CRM
tool outside CRM_ACCESS) and gets one record here, `rejected`, with the names of the declared
parameters it was given, never their values (pydantic's refusal quotes them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from mcp.server.context import CallNext, ServerRequestContext
from mcp.server.mcpserver import MCPServer

from app.audit import Audit, call_frame, callers

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
UNKNOWN_TOOL = "(unknown tool)"
"""The tool of a tools/call whose name is not a tool's name (absent, not text, too long)."""


class AuditWatch:
    def __init__(self, audit: Audit, mcp: MCPServer) -> None:
        self._audit = audit
        self._mcp = mcp
        self._parameters: dict[str, frozenset[str]] | None = None

    async def _declared(self) -> dict[str, frozenset[str]]:
        # Read at the first call: every tool is registered before the server serves one.
        if self._parameters is None:
            self._parameters = {
                tool.name: frozenset(tool.input_schema.get("properties", {}))
                for tool in await self._mcp.list_tools()
            }
        return self._parameters

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params: Mapping[str, Any] = ctx.params if isinstance(ctx.params, Mapping) else {}
        name = params.get("name")
        tool = name if isinstance(name, str) and TOOL_NAME.match(name) else UNKNOWN_TOOL
        parameters = (await self._declared()).get(tool)
        started = time.perf_counter()
        with call_frame(parameters or frozenset()) as frame:
            try:
                return await call_next(ctx)
            finally:
                if not frame.opened:
                    arguments = params.get("arguments")
                    given = arguments if isinstance(arguments, Mapping) else {}
                    toolset = self._audit.toolsets.get(
                        tool, "handoff" if parameters is not None else "none"
                    )
                    caller, subject = callers(ctx.request, ctx.meta, toolset)
                    self._audit.rejected(
                        tool,
                        toolset,
                        caller,
                        [n for n in given if n in frame.parameters],
                        time.perf_counter() - started,
                        subject=subject,
                    )
