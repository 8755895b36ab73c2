"""`ToolWatch`: MCP middleware telling the operations board how each tool call ended.

It sits in the SDK's middleware chain (`MCPServer.middleware`), outside every toolset, so it sees
what the model saw: a tool's own errors, the SDK's refusal of arguments the input schema does not
take, an unknown tool, a crash ("Error executing tool <name>"). And two results that change a
conversation's state: a conversation created, and one closed by the user.

A refused argument's value is the caller's data (a message, a session handle), and pydantic's
error text quotes it; so for those the board gets the field names and error types only, as the
SDK's own log line does. A CRM tool's error may quote a record's values (Salesforce's messages
do: MALFORMED_QUERY quotes the query, STRING_TOO_LONG the value, INVALID_EMAIL_ADDRESS the
address; the CRM toolset's own checks quote what they refuse); so the board gets Salesforce's
error code and the field names it gave without its message, and the rest of the text with
every quoted value masked. The rule holds for every tool: the handoff toolset's errors quote
nothing, and a crash's text may quote anything.

Reporting never fails a call: a board that raises is logged and the call answers as it would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from pydantic import BaseModel, ValidationError

from app.admin.board import OperationsBoard

log = structlog.get_logger(__name__)

ERROR_CHARS = 500
"""An error text longer than this is cut (the page is a list, not a log)."""
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_SCHEMA_REFUSAL = re.compile(r"^(Error executing tool \S+): \d+ validation errors? for \S+\n")
_FIELD_ERROR = re.compile(r"^(\S[^\n]*)\n  [^\n]*\[type=([A-Za-z_]+)", re.MULTILINE)
_SALESFORCE_SAID = re.compile(
    r"(Salesforce refused the request(?: \(field [^)\n]*\))?: [A-Za-z0-9_]*): .*",
    re.DOTALL,
)
"""`app.salesforce.errors.from_rest`'s sentence: the code and fields, then Salesforce's message."""
_NOT_FOUND_SAID = re.compile(r"(Not found in Salesforce): .*", re.DOTALL)
_QUOTED = re.compile(r"(?<![A-Za-z0-9])(?:'[^'\n]*'|\"[^\"\n]*\")")
"""A quoted value (`repr` quotes with either mark; leftmost first, so one holding the other
mark is masked whole), not an apostrophe inside a word (the file's, Salesforce's)."""
WITHHELD = " [Salesforce's message withheld]"


def shown_error(text: str) -> str:
    """The error text for the page: as the model saw it, but without argument values or
    record values: a schema refusal by field names and error types, Salesforce's refusal by
    its code and field names, any other quoted value masked."""
    refusal = _SCHEMA_REFUSAL.match(text)
    if refusal is not None:
        fields = [f"{loc} ({kind})" for loc, kind in _FIELD_ERROR.findall(text[refusal.end() :])]
        text = f"{refusal[1]}: arguments refused by the input schema: " + ", ".join(fields)
    else:
        # Masked before it is cut, so a cut cannot leave half a quoted value unmasked.
        text = _SALESFORCE_SAID.sub(lambda found: found[1] + WITHHELD, text, count=1)
        text = _NOT_FOUND_SAID.sub(lambda found: found[1] + WITHHELD, text, count=1)
        text = _QUOTED.sub("'…'", text)
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

    def _report(self, report: Callable[..., None], *args: Any) -> None:
        try:
            report(*args)
        except Exception as exc:  # the page is not worth a call's answer
            log.warning("admin.report_failed", error=type(exc).__name__)

    def _failed(self, tool: str, text: str) -> None:
        self._report(self._board.tool_called, tool, shown_error(text))

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        name = params.get("name")
        tool = name if isinstance(name, str) and TOOL_NAME.match(name) else "(unknown tool)"
        try:
            result = await call_next(ctx)
        except ValidationError:
            self._failed(tool, "Invalid request parameters (a malformed tools/call)")
            raise
        except Exception as exc:
            self._failed(tool, f"Protocol error: {type(exc).__name__}")
            raise
        if _field(result, "is_error", "isError") is True:
            self._failed(tool, _error_text(result))
            return result
        self._report(self._board.tool_called, tool, None)
        arguments = params.get("arguments")
        if tool == "create_conversation":
            created = _field(result, "structured_content", "structuredContent") or {}
            conversation_id = created.get("conversationId") if isinstance(created, dict) else None
            if isinstance(conversation_id, str):
                self._report(self._board.opened, conversation_id)
        elif tool == "close_conversation" and isinstance(arguments, dict):
            conversation_id = arguments.get("conversationId")
            if isinstance(conversation_id, str):
                self._report(self._board.closed_by_customer, conversation_id)
        return result
