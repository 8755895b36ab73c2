"""`ToolWatch`: MCP middleware telling the operations board how each tool call ended.

It sits in the SDK's middleware chain (`MCPServer.middleware`), outside every toolset, so it sees
what the model saw: a tool's own errors, the SDK's refusal of arguments the input schema does not
take, an unknown tool, a crash ("Error executing tool <name>"). And two results that change a
conversation's state: a conversation created, and one closed by the user.

A refused argument's value is the caller's data (a message, a session handle), and pydantic's
error text quotes it; so for those the board gets the field names and error types only, as the
SDK's own log line does.
"""

from __future__ import annotations

import re
from typing import Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic import BaseModel, ValidationError

from app.admin.board import OperationsBoard

ERROR_CHARS = 500
"""An error text longer than this is cut (the page is a list, not a log)."""
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCHEMA_REFUSAL = re.compile(r"^(Error executing tool \S+): \d+ validation errors? for \S+\n")
_FIELD_ERROR = re.compile(r"^(\S[^\n]*)\n  [^\n]*\[type=([A-Za-z_]+)", re.MULTILINE)


def shown_error(text: str) -> str:
    """The error text for the page: as the model saw it, but without argument values."""
    refusal = _SCHEMA_REFUSAL.match(text)
    if refusal is not None:
        fields = [f"{loc} ({kind})" for loc, kind in _FIELD_ERROR.findall(text[refusal.end() :])]
        text = f"{refusal[1]}: arguments refused by the input schema: " + ", ".join(fields)
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _field(result: HandlerResult, name: str, alias: str) -> Any:
    if isinstance(result, BaseModel):
        return getattr(result, name, None)
    if isinstance(result, dict):
        return result.get(alias)
    return None


def _error_text(result: HandlerResult) -> str:
    content = _field(result, "content", "content") or []
    first = content[0] if content else None
    text = first.get("text") if isinstance(first, dict) else getattr(first, "text", None)
    return text if isinstance(text, str) else "(no text)"


class ToolWatch:
    def __init__(self, board: OperationsBoard) -> None:
        self._board = board

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        name = params.get("name")
        tool = name if isinstance(name, str) and TOOL_NAME.match(name) else "(unknown tool)"
        try:
            result = await call_next(ctx)
        except ValidationError:
            self._board.tool_called(tool, "Invalid request parameters (a malformed tools/call)")
            raise
        except Exception as exc:
            self._board.tool_called(tool, f"Protocol error: {type(exc).__name__}")
            raise
        if _field(result, "is_error", "isError") is True:
            self._board.tool_called(tool, shown_error(_error_text(result)))
            return result
        self._board.tool_called(tool, None)
        arguments = params.get("arguments")
        if tool == "create_conversation":
            created = _field(result, "structured_content", "structuredContent") or {}
            conversation_id = created.get("conversationId") if isinstance(created, dict) else None
            if isinstance(conversation_id, str):
                self._board.opened(conversation_id)
        elif tool == "close_conversation" and isinstance(arguments, dict):
            conversation_id = arguments.get("conversationId")
            if isinstance(conversation_id, str):
                self._board.closed_by_customer(conversation_id)
        return result
